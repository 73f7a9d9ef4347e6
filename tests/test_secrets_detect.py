"""What counts as a secret: credential file names in any letter case, and secrets inside files.

Every token here is built at run time from harmless pieces ("AKIA" + "X" * 16), so that this
file itself holds nothing a secret scanner would flag.
"""

from __future__ import annotations

import os
import random
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from deploylib import secrets
from deploylib.globs import PatternSet, SyncRules
from deploylib.manifest import HashCache, scan
from deploylib.secrets import SECRET_NAME_PATTERNS, Finding, is_secret_name, scan_file

# The files the hardening issue found deployed, in the cases it found them, then the rest of
# the list. Each must be withheld.
SECRET_NAMES = [
    ".aws/credentials", ".git-credentials", ".pgpass", "secrets.yaml", ".htpasswd", "kubeconfig", ".ENV",
    "key.PEM", "Id_Rsa", ".env.d/prod", "keys/AuthKey_ABC123.p8", "certs/client.DER", "keys/deploy_key",
    ".env.production", "config/.Env.Local", ".envrc", "deploy/prod.env", "certs/server.Key", "certs/client.P12",
    "certs/cert.pfx", "store/release.Keystore", "store/app.JKS", "keys/putty.PPK", "keys/ID_ED25519.pub",
    "ssh/id_ecdsa", "keys/Signing_Key", ".ssh/config", ".AWS/config", ".kube/config", "ops/KubeConfig-prod.yaml",
    ".docker/config.json", ".netrc", ".my.cnf", ".pypirc", ".npmrc", ".vault-token", "infra/terraform.tfstate",
    "infra/terraform.tfstate.backup", "infra/prod.tfvars", "config/Secrets.yml",
    "client_secret_123.apps.googleusercontent.com.json", "deploy/Credentials.json", "gcp/service-account-prod.json",
    "app/credentials", ".secrets", "vault.kdbx",
]
# Ordinary files, some with secret-sounding names. Code is judged by content, not name.
ORDINARY_NAMES = [
    "server.py", "agents.json", "keys.py", "tokens.md", "monkey.txt", "settings.py", "workflow/secrets.py",
    "public_key.py", "pem_utils.py", "environment.yml", "docs/env.md", "certs/ca.crt", "keyboard.json",
    "templates/plan.json", "credentials.py", "README.md",
]
# The list this module replaced: all of it must stay covered.
OLD_PATTERN_EXAMPLES = [".env", "a.pem", "a.key", "a.p12", "a.pfx", "a.keystore", "a.jks", "id_rsa", "id_dsa",
                        "id_ecdsa", "id_ed25519", ".netrc", ".pypirc", ".npmrc", "credentials-prod.json",
                        "service-account.json"]


PREFILTER_MIN = secrets.PREFILTER_MIN  # as shipped, before a test changes it


@pytest.fixture(autouse=True, params=["re", "prefilter"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs twice: files scanned by `re` alone, and every file taken as large enough for the
    Hyperscan prefilter (which large files get); both must find exactly the same."""
    if request.param == "prefilter":
        assert secrets._prefilter() is not None, "hyperscan (a dependency) is not importable"
        monkeypatch.setattr(secrets, "PREFILTER_MIN", 0)
    else:
        monkeypatch.setattr(secrets, "PREFILTER_MIN", 1 << 62)
    return str(request.param)


def write(root: Path, rel: str, text: str = "x\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_name_patterns_are_lowercase_and_under_any_directory() -> None:
    """is_secret_name lowercases the path and shares one `**/` prefix: the list must fit both."""
    for pattern in SECRET_NAME_PATTERNS:
        assert pattern == pattern.lower() and pattern.startswith("**/"), pattern


@pytest.mark.parametrize("rel", SECRET_NAMES + OLD_PATTERN_EXAMPLES)
def test_secret_names_in_any_case_at_any_depth(rel: str) -> None:
    for path in (rel, f"deep/er/{rel}", rel.upper(), rel.swapcase()):
        assert is_secret_name(path), path


@pytest.mark.parametrize("rel", ORDINARY_NAMES)
def test_ordinary_names_are_not_secrets(rel: str) -> None:
    assert not is_secret_name(rel) and not is_secret_name(f"sub/{rel}")


def test_scan_withholds_every_secret_name_from_real_files(tmp_path: Path) -> None:
    for rel in SECRET_NAMES + ORDINARY_NAMES:
        write(tmp_path, rel)
    result = scan(tmp_path, SyncRules(PatternSet(("**",)), PatternSet(())), HashCache(None))
    assert sorted(result.entries) == sorted(ORDINARY_NAMES)
    assert result.withheld == sorted(SECRET_NAMES)


def test_unsafe_allow_secrets_lifts_exactly_the_names_it_lists(tmp_path: Path) -> None:
    for rel in ("certs/Public.PEM", "certs/server.key", ".ENV"):
        write(tmp_path, rel)
    rules = SyncRules(PatternSet(("**",)), PatternSet(()), PatternSet(("certs/Public.PEM",)))
    assert not rules.is_secret("certs/Public.PEM") and rules.is_managed("certs/Public.PEM")
    assert rules.is_secret("certs/public.pem")  # the user's globs keep their case
    result = scan(tmp_path, rules, HashCache(None))
    assert list(result.entries) == ["certs/Public.PEM"]
    assert result.withheld == [".ENV", "certs/server.key"]


# --- content ---------------------------------------------------------------------------------

def _pem(kind: str, newline: str = "\n") -> str:
    label = f"{kind} PRIVATE KEY".strip()
    return "-----" + "BEGIN " + label + "-----" + newline + "M" + "A" * 63 + newline + "-----END " + label + "-----"


TOKENS = [  # (kind, text of one line)
    ("private key", _pem("RSA")),
    ("private key", _pem("OPENSSH")),
    ("private key", _pem("")),
    ("private key", _pem("EC")),
    ("private key", _pem("ENCRYPTED")),
    ("private key", '{"type": "service_account", "private_key": "' + _pem("", "\\n") + '"}'),
    ("private key", "-----BEGIN " + "RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00FF\n\n"
     + "B" * 64),
    ("private key", "PuTTY-User-Key-File-" + "3: ssh-ed25519\nEncryption: none"),
    ("AWS access key id", "AWS_ACCESS_KEY_ID=AKIA" + "X" * 16),
    ("AWS access key id", "key = 'ASIA" + "Q" * 16 + "'"),
    ("AWS secret access key", "aws_secret_access_key = " + "wJalr" * 8),
    ("AWS secret access key", 'AWS_SECRET_ACCESS_KEY: "' + "k/9+Z" * 8 + '"'),
    ("GitHub token", "GITHUB_TOKEN=ghp_" + "x" * 36),
    ("GitHub token", "token: gho_" + "A1" * 18),
    ("GitHub token", "github_pat_" + "11ABC" + "x" * 77),
    ("GitLab token", "glpat-" + "x" * 20),
    ("Slack token", "SLACK_BOT_TOKEN=xoxb-" + "1" * 12 + "-" + "2" * 13 + "-" + "x" * 24),
    ("Slack token", "xapp-1-" + "A" * 11 + "-" + "1" * 13 + "-" + "a" * 64),
    ("Slack webhook", "url = 'https://hooks.slack.com/services/T" + "0" * 8 + "/B" + "0" * 8 + "/" + "x" * 24 + "'"),
    ("Google API key", "GOOGLE_API_KEY=AIza" + "x" * 35),
    ("Azure storage account key", "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=" + "x" * 86 + "=="),
    ("DigitalOcean token", "dop_v1_" + "a" * 64),
    ("Stripe live key", "stripe.api_key = 'sk_live_" + "x" * 24 + "'"),
    ("Stripe live key", "rk_live_" + "x" * 24),
    ("OpenAI API key", "OPENAI_API_KEY=sk-proj-" + "x" * 60),
    ("OpenAI API key", "sk-" + "x" * 20 + "T3Blbk" + "FJ" + "x" * 20),
    ("Anthropic API key", "ANTHROPIC_API_KEY=sk-ant-api03-" + "x" * 93 + "AA"),
    ("Hugging Face token", "HF_TOKEN=hf_" + "x" * 34),
    ("npm token", "NPM_TOKEN=npm_" + "x" * 36),
    ("npm token", "//registry.npmjs.org/:_authToken=" + "0" * 8 + "-0000-0000-0000-" + "0" * 12),
    ("PyPI token", "password = pypi-" + "AgEIcHlwaS5vcmc" + "x" * 60),
    ("Twilio API key", "TWILIO_API_KEY=SK" + "a" * 32),
    ("SendGrid API key", "SENDGRID_API_KEY=SG." + "x" * 22 + "." + "y" * 43),
]


@pytest.mark.parametrize("kind,token", TOKENS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(TOKENS)])
def test_each_token_kind_is_found_on_its_line(tmp_path: Path, kind: str, token: str) -> None:
    path = write(tmp_path, "settings.py", f'"""Settings."""\n\nimport os\n{token}\nDEBUG = False\n')
    findings = scan_file(str(path), "app/settings.py")
    assert findings == [Finding("app/settings.py", 4, kind)]
    assert findings[0].describe() == f"app/settings.py:4: looks like a secret ({kind})"
    assert token.rstrip("'\"=}")[-12:] not in repr(findings) + findings[0].describe()  # never echo the secret


@pytest.mark.parametrize("text", [
    'HEADER = "-----BEGIN ' + 'RSA PRIVATE KEY-----"\nif line.startswith(HEADER):\n    pass\n',  # key-handling code
    "AKIA" + "IOSFODNN7" + "EXAMPLE\n",  # AWS's documentation example
    "stripe.api_key = 'sk_test_" + "x" * 24 + "'\n",  # test-mode keys are harmless by design
    "SLACK_TOKEN=xoxb-your-token-here\n",
    "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n",
    "name = 'myghp_" + "x" * 36 + "'\n",  # inside a longer word
    "def load_hf_" + "x" * 34 + "():\n",
    "aws_secret_access_key = os.environ['AWS_SECRET_ACCESS_KEY']\n",
    "sha = '" + "a" * 64 + "'\nuuid = '" + "0" * 8 + "-0000-0000-0000-" + "0" * 12 + "'\n",
    "token = jwt.encode(payload, key)  # eyJhbGciOiJIUzI1NiJ9.e30.x: JWTs are not looked for\n",
])
def test_ordinary_content_is_not_a_finding(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "code.py", text)
    assert scan_file(str(path), "code.py") == []


def test_several_findings_come_in_line_order(tmp_path: Path) -> None:
    path = write(tmp_path, "a.py", "x = 1\n" + "t = 'ghp_" + "x" * 36 + "'\n" + "k = 'AKIA" + "X" * 16 + "'\n")
    assert scan_file(str(path), "a.py") == [Finding("a.py", 2, "GitHub token"), Finding("a.py", 3, "AWS access key id")]


def test_a_key_inside_a_long_line_is_found(tmp_path: Path) -> None:
    line = "x" * 3_000_000 + " AKIA" + "X" * 16 + " " + "y" * 3_000_000
    path = write(tmp_path, "bundle.min.js", "header\n" + line + "\n")
    assert scan_file(str(path), "bundle.min.js") == [Finding("bundle.min.js", 2, "AWS access key id")]


BOUNDARIES = [secrets.CHUNK - secrets.OVERLAP, secrets.CHUNK]  # where a chunk's reporting stops; where it ends
TAIL = "\nmore text\n" * 1000  # the file goes on past both


@pytest.mark.parametrize("at", [b + d for b in BOUNDARIES for d in range(-30, 10, 3)])
def test_a_token_across_a_chunk_boundary_is_found_once_with_its_line(tmp_path: Path, at: int) -> None:
    filler = ("abc def\n" * (secrets.CHUNK // 8 + 1))[: at - 1] + " "
    path = write(tmp_path, "big.txt", filler + "AKIA" + "X" * 16 + TAIL)
    assert scan_file(str(path), "big.txt") == [Finding("big.txt", filler.count("\n") + 1, "AWS access key id")]


@pytest.mark.parametrize("at", [b + d for b in BOUNDARIES for d in range(-4, 4)])
def test_word_boundaries_hold_across_chunks(tmp_path: Path, at: int) -> None:
    filler = ("abc def\n" * (secrets.CHUNK // 8 + 1))[: at - 1] + "x"  # glued to a word: not a key id
    path = write(tmp_path, "big.txt", filler + "AKIA" + "X" * 16 + TAIL)
    assert scan_file(str(path), "big.txt") == []


def test_every_pattern_is_shorter_than_the_chunk_overlap() -> None:
    """Chunked reading is exact only if no match (with its look-ahead) can outgrow OVERLAP."""
    parser = pytest.importorskip("re._parser")
    for kind, rx in secrets._DETECTORS:
        assert parser.parse(rx).getwidth()[1] < secrets.OVERLAP - 64, kind


def test_binary_files_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + b"AKIA" + b"X" * 16)
    assert scan_file(str(path), "image.png") == []


def test_findings_per_file_are_bounded(tmp_path: Path) -> None:
    path = write(tmp_path, "dump.txt", ("AKIA" + "X" * 16 + "\n") * 500)
    findings = scan_file(str(path), "dump.txt")
    assert len(findings) == secrets.MAX_FINDINGS and findings[0].line == 1


def test_a_50_mb_file_is_scanned_whole_in_bounded_memory_and_time(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    row = b'{"id": 12345, "name": "ordinary record", "tags": ["a", "b"], "text": "lorem ipsum dolor"}\n'
    with open(path, "wb") as f:
        for _ in range(50 * 1024 * 1024 // (len(row) * 1000)):
            f.write(row * 1000)
        f.write(b'{"token": "hf_' + b"x" * 34 + b'"}\n')  # at the very end: no size cap
    lines = path.read_bytes().count(b"\n")
    tracemalloc.start()
    try:
        findings = scan_file(str(path), "data.jsonl")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert findings == [Finding("data.jsonl", lines, "Hugging Face token")]
    assert peak < 8 * 1024 * 1024, peak  # a few 1 MiB chunks, never the file


def test_small_files_never_pay_for_compiling_the_prefilter(tmp_path: Path, engine: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiling Hyperscan's database costs ~50 ms, more than the `re` passes over a deploy's usual
    changed files: only a file of PREFILTER_MIN or more builds it (timings: bench/run.py --big-file)."""
    if engine == "prefilter":
        pytest.skip("this engine takes every file as large")
    monkeypatch.setattr(secrets, "PREFILTER_MIN", PREFILTER_MIN)
    source = Path(secrets.__file__).read_text()
    paths = [str(write(tmp_path, f"m{i}.py", source[: 3000])) for i in range(100)]
    secrets._prefilter.cache_clear()
    try:
        assert not any(scan_file(p, p) for p in paths)
        assert secrets._prefilter.cache_info().misses == 0
        big = write(tmp_path, "big.txt", "x" * PREFILTER_MIN + "\n")
        assert scan_file(str(big), "big.txt") == [] and secrets._prefilter.cache_info().misses == 1
    finally:
        secrets._prefilter.cache_clear()


def test_the_prefilter_names_every_format_re_finds_in_mutated_tokens() -> None:
    """The prefilter may name a format that is not there, never miss one that is: Hyperscan's dialect
    (its `\\s`, classes, bounded repeats, look-arounds left out) must not differ from `re`'s where it
    matters. Each token line, mutated at random with the bytes the patterns care about, is searched by
    both: every detector `re` finds must be among those the prefilter names."""
    import random

    prefilter = secrets._prefilter()
    assert prefilter is not None
    detectors = secrets._compiled()
    rng = random.Random(13)
    alphabet = b" \t\n\r\x0b\x0c\\-_=:/.+'\"aAzZ09fFxkKsS"
    checked = 0
    for _, token in TOKENS:
        base = f"x = 1\n{token}\n".encode()
        for _ in range(300):
            buf = bytearray(base)
            for _ in range(rng.randint(1, 3)):
                buf[rng.randrange(len(buf))] = rng.choice(alphabet)
            found = {i for i, (_, rx) in enumerate(detectors) if rx.search(bytes(buf))}
            assert found <= set(prefilter(bytes(buf))), (bytes(buf), found)
            checked += bool(found)
    assert checked > len(TOKENS) * 100  # most mutants still hold a token: the check is not vacuous


def test_whitespace_of_every_kind_inside_a_key_is_seen_by_the_prefilter(tmp_path: Path) -> None:
    """A PEM header and its body may be separated by any whitespace `re` calls `\\s`."""
    for space in (" ", "\t", "\r", "\x0b", "\x0c"):
        text = "-----" + "BEGIN RSA PRIVATE KEY-----" + space + "\n" + "M" + "A" * 63 + "\n"
        path = write(tmp_path, "k.txt", "x\n" * 10 + text)
        assert scan_file(str(path), "k.txt") == [Finding("k.txt", 11, "private key")], repr(space)


def test_without_hyperscan_every_file_takes_the_re_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A platform without a Hyperscan wheel still scans (slower), and finds the same."""
    import sys

    monkeypatch.setitem(sys.modules, "hyperscan", None)  # import fails
    secrets._prefilter.cache_clear()
    try:
        assert secrets._prefilter() is None
        monkeypatch.setattr(secrets, "PREFILTER_MIN", 0)
        path = write(tmp_path, "a.py", "x = 1\n" * 5 + "t = 'ghp_" + "x" * 36 + "'\n")
        assert scan_file(str(path), "a.py") == [Finding("a.py", 6, "GitHub token")]
    finally:
        secrets._prefilter.cache_clear()


def test_lines_are_counted_when_a_finding_lies_many_chunks_in(tmp_path: Path) -> None:
    """Lines are counted by a second read, only when something was found: a finding 5 MiB in, after
    lines of every length, is reported on its line, as are two on one line."""
    lines = [("y" * (i % 300)) for i in range(40_000)]
    token = "AKIA" + "X" * 16
    text = "\n".join(lines) + "\n" + f"a = '{token}' b = 'ghp_" + "x" * 36 + "'\n" + "tail\n" * 10
    path = write(tmp_path, "big.txt", text)
    line = len(lines) + 1
    assert scan_file(str(path), "big.txt") == [Finding("big.txt", line, "AWS access key id"),
                                               Finding("big.txt", line, "GitHub token")]


def _sample(rx: bytes, rng: random.Random) -> bytes:
    """A random string built from the regex's parsed form, taking every kind of branch, class member and
    repeat count (look-arounds and anchors emit nothing: `re` then decides whether it matches)."""
    from re import _constants as c
    from re import _parser

    def emit(items: Any) -> bytes:
        out = b""
        for op, av in items:
            if op is c.LITERAL:
                out += bytes([av])
            elif op is c.NOT_LITERAL:
                out += bytes([rng.choice([b for b in range(256) if b != av])])
            elif op is c.ANY:
                out += bytes([rng.choice([b for b in range(256) if b != 10])])
            elif op is c.IN:
                out += bytes([rng.choice(members(av))])
            elif op is c.BRANCH:
                out += emit(rng.choice(av[1]))
            elif op is c.SUBPATTERN:
                out += emit(av[-1])
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
                low, high, body = av
                out += b"".join(emit(body) for _ in range(rng.randint(low, min(high, low + 6))))
        return out

    def members(av: Any) -> list[int]:
        spaces, words = b" \t\n\r\x0b\x0c", set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
        listed: set[int] = set()
        negate = False
        for op, arg in av:
            if op is c.NEGATE:
                negate = True
            elif op is c.LITERAL:
                listed.add(arg)
            elif op is c.RANGE:
                listed.update(range(arg[0], arg[1] + 1))
            elif op is c.CATEGORY:
                listed.update(spaces if arg is c.CATEGORY_SPACE else words if arg is c.CATEGORY_WORD
                              else range(48, 58) if arg is c.CATEGORY_DIGIT else ())
        return sorted(set(range(256)) - listed) if negate else sorted(listed)

    return emit(_parser.parse(rx))


def test_the_prefilter_names_every_format_in_strings_built_from_the_patterns_themselves() -> None:
    """The token examples use one spelling of each format; strings built from each pattern take every
    alternative (CRLF armor lines, `----- BEGIN`, Slack workflows, PyPI's test index ...), every class
    member (all of `\\s`) and repeat counts: whenever `re` matches one, the prefilter must name it."""
    import random

    prefilter = secrets._prefilter()
    assert prefilter is not None
    rng = random.Random(7)
    for i, (kind, rx) in enumerate(secrets._DETECTORS):
        compiled, matched = secrets._compiled()[i][1], 0
        for _ in range(400):
            buf = b"x = " + _sample(rx, rng) + b"\n"
            if compiled.search(buf):
                matched += 1
                assert i in prefilter(buf), (kind, buf)
        assert matched > 100, kind  # the strings are built to match: a generator gone wrong fails here


def test_scans_in_several_threads_at_once(tmp_path: Path) -> None:
    """The MCP server runs each call in a worker thread: two previews may scan large files at once (one
    Hyperscan scratch space shared by two scans is an error)."""
    import threading

    text = "y" * 99 + "\n"
    paths = [write(tmp_path, f"big{i}.txt", text * 30_000 + "t = 'ghp_" + "x" * 36 + "'\n") for i in range(4)]
    results: list[object] = []

    def scan_each() -> None:
        try:
            results.extend(scan_file(str(p), p.name) for p in paths for _ in range(3))
        except BaseException as exc:  # noqa: BLE001 - reported below, in the test's thread
            results.append(exc)

    threads = [threading.Thread(target=scan_each) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, list) and r[0].line == 30_001 for r in results), results[:3]
    assert len(results) == 48


def test_a_file_of_exactly_prefilter_min_bytes_uses_the_prefilter(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "PREFILTER_MIN", 2 * secrets.CHUNK)
    calls: list[int] = []
    real = secrets._prefilter()
    assert real is not None
    monkeypatch.setattr(secrets, "_prefilter", lambda: lambda buf: calls.append(1) or real(buf))
    exact = write(tmp_path, "exact.txt", "x" * (2 * secrets.CHUNK - 1) + "\n")
    below = write(tmp_path, "below.txt", "x" * (2 * secrets.CHUNK - 2) + "\n")
    assert scan_file(str(below), "below.txt") == [] and not calls
    assert scan_file(str(exact), "exact.txt") == [] and calls


def test_a_fifo_swapped_in_after_the_walk_is_refused_not_waited_on(tmp_path: Path) -> None:
    """The walk skips FIFOs, but one may replace a file before its scan. Its bytes used to be scanned as they
    came: with no writer the scan waited forever (under the deploy's lock), and with one, the stage's copy
    would read other bytes than the scan had. Now the scan opens only a regular file: an OSError (the deploy
    stops at preflight naming the file), at once."""
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        scan_file(str(fifo), "pipe.txt")
    (tmp_path / "real.txt").write_text("t = 'ghp_" + "x" * 36 + "'\n")
    os.symlink("real.txt", tmp_path / "link.txt")  # a link swapped in is not followed either
    with pytest.raises(OSError):
        scan_file(str(tmp_path / "link.txt"), "link.txt")
