"""What a secret looks like: file names that hold credentials, and token formats inside files.

Names are globs in this repo's dialect (deploylib/globs.py), matched case-insensitively:
`Id_Rsa` and `key.PEM` are the same credential on a case-insensitive filesystem and to
anyone who reads them. Content patterns are a focused port of Yelp/detect-secrets plugins
(Apache-2.0) and gitleaks' config/gitleaks.toml (MIT), restricted to formats with a
distinctive prefix or structure, so that a match is worth refusing a deploy over. Entropy
and keyword heuristics are left out on purpose: they are noisy, and a refusal must be right.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from typing import IO, Callable

from .fsutil import open_regular

# Credential files by name: lowercase, each under `**/` (a test holds both). Anything here stays
# out of the sync set unless the profile lifts it with `unsafe_allow_secrets`. Code files
# (`*.py`, ...) are deliberately not matched by name, whatever they are called: they are
# judged by their content.
SECRET_NAME_PATTERNS: tuple[str, ...] = (
    # dotenv files and directories (.env, .env.production, .envrc, .env.d/prod), docker env_files
    "**/.env*", "**/.env*/**", "**/*.env",
    # private keys and keystores
    "**/*.pem", "**/*.key", "**/*.p8", "**/*.der", "**/*.p12", "**/*.pfx", "**/*.pkcs12",
    "**/*.keystore", "**/*.jks", "**/*.ppk", "**/*.keytab", "**/*.kdbx", "**/*.ovpn", "**/secring.*",
    # SSH keys and their directory; `deploy_key`, `ssh_host_rsa_key`: extensionless `*_key` files
    "**/id_rsa*", "**/id_dsa*", "**/id_ecdsa*", "**/id_ed25519*", "**/*_key", "**/.ssh/**",
    # per-tool credential stores
    "**/.aws/**", "**/.azure/**", "**/.kube/**", "**/.gnupg/**", "**/.docker/config.json",
    "**/kubeconfig*", "**/.git-credentials", "**/.netrc", "**/_netrc", "**/.pgpass", "**/.my.cnf",
    "**/.pypirc", "**/.npmrc", "**/.htpasswd", "**/.vault-token", "**/.boto", "**/.s3cfg",
    # terraform state holds every secret it manages in plain text; tfvars usually feed them in
    "**/*.tfstate", "**/*.tfstate.*", "**/*.tfvars",
    # named credentials and secrets in data formats (client_secret.json, secrets.yaml, ...)
    "**/credentials", "**/*credentials*.json", "**/service-account*.json",
    "**/.secret*", "**/*.secret", "**/*.secrets",
    *(f"**/*secret*.{ext}" for ext in ("json", "yaml", "yml", "toml", "ini", "conf", "cfg")),
)


def is_secret_name(relpath: str) -> bool:
    """True when a relative POSIX path is named like a credential file, in any letter case."""
    return _name_regex().match(relpath.lower()) is not None


def secret_names(paths: list[str]) -> list[str]:
    """Those of `paths` that `is_secret_name` holds for, in order: lowercased at once and matched from C
    (a tree's scan asks this of every path; a Python call per path was most of the matching's time)."""
    lowered = "\0".join(paths).lower().split("\0")  # no path holds a NUL, and lower() maps each character alone
    return [path for path, hit in zip(paths, map(_name_regex().match, lowered)) if hit]


@cache
def _name_regex() -> re.Pattern[str]:
    """The patterns (all lowercase, all under `**/`) as one regex over lowercased paths.

    Names of files are tried once, at the last segment (an atomic group takes the directories
    and gives none back); only the few patterns naming a directory are tried at every level.
    With `lower()` instead of re.IGNORECASE this is faster per path than the 16 case-sensitive
    patterns it replaced; a plain union of these patterns with IGNORECASE was 3x slower.
    """
    from .globs import _by_leading_star, translate  # here, not at the top: globs imports this module

    tails = [p.removeprefix("**/") for p in SECRET_NAME_PATTERNS]
    files = _by_leading_star([translate(t) for t in tails if "/" not in t])
    dirs = "|".join(translate(t) for t in tails if "/" in t)
    return re.compile(f"(?>(?:[^/]+/)*)(?:{files})|(?:[^/]+/)*(?:{dirs})")


@dataclass(frozen=True)
class Finding:
    """Where a file seems to hold a secret. Never carries the secret itself."""

    path: str
    line: int
    kind: str

    def describe(self) -> str:
        return f"{self.path}:{self.line}: looks like a secret ({self.kind})"


def _word(prefix: bytes, rest: bytes) -> bytes:
    """`prefix` not inside a longer word, then `rest`. The check sits after the literal so that
    `re` still sees a literal prefix and skips ahead at memchr speed (a leading look-behind or
    `\\b` makes it try every position: 15-30x slower, measured)."""
    p = re.escape(prefix)
    return p + rb"(?<!\w" + p + rb")" + rest


# A PEM header alone is often a string in key-handling code; a key also has its base64 body
# (after optional armor headers) right below it, with real or JSON-escaped ("\\n") newlines.
_PEM = (rb"----[- ]BEGIN (?:[A-Z0-9]{1,10} ){0,3}PRIVATE KEY(?: BLOCK)? ?-{4,5}(?:\s|\\[rn]){1,8}"
        rb"(?:[A-Za-z-]{1,20}: [^\r\n\\]{0,64}(?:\r?\n|\\r?\\n)){0,3}(?:\s|\\[rn]){0,4}[A-Za-z0-9+/=]{40}")

# One regex per format, each starting with a literal: Python's `re` has no multi-pattern
# search, and one alternation of them all ran at 2 MB/s; separate passes run at 1-2 GB/s each.
# Every pattern has a bounded length (well under OVERLAP): a token is recognised by its
# prefix, not consumed whole, so chunked reading cannot split one.
_DETECTORS: tuple[tuple[str, bytes], ...] = (
    ("private key", _PEM),
    ("private key", rb"PuTTY-User-Key-File-[23]: [a-z0-9-]{3,40}\r?\nEncryption: "),
    ("AWS access key id", _word(b"A", rb"(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z2-7]{16}(?![A-Z0-9])")),
    ("AWS secret access key", rb"_(?:SECRET_ACCESS_KEY|secret_access_key)[\"']?\s{0,4}[:=]{1,2}\s{0,4}[\"']?"
                              rb"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"),
    ("GitHub token", _word(b"gh", rb"[pousr]_[A-Za-z0-9]{36}")),
    ("GitHub token", _word(b"github_pat_", rb"[A-Za-z0-9_]{82}")),
    ("GitLab token", _word(b"glpat-", rb"[A-Za-z0-9_-]{20}")),
    ("Slack token", _word(b"xox", rb"[abeoprs]-[0-9]{1,16}-[A-Za-z0-9-]{10}")),
    ("Slack token", _word(b"xapp-", rb"[0-9]-[A-Z0-9]{6,16}-[0-9]{6,16}-[a-z0-9]{10}")),
    ("Slack webhook", rb"hooks\.slack\.com/(?:services|workflows|triggers)/T[A-Za-z0-9_]{6,20}/[A-Za-z0-9_/]{20}"),
    ("Google API key", _word(b"AIza", rb"[0-9A-Za-z_-]{35}")),
    ("Azure storage account key", rb"AccountKey=[A-Za-z0-9+/=]{88}"),
    ("DigitalOcean token", _word(b"do", rb"[opr]_v1_[a-f0-9]{64}")),
    ("Stripe live key", _word(b"sk_live_", rb"[0-9A-Za-z]{24}")),
    ("Stripe live key", _word(b"rk_live_", rb"[0-9A-Za-z]{24}")),
    ("OpenAI API key", _word(b"sk-", rb"(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40}|[A-Za-z0-9]{20}T3BlbkFJ)")),
    ("Anthropic API key", _word(b"sk-ant-", rb"[a-z]{3,6}[0-9]{2}-[A-Za-z0-9_-]{40}")),
    ("Hugging Face token", _word(b"hf_", rb"[A-Za-z]{34}(?!\w)")),
    ("npm token", _word(b"npm_", rb"[A-Za-z0-9]{36}")),
    ("npm token", rb":_auth(?:Token)?\s{0,4}=\s{0,4}[\"']?[A-Za-z0-9+/=_-]{20}"),
    ("PyPI token", _word(b"pypi-AgE", rb"(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50}")),
    ("Twilio API key", _word(b"SK", rb"[0-9a-fA-F]{32}(?!\w)")),
    ("SendGrid API key", _word(b"SG.", rb"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}")),
)


@cache
def _compiled() -> tuple[tuple[str, re.Pattern[bytes]], ...]:
    """Compiled on first scan, not at import: globs imports this module on every command."""
    return tuple((kind, re.compile(rx)) for kind, rx in _DETECTORS)


@cache
def _prefilter() -> Callable[[bytes], list[int]] | None:
    """The detectors that may match in a buffer, found in one pass for all of them; None without Hyperscan.

    `re` makes one pass per format (~24 passes: ~0.1 GB/s in all); Intel's Hyperscan searches for every
    format at once at 3-4 GB/s. Compiled in prefilter mode it may name a format that is not there (look-
    arounds, which it cannot run, are left out), never miss one that is; the `re` pass of each format it
    names then decides, so findings are exactly the `re` ones. Compiling costs ~50 ms: only files of
    PREFILTER_MIN or more are worth it.
    """
    try:
        import hyperscan
    except ImportError:  # a platform without a wheel: every file takes the `re` passes, as before
        return None
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    flags = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH  # superset; each id reported once
    db.compile(expressions=[rx for _, rx in _DETECTORS], ids=list(range(len(_DETECTORS))),
               elements=len(_DETECTORS), flags=[flags] * len(_DETECTORS))

    import threading

    mine = threading.local()  # a scratch space per thread: one shared by two scans at once is an error

    def candidates(buf: bytes) -> list[int]:
        if not hasattr(mine, "scratch"):
            mine.scratch = hyperscan.Scratch(db)
        found: set[int] = set()
        db.scan(buf, match_event_handler=lambda i, start, end, flags, context: found.add(i), scratch=mine.scratch)
        return sorted(found)

    return candidates


# The key id in AWS's documentation ends in EXAMPLE; it appears in vendored SDKs and their docs.
_DOC_EXAMPLE = b"EXAMPLE"

BINARY_SNIFF = 8 * 1024  # a NUL byte in the first 8 KiB means binary, as git decides
CHUNK = 1024 * 1024
OVERLAP = 1024  # longer than any match plus its look-ahead
LOOKBEHIND = 16  # context kept before the resume point, for the look-behinds
MAX_FINDINGS = 20  # per file: enough to act on, bounded for a file full of tokens
PREFILTER_MIN = 16 * CHUNK  # files this large are searched for all formats at once first (_prefilter)


def scan_file(path: str | os.PathLike[str], relpath: str) -> list[Finding]:
    """Secrets that the file at `path` seems to hold, reported under `relpath`, by line.

    Streams the whole file in 1 MiB chunks: memory stays bounded, and a key at the end of a
    large file is still found (a size cap would be a way around the check). Binary files are
    skipped; credential files in binary formats (.p12, .der, .jks ...) are caught by name.
    """
    found: list[tuple[int, str]] = []  # (file offset, kind)
    detectors = _compiled()
    with open(open_regular(path), "rb") as f:  # a link swapped in after the scan is not followed
        buf = f.read(CHUNK)
        if b"\0" in buf[:BINARY_SNIFF]:
            return []
        prefilter = _prefilter() if os.fstat(f.fileno()).st_size >= PREFILTER_MIN else None
        base = 0  # file offset of buf[0]
        done = 0  # file offset from which match starts are still to be looked at
        while True:
            more = f.read(CHUNK)
            limit = base + len(buf) - (OVERLAP if more else 0)
            for kind, rx in detectors if prefilter is None else [detectors[i] for i in prefilter(buf)]:
                for m in rx.finditer(buf, done - base):
                    if m.start() + base >= limit:
                        break
                    if kind == "AWS access key id" and m.group().endswith(_DOC_EXAMPLE):
                        continue
                    found.append((base + m.start(), kind))
            if not more or len(found) >= MAX_FINDINGS:
                break
            keep = max(0, limit - LOOKBEHIND - base)
            buf, base, done = buf[keep:] + more, base + keep, max(done, limit)
        line = _lines(f, [offset for offset, _ in found]) if found else {}
    findings = [Finding(relpath, line[offset], kind) for offset, kind in found]
    return sorted(findings, key=lambda x: x.line)[:MAX_FINDINGS]


def _lines(f: IO[bytes], offsets: list[int]) -> dict[int, int]:
    """The line of each file offset, counting newlines from the start: a second read, made only when
    something was found (counting them in every chunk cost ~0.5 s per GB of a file without secrets). A
    file rewritten in place meanwhile may put a finding on the wrong line; the finding itself stands."""
    line: dict[int, int] = {}
    if not f.seekable():  # a FIFO swapped in since the walk: the findings stand, their lines are unknown (0)
        return {offset: 0 for offset in offsets}
    f.seek(0)
    at, newlines = 0, 0
    for offset in sorted(set(offsets)):
        while at < offset:
            data = f.read(min(CHUNK, offset - at))
            if not data:
                break  # the file shrank since: the finding stands, its line is the last one counted
            newlines += data.count(b"\n")
            at += len(data)
        line[offset] = newlines + 1
    return line
