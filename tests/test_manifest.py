"""Globs, the tree walk, secrets, symlinks and the stat-keyed hash cache on a real filesystem."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from array import array
from pathlib import Path
from typing import Any

import pytest

from deploylib.errors import PreflightFailed
from deploylib.globs import PatternSet, SyncRules, pattern_problem
from deploylib.manifest import HashCache, link_escapes, scan


def rules(include: list[str], exclude: list[str] = (), allow: list[str] = ()) -> SyncRules:  # type: ignore[assignment]
    return SyncRules(PatternSet(tuple(include)), PatternSet(tuple(exclude)), PatternSet(tuple(allow)))


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


@pytest.mark.parametrize("pattern,path,expected", [
    ("server.py", "server.py", True),
    ("server.py", "sub/server.py", False),  # anchored at the root
    ("*.json", "a.json", True),
    ("*.json", "d/a.json", False),
    ("**/*.json", "a.json", True),
    ("**/*.json", "d/e/a.json", True),
    ("workflow/*.py", "workflow/a.py", True),
    ("workflow/*.py", "workflow/sub/a.py", False),
    ("workflow/**/*.py", "workflow/sub/deep/a.py", True),
    ("workflow/**", "workflow/x/y", True),
    ("logs/", "logs/2026/a.log", True),
    ("templates/?.json", "templates/a.json", True),
    ("templates/?.json", "templates/ab.json", False),
    ("[ab].txt", "a.txt", True),
    ("[!ab].txt", "a.txt", False),
    ("a+b(1).txt", "a+b(1).txt", True),  # regex characters are literal
])
def test_glob_semantics(pattern: str, path: str, expected: bool) -> None:
    assert PatternSet((pattern,)).matches(path) is expected


def test_patterns_that_escape_the_root_are_refused() -> None:
    assert pattern_problem("../x")
    assert pattern_problem("a/../../x")
    assert pattern_problem("/etc/passwd")
    assert pattern_problem("  ")
    assert pattern_problem("a/**/b..c") is None


def test_scan_selects_managed_files_and_withholds_secrets(tmp_path: Path) -> None:
    write(tmp_path, {"server.py": "x", "workflow/a.py": "a", "workflow/__pycache__/a.pyc": "c",
                     "notes.txt": "n", ".env": "S=1", "workflow/.env.local": "S=2", "keys/id_rsa": "k",
                     "VERSION": "{}"})
    r = rules(["server.py", "workflow/**", ".env", "keys/*", "VERSION"], ["**/__pycache__/**"])
    result = scan(tmp_path, r, HashCache(None))
    assert list(result.entries) == ["VERSION", "server.py", "workflow/a.py"]  # VERSION: refused at preflight
    assert result.withheld == [".env", "keys/id_rsa", "workflow/.env.local"]
    lifted = scan(tmp_path, rules(["keys/*"], allow=["keys/id_rsa"]), HashCache(None))
    assert list(lifted.entries) == ["keys/id_rsa"]


def test_scan_records_symlinks_without_following_them(tmp_path: Path) -> None:
    write(tmp_path, {"d/real.py": "r"})
    os.symlink("real.py", tmp_path / "d" / "alias.py")
    os.symlink("..", tmp_path / "d" / "loop")  # a directory loop: never entered
    result = scan(tmp_path, rules(["**"]), HashCache(None), source=True)
    assert result.entries["d/alias.py"].link == "real.py"
    assert result.entries["d/loop"].link == ".."  # recorded, not walked


def test_symlink_leaving_the_source_root_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"a.py": "a"})
    os.symlink("/etc/passwd", tmp_path / "passwd.py")
    with pytest.raises(PreflightFailed, match="symlink points outside the source tree"):
        scan(tmp_path, rules(["*.py"]), HashCache(None), source=True)
    assert link_escapes("d/x", "../../y") and not link_escapes("d/x", "../y")


def test_hash_cache_skips_rereading_unchanged_files(tmp_path: Path) -> None:
    write(tmp_path / "t", {"a.py": "original"})
    an_hour_ago = time.time_ns() - 3600 * 10**9  # old enough to be trusted (see the racy test below)
    os.utime(tmp_path / "t" / "a.py", ns=(an_hour_ago, an_hour_ago))
    cache_file = tmp_path / "cache.json"
    cache = HashCache(cache_file)
    first = scan(tmp_path / "t", rules(["*.py"]), cache).entries["a.py"].sha256
    cache.save()
    read: list[str] = []
    again = HashCache(cache_file)
    again.on_hash = lambda p, size: read.append(p)
    assert scan(tmp_path / "t", rules(["*.py"]), again).entries["a.py"].sha256 == first and read == []
    # a real edit changes mtime or size and is re-hashed
    (tmp_path / "t" / "a.py").write_text("edited!!!")
    assert scan(tmp_path / "t", rules(["*.py"]), HashCache(cache_file)).entries["a.py"].sha256 != first


def test_a_run_that_scans_one_tree_keeps_the_other_trees_hashes(tmp_path: Path) -> None:
    """A rollback scans only production; the next deploy must not re-read the whole source."""
    an_hour_ago = time.time_ns() - 3600 * 10**9
    for tree in ("src", "prod", "elsewhere"):
        write(tmp_path / tree, {"a.py": f"{tree} original"})
        os.utime(tmp_path / tree / "a.py", ns=(an_hour_ago, an_hour_ago))
    cache_file = tmp_path / "cache.json"
    roots = [tmp_path / "src", tmp_path / "prod"]
    cache = HashCache(cache_file, roots)
    first = {tree: scan(tmp_path / tree, rules(["*.py"]), cache).entries["a.py"].sha256
             for tree in ("src", "prod", "elsewhere")}
    cache.save()
    only_prod = HashCache(cache_file, roots)
    scan(tmp_path / "prod", rules(["*.py"]), only_prod)
    only_prod.save()
    read: list[str] = []
    again = HashCache(cache_file, roots)
    again.on_hash = lambda p, size: read.append(p)
    assert scan(tmp_path / "src", rules(["*.py"]), again).entries["a.py"].sha256 == first["src"] and read == []
    # a tree that is neither the profile's source nor its target is not kept at all
    assert scan(tmp_path / "elsewhere", rules(["*.py"]), again).entries["a.py"].sha256 == first["elsewhere"]
    assert read == [str(tmp_path / "elsewhere" / "a.py")]


def test_recently_modified_files_are_never_taken_from_the_cache(tmp_path: Path) -> None:
    """A same-size rewrite within one tick of the filesystem's coarse clock keeps (inode, size, mtime)."""
    write(tmp_path / "t", {"a.py": "version 1"})
    path = tmp_path / "t" / "a.py"
    cache_file = tmp_path / "cache.json"
    cache = HashCache(cache_file)
    first = scan(tmp_path / "t", rules(["*.py"]), cache).entries["a.py"].sha256
    cache.save()
    st = path.stat()
    path.write_text("version 2")  # same size ...
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and, on a coarse clock, the same mtime
    second = scan(tmp_path / "t", rules(["*.py"]), HashCache(cache_file)).entries["a.py"].sha256
    assert second != first and second == hashlib.sha256(b"version 2").hexdigest()


def test_walk_only_enters_directories_the_globs_can_reach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {"workflow/a.py": "a", "huge/deep/x.py": "x", "workflow/__pycache__/a.pyc": "c"})
    assert rules(["workflow/*.py", "server.py"]).walk_roots() == [""]
    assert rules(["workflow/*.py", "templates/*.json"]).walk_roots() == ["templates", "workflow"]
    opened: list[str] = []
    real_scandir = os.scandir

    def spy(path):  # type: ignore[no-untyped-def]
        opened.append(Path(path).relative_to(tmp_path).as_posix())
        return real_scandir(path)

    monkeypatch.setattr("deploylib.manifest.os.scandir", spy)
    found = scan(tmp_path, rules(["workflow/*.py"], ["**/__pycache__/**"]), HashCache(None))
    assert list(found.entries) == ["workflow/a.py"]
    assert opened == ["workflow"]  # neither huge/ nor the excluded __pycache__/ was read


def test_a_warm_process_keeps_a_release_record_by_its_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The MCP server keeps the release records it wrote or parsed, by their bytes: the record a deploy just
    wrote is not parsed again by the next call, yet an edit in place is seen whenever it lands (even at
    the same size, with the mtime put back), each caller gets its own copy, and only a few are kept."""
    from deploylib import manifest, warm
    from deploylib.errors import CorruptState
    from deploylib.manifest import Entry, Release, load_release, save_release

    monkeypatch.setattr(warm, "ENABLED", True)
    monkeypatch.setattr(warm, "_records", warm.OrderedDict())
    parses: list[int] = []
    real = manifest.manifest_from_columns
    monkeypatch.setattr(manifest, "manifest_from_columns", lambda data: parses.append(1) or real(data))
    path = tmp_path / "d-1.json"
    save_release(path, Release({"a.py": Entry("a.py", 1, 0o644, "a" * 64)}, ["lib"]))

    def edit_in_place(old: str, new: str) -> None:
        st = os.stat(path)
        text = path.read_text()
        assert len(old) == len(new) and old in text
        path.write_text(text.replace(old, new))  # same inode, same size, and the same mtime put back
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    first = load_release(path)  # just written: recalled, not parsed
    assert first.files["a.py"].sha256 == "a" * 64 and first.dirs == ["lib"] and parses == []
    first.files.clear()
    first.dirs.append("mine")
    assert load_release(path).dirs == ["lib"] and load_release(path).files  # each caller has its own copy
    edit_in_place("a" * 64, "b" * 64)
    assert load_release(path).files["a.py"].sha256 == "b" * 64 and len(parses) == 1
    assert load_release(path).files["a.py"].sha256 == "b" * 64 and len(parses) == 1  # kept as parsed
    edit_in_place('"b', '"/')  # damaged: refused, never recalled
    with pytest.raises(CorruptState):
        load_release(path)

    for i in range(2, 12):  # a long-lived server writes a record per deploy: only the latest few stay
        save_release(tmp_path / f"d-{i}.json", Release({}))
    assert list(warm._records) == [str(tmp_path / f"d-{i}.json") for i in range(12 - warm.RECORDS_KEPT, 12)]


def test_the_factored_union_of_globs_matches_exactly_what_each_glob_matches() -> None:
    """`union` takes the common `**/` and `*` out of the alternatives (for speed): every path must still
    match exactly when one of the patterns, translated alone, does."""
    import random
    import re

    from deploylib.globs import translate, union
    from deploylib.ignore import NEVER_MANAGED
    from deploylib.secrets import SECRET_NAME_PATTERNS

    patterns = [*NEVER_MANAGED, *SECRET_NAME_PATTERNS, "server.py", "workflow/*.py", "**/*.json", "logs/",
                "a/**/b/*.txt", "*", "**/x?y", "[ab]*.md", "**/[!c]*.cfg"]
    alone = [re.compile(translate(p)) for p in patterns]
    together = re.compile(union(patterns))
    parts = ["a", "b", "x1y", ".git", ".env", "id_rsa.pub", "k.pem", "server.py", "workflow", "logs", "c.cfg",
             "d.cfg", "x.json", "n.txt", "__pycache__", "t~", "#a#", ".coverage.1", "new\nline", "sec_key"]
    rng = random.Random(13)
    paths = ["/".join(rng.choice(parts) for _ in range(rng.randint(1, 4))) for _ in range(5000)]
    for path in paths:
        assert (together.match(path) is not None) == any(rx.match(path) for rx in alone), path
    assert re.compile(union([])).match("anything") is None


def test_a_hash_cache_section_finds_a_file_by_its_device_too(tmp_path: Path) -> None:
    """Two files of a tree on two filesystems may share an inode number: each keeps its own hash."""
    from deploylib.manifest import Hashes

    def st(ino: int, dev: int, size: int = 5, mtime: int = 10**18, ctime: int = 10**18 + 7) -> os.stat_result:
        return os.stat_result((0o100644, ino, dev, 1, 0, 0, size, 0, 0, 0, 0, 0, 0, mtime, mtime, ctime))

    a, b, c = "a" * 64, "b" * 64, "c" * 64
    t, ct = 10**18, 10**18 + 7
    section = Hashes.from_rows([(7, 1, 5, t, ct, a), (7, 2, 5, t, ct, b), (3, 1, 5, t, ct, c)])
    again = Hashes.from_json(json.loads(b"".join(section.json_chunks())))
    for hashes in (section, again):
        found = {key: hashes.find(st(*key)) for key in ((7, 1), (7, 2), (3, 1), (3, 2), (8, 1))}
        assert {key: hashes.sha(i) for key, i in found.items() if i is not None} == {(7, 1): a, (7, 2): b, (3, 1): c}
        assert hashes.find(st(7, 1, size=6)) is None and hashes.find(st(7, 1, mtime=t + 1)) is None
        assert hashes.find(st(7, 1, ctime=ct + 1)) is None  # rewritten, its mtime put back: the ctime tells


def test_a_file_rewritten_with_its_mtime_put_back_is_read_again(tmp_path: Path) -> None:
    """Same size, same inode, the old mtime put back (`cp -p`, `touch -r`): only the ctime, which no program
    can set, tells the cache the bytes are not the ones it hashed (format 3 answered with the old hash)."""
    write(tmp_path / "t", {"a.py": "original"})
    path = tmp_path / "t" / "a.py"
    an_hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(path, ns=(an_hour_ago, an_hour_ago))
    cache = HashCache(tmp_path / "cache.json")
    first = scan(tmp_path / "t", rules(["*.py"]), cache).entries["a.py"]
    assert first.sha256 == hashlib.sha256(b"original").hexdigest()
    assert cache.save() is None
    ino = os.stat(path).st_ino
    path.write_bytes(b"Original")  # in place: same inode, same size
    os.utime(path, ns=(an_hour_ago, an_hour_ago))
    assert os.stat(path).st_ino == ino
    read: list[str] = []
    again = HashCache(tmp_path / "cache.json")
    again.on_hash = lambda p, size: read.append(p)
    now = scan(tmp_path / "t", rules(["*.py"]), again).entries["a.py"]
    assert now.sha256 == hashlib.sha256(b"Original").hexdigest()
    assert read == [str(path)]


def test_a_hash_the_stage_put_holds_after_the_commit_renamed_its_file_and_only_then() -> None:
    """The commit's rename changes a staged file's ctime alone: `renew` keeps the stage's hash under the new
    ctime (else the next run read every file a deploy wrote again); a file whose size or mtime moved too was
    written since, and is not vouched for."""
    from deploylib.manifest import Hashes, TreeHashes

    def st(size: int, mtime: int, ctime: int, ino: int = 7) -> os.stat_result:
        return os.stat_result((0o100644, ino, 1, 1, 0, 0, size, 0, 0, 0, 0, 0, 0, mtime, mtime, ctime))

    old = time.time_ns() - 3600 * 10**9
    tree = TreeHashes(Hashes.from_rows([]), None)
    tree.put_own(st(5, old, old + 1), "a" * 64)
    assert tree.get(st(5, old, old + 2)) is None  # renamed: not yet renewed
    tree.renew(st(5, old, old + 2))
    assert tree.get(st(5, old, old + 2)) == "a" * 64 and tree.get(st(5, old, old + 1)) is None
    for moved in (st(6, old, old + 3), st(5, old + 1, old + 3), st(5, old, old + 3, ino=8)):
        tree.renew(moved)
        assert tree.get(moved) is None
    assert tree.get(st(5, old, old + 2)) == "a" * 64
    # before the rename: a staged file whose ctime moved since it was put (a hook rewrote it, its mtime put
    # back) loses its hash, which the rename's `renew` then cannot bring back; an untouched one keeps it
    tree.put_own(st(5, old, old + 1, ino=9), "b" * 64)
    tree.forget_if_touched(st(5, old, old + 2))  # ino 7, as it is: kept
    tree.forget_if_touched(st(5, old, old + 4, ino=9))
    tree.renew(st(5, old, old + 5, ino=9))
    assert tree.get(st(5, old, old + 5, ino=9)) is None and tree.get(st(5, old, old + 2)) == "a" * 64


@pytest.mark.parametrize("damage", [
    "not json", '{"format": 2, "trees": {"ROOT": {"1:2": [9, 10, "' + "a" * 64 + '"]}}}',
    '{"format": 4, "trees": {"ROOT": {"ino": "AQ==", "dev": "", "size": "", "mtime": "", "ctime": "", "sha256": ""}}}',
    '{"format": 4, "trees": {"ROOT": {"ino": "!!", "dev": "", "size": "", "mtime": "", "ctime": "", "sha256": ""}}}',
    '{"format": 4, "trees": {"ROOT": {"ino": "", "dev": "", "size": "", "mtime": "", "sha256": ""}}}',
    '{"format": 4, "trees": {"ROOT": {"ino": 1}}}', '{"format": 4, "trees": {"ROOT": []}}', "FORMAT 3",
])
def test_a_damaged_or_old_hash_cache_only_costs_reading_the_files_again(tmp_path: Path, damage: str) -> None:
    write(tmp_path / "t", {"a.py": "original"})
    an_hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(tmp_path / "t" / "a.py", ns=(an_hour_ago, an_hour_ago))
    cache_file = tmp_path / "cache.json"
    if damage == "FORMAT 3":  # a whole, true cache of the format before ctimes: vouches for nothing now
        st = os.stat(tmp_path / "t" / "a.py")
        arrays = [array("Q", [st.st_ino]), array("Q", [st.st_dev]), array("q", [st.st_size]),
                  array("q", [st.st_mtime_ns])]
        section = dict(zip(("ino", "dev", "size", "mtime"), (base64.b64encode(a.tobytes()).decode() for a in arrays)))
        section["sha256"] = base64.b64encode(hashlib.sha256(b"original").digest()).decode()
        damage = json.dumps({"format": 3, "trees": {"ROOT": section}})
    cache_file.write_text(damage.replace("ROOT", str(tmp_path / "t")))
    read: list[str] = []
    cache = HashCache(cache_file)
    cache.on_hash = lambda path, size: read.append(path)
    entry = scan(tmp_path / "t", rules(["*.py"]), cache).entries["a.py"]
    assert entry.sha256 == hashlib.sha256(b"original").hexdigest() and read == [str(tmp_path / "t" / "a.py")]
    assert cache.save() is None
    again = HashCache(cache_file)
    again.on_hash = lambda path, size: read.append(path)
    assert scan(tmp_path / "t", rules(["*.py"]), again).entries["a.py"] == entry and len(read) == 1


ODD_NAMES = ["a.py", "dir/ünïcödé.txt", 'quote"and\\back', "new\nline\ttab", "\udcff\udcfe-not-utf8", "emoji-😀",
             "ctl-\x01\x1f", "sp ace", "</script>", "x/.hidden", "..x", "x..", "-", "paths", "format"]


def _odd_manifest() -> dict[str, Any]:
    from deploylib.manifest import Entry

    files = {n: Entry(n, i * 1000, 0o644 if i % 2 else 0o4755, f"{i:064x}") for i, n in enumerate(ODD_NAMES)}
    files["link"] = Entry("link", 5, 0o777, "f" * 64, link="../a\"b\udcff")
    return files


def test_manifests_and_release_records_read_back_as_written_for_every_name_a_tree_can_hold(tmp_path: Path) -> None:
    """Format 3 holds a manifest as columns: every name a tree can hold (not UTF-8, newlines, quotes, a
    file named like a column), a link and set-id modes come back as the same entries, in the same order."""
    import json

    from deploylib.jsonfile import loads_state
    from deploylib.manifest import Release, load_release, manifest_file_chunks, manifest_from_state, save_release

    files = _odd_manifest()
    again = manifest_from_state(loads_state(b"".join(manifest_file_chunks(files))))
    assert again == files and list(again) == list(files)
    assert manifest_from_state(loads_state(b"".join(manifest_file_chunks({})))) == {}
    save_release(tmp_path / "d.json", Release(files, ["dir", "ü"], "VERSION-ä"))
    back = load_release(tmp_path / "d.json")
    assert back is not None and back.files == files and back.dirs == ["dir", "ü"] and back.version_file == "VERSION-ä"
    assert json.loads((tmp_path / "d.json").read_text())["format"] == 3


@pytest.mark.parametrize("count", [0, 1, 2047, 2048, 2049, 5000])
def test_manifests_are_written_in_pieces_exactly_as_json_dumps_writes_them(count: int) -> None:
    """Written a slice of entries at a time (memory), the bytes must still be json.dumps's: at each slice's
    edge, and for every name a tree can hold."""
    from deploylib.manifest import Entry, Release, manifest_chunks, manifest_columns

    files = dict(list(_odd_manifest().items())[:count])
    files.update({f"d/{i}": Entry(f"d/{i}", i, 0o644, f"{i:064x}") for i in range(len(files), count)})
    assert b"".join(manifest_chunks(files)) == json.dumps(manifest_columns(files)).encode()
    release = Release(files, ["dir", "ü"], "VERSION-ä")
    assert b"".join(release.json_chunks()) == json.dumps(release.to_json()).encode()


@pytest.mark.parametrize("change", [{"path": "b/\ud800.py"}, {"path": "b/" + "x" * 256}, {"size": 2**63},
                                    {"link": "x\ud800"}, {"size": 10**4000}])
def test_format_2_refuses_a_name_no_file_can_have_and_a_size_no_file_has(change: dict[str, Any]) -> None:
    """What the columns refuse, an earlier version's object per file refuses too (these became internal
    errors further on: an encoding error, ENAMETOOLONG, an OverflowError)."""
    from deploylib.manifest import manifest_from_state

    entry = {"path": "b", "size": 1, "mode": 0o644, "sha256": "b" * 64, **change}
    with pytest.raises(ValueError, match="bad manifest entry"):
        manifest_from_state({"a": {"path": "a", "size": 1, "mode": 0o644, "sha256": "a" * 64}, entry["path"]: entry})


def test_a_record_or_manifest_of_a_newer_format_says_so(tmp_path: Path) -> None:
    """A downgrade, or a newer version's state: named as such, not as damage to move aside."""
    from deploylib.errors import CorruptState
    from deploylib.manifest import load_release, manifest_from_state

    with pytest.raises(ValueError, match="written by a newer MCP Deploy \\(format 4\\); upgrade"):
        manifest_from_state({"format": 4, "files": {}})
    (tmp_path / "d.json").write_text(json.dumps({"format": 4, "files": {}, "dirs": [], "version_file": "V"}))
    with pytest.raises(CorruptState) as refused:
        load_release(tmp_path / "d.json")
    assert refused.value.message == (f"{tmp_path / 'd.json'}: release record written by a newer MCP Deploy "
                                     "(format 4); upgrade to read it (production is untouched)")


def test_records_and_manifests_an_earlier_version_wrote_are_still_read(tmp_path: Path) -> None:
    """A store keeps its snapshots, and production its release record, across an upgrade: format 2 (an
    object per file) and the first format (a bare manifest) read as they always did."""
    import json

    from deploylib.jsonfile import loads_state
    from deploylib.manifest import load_release, manifest_from_state

    files = _odd_manifest()
    old = {p: e.to_json() for p, e in files.items()}  # what format 2 wrote, json.dumps's exact text
    assert manifest_from_state(loads_state(json.dumps(old))) == files
    (tmp_path / "two.json").write_text(json.dumps({"format": 2, "files": old, "dirs": ["dir"], "version_file": "V"}))
    two = load_release(tmp_path / "two.json")
    assert two is not None and two.files == files and two.dirs == ["dir"] and two.version_file == "V"
    (tmp_path / "one.json").write_text(json.dumps(old))
    one = load_release(tmp_path / "one.json")
    assert one is not None and one.files == files and one.dirs == []


def _columns(**change: Any) -> str:
    import json

    columns: dict[str, Any] = {"paths": ["a", "b"], "sizes": [1, 2], "modes": [0o644, 0o755],
                               "sha256": ["a" * 64, "b" * 64], "links": {}}
    columns.update(change)
    return json.dumps({"format": 3, "files": {k: v for k, v in columns.items() if v is not None}})


@pytest.mark.parametrize("text, why", [
    (_columns(paths=["a", "a"]), "a path appears twice"),
    (_columns(paths=["a", "../b"]), "'../b'"),
    (_columns(paths=["a", "/etc/passwd"]), "'/etc/passwd'"),
    (_columns(paths=["a", "b/"]), "'b/'"),
    (_columns(paths=["a", "b\u0000c"]), "bad manifest entry"),
    (_columns(paths=["a", 7]), "bad manifest entry"),
    (_columns(paths=["a", "b/\ud800.py"]), "bad manifest entry"),  # no file name decodes to a lone surrogate
    (_columns(paths=["a", "b/" + "x" * 256]), "bad manifest entry"),  # over NAME_MAX: lstat said ENAMETOOLONG
    (_columns(sizes=[1, 2**63]), "size or mode"),  # int(10**4000) became an OverflowError in a report
    (_columns(links={"a": "x\ud800"}), "'a' (link)"),
    (_columns(paths=["a"]), "differ in kind or length"),
    (_columns(sizes=[1, -1]), "size or mode"),
    (_columns(sizes=[1, True]), "size or mode"),
    (_columns(sizes=[1, 2.0]), "size or mode"),
    (_columns(sizes=[1, "2"]), "size or mode"),
    (_columns(modes=[0o644, 0o10000]), "size or mode"),
    (_columns(modes=[0o644, -1]), "size or mode"),
    (_columns(sha256=["a" * 64, "../../victim"]), "sha256"),
    (_columns(sha256=["a" * 64, "B" * 64]), "sha256"),
    (_columns(sha256="a" * 128), "differ in kind or length"),
    (_columns(links={"c": "x"}), "'c' (link)"),
    (_columns(links={"a": ""}), "'a' (link)"),
    (_columns(links={"a": "x\u0000y"}), "'a' (link)"),
    (_columns(links={"a": 5}), "'a' (link)"),
    (_columns(links=["a"]), "differ in kind or length"),
    (_columns(links=None), "not a manifest's columns"),
    (_columns(extra=[]), "not a manifest's columns"),
    ('{"format": 3, "files": {"paths": [], "sizes": [], "modes": [], "sha256": [], "links": {}}, "more": 1}',
     "unexpected keys"),
    ('{"format": 3, "files": {"sizes": [], "paths": [], "modes": [], "sha256": [], "links": {}}}',
     "not a manifest's columns"),
    ('{"format": 3, "files": {"paths": [], "paths": [], "sizes": [], "modes": [], "sha256": [], "links": {}}}',
     "duplicate key"),
    ('{"format": "3", "files": {}}', "bad manifest entry 'format' (not an object with path, size, mode and sha256)"),
    ('{"a": 5}', "bad manifest entry 'a' (not an object"),
    ('{"a": {"path": "a", "size": 1, "mode": 420}}', "bad manifest entry 'a' (not an object"),
    ("[]", "not a manifest (neither columns nor an object of entries)"),
    ('"x"', "not a manifest (neither columns nor an object of entries)"),
])
def test_a_forged_manifest_in_columns_is_refused_naming_what_is_wrong(tmp_path: Path, text: str, why: str) -> None:
    """Each column is checked at once, in C: these are the forgeries each check stands for (a path out of
    the tree, a name that is no object, a bool or float where an int belongs, a link to nothing, a path
    twice: the last would win in a dict and hide the first). In a snapshot and in a release record alike."""
    from deploylib.errors import CorruptState
    from deploylib.jsonfile import loads_state
    from deploylib.manifest import load_release, manifest_from_state

    with pytest.raises(ValueError, match=re.escape(why)):
        manifest_from_state(loads_state(text))
    record = json.loads(text) if "duplicate" not in why and "unexpected" not in why else None
    if type(record) is dict:
        (tmp_path / "d.json").write_text(json.dumps({**record, "dirs": [], "version_file": "VERSION"}))
        with pytest.raises(CorruptState, match="release record is damaged"):
            load_release(tmp_path / "d.json")


def test_checking_many_object_names_at_once_agrees_with_checking_each() -> None:
    """`all_sha256` (one pass in C over a manifest's names) against `is_sha256` one by one, on names a
    hostile state file could hold: one character off, added, removed, a newline or NUL inside."""
    import random

    from deploylib.manifest import all_sha256, is_sha256

    rng = random.Random(7)
    for _ in range(3000):
        names: list[object] = [rng.randbytes(32).hex() for _ in range(rng.randint(1, 4))]
        i = rng.randrange(len(names))
        name = str(names[i])
        at = rng.randrange(len(name) + 1)
        names[i] = rng.choice([name[:at] + rng.choice("0aG\n\x00é") + name[at:], name[:at] + name[at + 1:],
                               name[:at] + rng.choice("0afZ\n") + name[at + 1:], name.upper(), name, 7, ""])
        assert all_sha256(names) == all(is_sha256(n) for n in names), names  # type: ignore[arg-type]
    assert all_sha256([])


def test_checking_many_paths_at_once_agrees_with_checking_each() -> None:
    """`all_plain` (substring searches and a regex over all of a manifest's paths joined by NUL) against
    `safe_relpath` one by one, on paths built from the parts a hostile state file would use: a name no
    file can have (a lone surrogate; over NAME_MAX bytes, in ASCII or in two-byte characters) included."""
    import random

    from deploylib.layout import safe_relpath
    from deploylib.manifest import all_plain

    rng = random.Random(3)
    parts = ["a", "b.py", ".", "..", "", "x y", "\0", "é", "/", "\n", "\udcff", "\ud800", "a" * 255, "a" * 256,
             "é" * 127 + "a", "é" * 128]
    for _ in range(20000):
        paths = []
        for _ in range(rng.randint(1, 3)):
            path = "/".join(rng.choice(parts) for _ in range(rng.randint(1, 4)))
            paths.append(rng.choice(["", "/"]) + path + rng.choice(["", "/"]))
        assert all_plain(paths) == all(safe_relpath(p) for p in paths), paths
    assert all_plain([]) and not all_plain([7])  # type: ignore[list-item]


def test_judging_a_manifest_in_bulk_agrees_with_judging_each_entry() -> None:
    """`manifest_problem` decides a sound manifest in bulk and walks the entries only to name a problem:
    on random manifests (entries inside others at any depth, keys naming another entry, links inside and
    leaving the tree), the bulk verdict is exactly whether the walk finds anything."""
    import random

    from deploylib import manifest
    from deploylib.manifest import Entry, manifest_problem

    sha = "0" * 64
    rng = random.Random(5)
    names = ["a", "b", "c.py", "d"]
    for _ in range(5000):
        files: dict[str, Entry] = {}
        for _ in range(rng.randint(1, 6)):
            path = "/".join(rng.choice(names) for _ in range(rng.randint(1, 4)))
            link = rng.choice([None, None, None, "c.py", "../c.py", "../../../x", "/etc/passwd", "b/../a"])
            files[path] = Entry(path, 1, 0o644, sha, link)
        if rng.random() < 0.1:
            key = rng.choice(list(files))
            files[key + "x"] = files.pop(key)
        found = manifest_problem(files)
        assert manifest._plainly_sound(files) == (found is None), (files, found)
    deep = {p: Entry(p, 1, 0o644, sha) for p in ("a/b", "a/b/c/d/e.py", "z.py")}
    assert manifest_problem(deep) == "a/b/c/d/e.py lies inside a/b, which is a file or symlink of the same release"
    assert manifest_problem({p: Entry(p, 1, 0o644, sha) for p in ("a/b/c.py", "a/b/d.py", "e.py")}) is None


def test_a_shared_manifest_holds_the_other_manifests_entry_and_path_string_where_they_agree() -> None:
    """Three manifests of 100,000 files held three tuples and strings for each unchanged file: `shared`
    keeps one of each, the other manifest's (its entry and the very string of its path), and keeps its own
    where the two differ."""
    from deploylib.manifest import Entry, shared

    def fresh(path: str) -> str:  # a string of its own, as a parsed record holds (literals are shared)
        return "".join(["x/", path])

    like = {p: Entry(p, 1, 0o644, "a" * 64) for p in (fresh("same.py"), fresh("edited.py"))}
    files = {p: Entry(p, 1, 0o644, "a" * 64) for p in (fresh("same.py"), fresh("only.py"))}
    files[fresh("edited.py")] = Entry(fresh("edited.py"), 2, 0o644, "b" * 64)
    out = shared(files, like)
    assert out == files and list(out) == list(files)
    keys = {k: k for k in out}
    like_keys = {k: k for k in like}
    assert out["x/same.py"] is like["x/same.py"] and keys["x/same.py"] is like_keys["x/same.py"]
    assert keys["x/same.py"] is not next(iter(files))  # the record's own string is let go
    assert out["x/edited.py"] is files["x/edited.py"] and out["x/only.py"] is files["x/only.py"]


def test_selecting_a_whole_tree_at_once_agrees_with_asking_of_each_path() -> None:
    """`SyncRules.select` (the scan's bulk match: regexes run from C over the list, the secret names over the
    paths lowercased in one piece) against `is_managed` and the withheld test one path at a time, with
    upper case, characters whose lowercase is longer ('İ'), newlines and a lifted secret."""
    import random

    parts = ["a", "B", "İd_RSA", "k.PEM", "server.py", ".ENV", ".envrc", "x\ny", "İ", "logs", "c.key",
             "__pycache__", "t~", "ok.md", "Secret.yaml", ".ssh", "sec_key", "é.json"]
    rng = random.Random(5)
    paths = ["/".join(rng.choice(parts) for _ in range(rng.randint(1, 4))) for _ in range(5000)]
    for sync in (rules(["**"]), rules(["**/*.py", "**/*.PEM", "logs/"], ["a/**"], ["**/c.key", "İd_rsa"]),
                 rules([]), rules(["**"], allow=["**"])):
        managed, withheld = sync.select(paths)
        assert managed == [p for p in paths if sync.is_managed(p)]
        assert withheld == [p for p in paths if not sync.is_managed(p) and sync.is_secret(p)
                            and sync.include.matches(p) and not sync.excluded(p)]
    assert rules(["**"]).select([]) == ([], [])
    assert rules(["**"]).select(["k.PEM", "a.py"]) == (["a.py"], ["k.PEM"])  # the test can fail


def test_a_file_hashed_again_this_run_is_never_answered_from_the_old_entry() -> None:
    """Read once this run (it had changed), then put back to its old size and mtime (`touch -r`, a restore):
    only reading it again can say what it holds now, as before format 3."""
    from deploylib.manifest import Hashes, TreeHashes

    def st(size: int, mtime: int) -> os.stat_result:
        return os.stat_result((0o100644, 7, 1, 1, 0, 0, size, 0, 0, 0, 0, 0, 0, mtime, mtime, mtime))

    old_time = time.time_ns() - 3600 * 10**9
    tree = TreeHashes(Hashes.from_rows([(7, 1, 5, old_time, old_time, "a" * 64)]), None)
    assert tree.get(st(5, old_time)) == "a" * 64
    tree.put(st(6, old_time + 10**9), "b" * 64)
    assert tree.get(st(6, old_time + 10**9)) == "b" * 64
    assert tree.get(st(5, old_time)) is None


def test_a_warm_process_never_keeps_a_written_record_that_parsing_would_refuse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record kept as written must be what reading the file gives: one no cold command would accept
    (a directory leaving the tree, a key naming another entry) is refused by the warm server too."""
    from deploylib import warm
    from deploylib.errors import CorruptState
    from deploylib.manifest import Entry, Release, load_release, save_release

    monkeypatch.setattr(warm, "ENABLED", True)
    monkeypatch.setattr(warm, "_records", warm.OrderedDict())
    entry = Entry("a", 1, 0o644, "a" * 64)
    for i, bad in enumerate([Release({"a": entry}, [".."]), Release({"a": entry}, [], "x/V")]):
        path = tmp_path / f"d-{i}.json"
        save_release(path, bad)
        with pytest.raises(CorruptState):
            load_release(path)
    save_release(tmp_path / "d-key.json", Release({"b": entry}))  # a key naming another entry's path
    read = load_release(tmp_path / "d-key.json")
    assert read is not None and read.files == {"a": entry}  # what the file says (it holds paths only)


@pytest.mark.parametrize("piece", [3, 6, 33, 96, 32 * 3 * 1024])
def test_a_hash_cache_section_is_written_a_slice_of_digests_at_a_time_as_one_base64_text(
        monkeypatch: pytest.MonkeyPatch, piece: int) -> None:
    """The digests are held as raw bytes and written in slices (memory at 100,000 files): at any slice of a
    multiple of 3 bytes, the text is base64 of all of them at once, and reads back to the same entries."""

    from deploylib import manifest
    from deploylib.manifest import Hashes

    monkeypatch.setattr(manifest, "_B64_SLICE", piece)
    for n in (0, 1, 2, 3, 5, 97):
        rows = [(i, 1, i * 10, i * 100, i * 1000, hashlib.sha256(b"%d" % i).hexdigest()) for i in range(n)]
        hashes = Hashes.from_rows(rows)
        section = json.loads(b"".join(hashes.json_chunks()))
        digests = b"".join(bytes.fromhex(r[5]) for r in rows)
        assert section["sha256"] == base64.b64encode(digests).decode()
        again = Hashes.from_json(section)
        assert [again.sha(i) for i in range(n)] == [r[5] for r in rows]
        assert list(again.ctimes) == [r[4] for r in rows]
        assert list(again.inos) == [r[0] for r in rows]


def test_the_saved_cache_holds_exactly_the_entries_seen_and_hashed_this_run_in_inode_order() -> None:
    """`TreeHashes.kept` copies runs of the old arrays and merges the fresh rows in (no object per entry):
    compared, on random trees, with the rows a plain filter and sort would keep."""
    import random

    from deploylib.manifest import Hashes, TreeHashes

    def rows(h: Hashes) -> list[tuple[int, int, int, int, int, str]]:
        return [(h.inos[i], h.devs[i], h.sizes[i], h.mtimes[i], h.ctimes[i], h.sha(i)) for i in range(len(h))]

    rng = random.Random(1125)

    def sha() -> str:
        return f"{rng.randrange(16**64):064x}"

    for _ in range(200):
        unique = {(rng.randrange(50), rng.randrange(3)): (rng.randrange(9), rng.randrange(9), rng.randrange(9), sha())
                  for _ in range(rng.randrange(40))}  # one entry per (inode, device), as a scan makes
        old = Hashes.from_rows([(ino, dev, *known) for (ino, dev), known in unique.items()])
        tree = TreeHashes(old, None)
        tree._seen = bytearray(rng.random() < 0.8 for _ in range(len(old)))
        tree._fresh = {(rng.randrange(60), rng.randrange(3)): (1, 2, rng.randrange(9), sha())
                       for _ in range(rng.choice([0, 0, 1, 5, 30]))}
        expected = [r for r, seen in zip(rows(old), tree._seen) if seen and (r[0], r[1]) not in tree._fresh]
        expected += [(ino, dev, *known) for (ino, dev), known in tree._fresh.items()]
        kept = tree.kept()
        assert sorted(rows(kept)) == sorted(expected)
        assert list(kept.inos) == sorted(kept.inos)
        again = Hashes.from_json(json.loads(b"".join(kept.json_chunks())))
        assert rows(again) == rows(kept)
