"""Walk a tree under the sync rules into a manifest: path -> size, mode, sha256, symlink target.

The walk never follows symlinks (no loops, never leaves the root) and enters
only the directories the include globs can reach. Hashes come from a cache
keyed by (device, inode, size, mtime, ctime), so unchanged files are not re-read.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import eq, is_not, itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, NamedTuple

if TYPE_CHECKING:
    from array import array

from .errors import CorruptState, PreflightFailed
from .fsutil import atomic_write, read_state, sha256_file
from .globs import SyncRules
from .ignore import VENV_MARKER
from .jsonfile import loads_state, why
from .layout import NAME_MAX, VERSION_FILE, plain_name, safe_relpath


class Entry(NamedTuple):
    """One managed file; `link` is set (and sha256 is of the link text) for symlinks.

    A NamedTuple rather than a dataclass: tens of thousands are built per scan.
    """

    path: str
    size: int
    mode: int
    sha256: str
    link: str | None = None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"path": self.path, "size": self.size, "mode": self.mode, "sha256": self.sha256}
        if self.link is not None:
            data["link"] = self.link
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Entry":
        """An entry read back from a state file; ValueError unless every field is what we write."""
        if type(data) is not dict or not _ENTRY_KEYS <= data.keys():
            raise ValueError("bad manifest entry (not an object with path, size, mode and sha256)")
        entry = cls(data["path"], data["size"], data["mode"], data["sha256"], data.get("link"))
        if not (safe_relpath(entry.path) and _whole(entry.size) and entry.size <= MAX_SIZE and _whole(entry.mode)
                and entry.mode <= 0o7777 and is_sha256(entry.sha256) and (entry.link is None or link_text(entry.link))):
            raise ValueError(f"bad manifest entry {str(entry.path)[:80]!r}")
        return entry


Manifest = dict[str, Entry]
_ENTRY_KEYS = {"path", "size", "mode", "sha256"}
new_entry = tuple.__new__  # new_entry(Entry, fields) builds one in C; Entry(...) is a Python-level __new__
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
MAX_SIZE = 2**63 - 1  # a file's size is an off_t: a larger one (or 10**4000) describes no file


def link_text(link: object) -> bool:
    """A symlink's target as a state file may hold it: text a link can hold (no NUL, os.fsencode can write it)."""
    if type(link) is not str or not link or "\0" in link:
        return False
    try:
        os.fsencode(link)
    except UnicodeError:
        return False
    return True


def manifest_from_json(files: dict[str, Any]) -> Manifest:
    """A whole manifest read back from a state file (path -> entry as `Entry.to_json` writes it); ValueError
    unless every entry is what we write and sits under its own path.

    The checks of `Entry.from_json`, done in bulk (tens of thousands of entries per state file): the hashes
    and the paths are checked over all of them at once, the plain ints by their type; anything the fast
    checks do not clear goes through `Entry.from_json` itself, which says what is wrong.
    """
    if type(files) is not dict:
        raise ValueError("not a manifest (neither columns nor an object of entries)")
    out: Manifest = {}
    shas: list[str] = []
    for path, data in files.items():
        if type(data) is not dict or not _ENTRY_KEYS <= data.keys():  # "format": "3" is such a pair
            raise ValueError(f"bad manifest entry {str(path)[:80]!r} (not an object with path, size, mode and sha256)")
        size, mode, sha, link = data["size"], data["mode"], data["sha256"], data.get("link")
        if (type(size) is int and type(mode) is int and 0 <= size <= MAX_SIZE and 0 <= mode <= 0o7777
                and type(sha) is str and len(sha) == 64 and link is None and data["path"] == path
                and type(path) is str):
            out[path] = Entry(path, size, mode, sha)
            shas.append(sha)
        else:
            entry = Entry.from_json(data)
            if entry.path != path:
                raise ValueError("manifest key differs from its entry's path")
            out[path] = entry
    if not all_sha256(shas):
        raise ValueError("bad manifest entry (sha256)")
    refuse_unsafe(list(out))
    return out


# With a NUL (which no path holds) before, between and after the paths, each unsafe spelling `safe_relpath`
# refuses is one of these substrings: "" is NUL NUL, a leading "/" is NUL "/", "." is NUL "." NUL, ...
_NOT_PLAIN = ("\0\0", "\0/", "/\0", "//", "\0.\0", "\0..\0", "\0./", "\0../", "/.\0", "/..\0", "/./", "/../")
# names of at most NAME_MAX bytes between the separators; possessive, so a long run fails without backtracking
_SHORT_NAMES = re.compile(rb"(?:[^/\0]{0,%d}+[/\0])*+[^/\0]{0,%d}+" % (NAME_MAX, NAME_MAX))


def refuse_unsafe(paths: list[str]) -> None:
    """ValueError naming the first of `paths` that `safe_relpath` refuses, if any (`all_plain` asks in C)."""
    if not all_plain(paths):
        bad = next((path for path in paths if not safe_relpath(path)), "")  # the two agree (tested)
        raise ValueError(f"bad manifest entry {str(bad)[:80]!r}")


def all_plain(paths: list[str]) -> bool:
    """`safe_relpath` of every one, by a dozen substring searches and a regex in C over all of them at once."""
    if not paths:
        return True
    try:
        text = "\0" + "\0".join(paths) + "\0"
        text.encode("utf-8", "surrogateescape")  # what os.fsencode does to each
    except (TypeError, UnicodeError):  # not all str, or a name no file can have
        return False
    if text.count("\0") != len(paths) + 1 or any(bad in text for bad in _NOT_PLAIN):
        return False
    if max(map(len, paths)) <= NAME_MAX // 4:  # UTF-8 spends at most 4 bytes a character: no name is too long
        return True
    longer = "\0".join(p for p in paths if len(p) > NAME_MAX // 4).encode("utf-8", "surrogateescape")
    return _SHORT_NAMES.fullmatch(longer) is not None


MANIFEST_FORMAT = 3  # manifests held as columns; 2 (and 1, a bare manifest) was a JSON object per file
COLUMNS = ("paths", "sizes", "modes", "sha256", "links")


def manifest_columns(files: Manifest) -> dict[str, Any]:
    """A manifest as state files hold it since format 3: one list per field, the targets of the symlinks by
    path. JSON parses lists in C, where an object per file cost a Python call each (a 10,000-file record:
    20 ms to read, 6 ms now); the paths are the entries' own, so a key cannot name another entry's path."""
    entries = list(files.values())
    return {"paths": [e.path for e in entries], "sizes": [e.size for e in entries],
            "modes": [e.mode for e in entries], "sha256": [e.sha256 for e in entries],
            "links": {e.path: e.link for e in entries if e.link is not None}}


def manifest_from_columns(columns: Any) -> Manifest:
    """A manifest read back from `manifest_columns`'s form; ValueError unless it is exactly what that
    writes: the checks of `Entry.from_json` over each column at once, in C, and no path twice."""
    if type(columns) is not dict or tuple(columns) != COLUMNS:
        raise ValueError("not a manifest's columns")
    paths, sizes, modes, shas, links = (columns[key] for key in COLUMNS)
    if not (type(paths) is list and type(sizes) is list and type(modes) is list and type(shas) is list
            and type(links) is dict and len(paths) == len(sizes) == len(modes) == len(shas)):
        raise ValueError("the manifest's columns differ in kind or length")
    if set(map(type, sizes)) - {int} or set(map(type, modes)) - {int}:  # a bool's type is bool: refused
        raise ValueError("bad manifest entry (size or mode)")
    if paths and (min(sizes) < 0 or max(sizes) > MAX_SIZE or min(modes) < 0 or max(modes) > 0o7777):
        raise ValueError("bad manifest entry (size or mode)")
    if not all_sha256(shas):
        raise ValueError("bad manifest entry (sha256)")
    refuse_unsafe(paths)
    out = dict(zip(paths, map(new_entry, repeat(Entry), zip(paths, sizes, modes, shas, repeat(None)))))
    if len(out) != len(paths):
        raise ValueError("a path appears twice in the manifest")
    for path, link in links.items():
        if path not in out or not link_text(link):
            raise ValueError(f"bad manifest entry {str(path)[:80]!r} (link)")
        out[path] = out[path]._replace(link=link)
    return out


def manifest_from_state(data: Any) -> Manifest:
    """A snapshot's manifest as its file holds it: format 3's columns, or an earlier version's bare
    object of entries (still read: a store keeps its snapshots across upgrades)."""
    if type(data) is dict and data.get("format") == MANIFEST_FORMAT:  # a bare manifest's values are objects
        if tuple(data) != ("format", "files"):
            raise ValueError("unexpected keys beside the manifest")
        return manifest_from_columns(data["files"])
    newer_format(data)
    return manifest_from_json(data)


class NewerFormat(ValueError):
    """A state file in a later version's format (a downgrade): not damage, to move aside and redeploy."""


def newer_format(data: Any) -> None:
    if type(data) is dict and type(data.get("format")) is int and data["format"] > MANIFEST_FORMAT:
        raise NewerFormat(f"written by a newer MCP Deploy (format {data['format']}); upgrade to read it")


_SLICE = 2048  # entries per piece written: ~100 KB


def manifest_chunks(files: Manifest) -> Iterator[bytes]:
    """`json.dumps(manifest_columns(files))`, the same bytes, a slice of entries at a time: at 100,000 files
    the whole text (10 MB, and json.dumps's pieces of it) left ~20 MB the process never gave back."""
    from json.encoder import encode_basestring_ascii as quote  # what json.dumps uses for every string

    entries = list(files.values())
    columns: tuple[tuple[str, Callable[[Any], str]], ...] = (("paths", quote), ("sizes", str), ("modes", str),
                                                             ("sha256", quote))  # in Entry's order: n is the field
    for n, (name, encode) in enumerate(columns):  # a column's values taken a slice at a time too: 3 MB less
        yield f'{", " if n else "{"}"{name}": ['.encode()
        for i in range(0, len(entries), _SLICE):
            yield ((", " if i else "") + ", ".join(map(encode, map(itemgetter(n), entries[i:i + _SLICE])))).encode()
        yield b"]"
    yield f', "links": {json.dumps({e.path: e.link for e in entries if e.link is not None})}}}'.encode()


def manifest_file_chunks(files: Manifest) -> Iterator[bytes]:
    """A snapshot's manifest file, as `manifest_from_state` reads it."""
    yield b'{"format": %d, "files": ' % MANIFEST_FORMAT
    yield from manifest_chunks(files)
    yield b"}"


def all_sha256(shas: list[str]) -> bool:
    """`is_sha256` of every one, checked over all of them at once in C (for the thousands of a manifest):
    joined by newlines, they must be exactly 64 lowercase hex digits between each pair of newlines."""
    if not shas:
        return True
    try:
        data = ("\n".join(shas) + "\n").encode("ascii")
    except (TypeError, UnicodeEncodeError):  # not all str, or not all ASCII
        return False
    return sha256_lines(data) == len(shas)


def sha256_lines(data: bytes) -> int | None:
    """How many sha256 names `data` holds, one a line (64 lowercase hex digits and a newline each), or None
    when it holds anything else: checked in C over all of them at once."""
    n = len(data) // 65
    if (len(data) == 65 * n and data.count(b"\n") == n and data[64::65] == b"\n" * n
            and not data.translate(None, b"0123456789abcdef\n")):
        return n
    return None


def is_sha256(text: object) -> bool:
    """A lowercase hex sha256: the only names objects have, so the only ones a path is built from."""
    return isinstance(text, str) and _SHA256.match(text) is not None


def _whole(n: object) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0


@dataclass
class Scan:
    entries: Manifest
    withheld: list[str]  # secret-looking files kept out of the sync set
    stamps: dict[str, int] = field(default_factory=dict)  # source scans: mtime_ns before hashing (size: the entry's)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, kind): fifos, sockets, devices


def special_kind(mode: int) -> str | None:
    """What a file that is not regular, a symlink or a directory is ("fifo", "socket", ...), else None.

    Such files cannot be deployed (reading a FIFO blocks; a socket or device has no bytes to ship), so
    a deploy skips them and says so."""
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode):
        return None
    for test, kind in ((stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return kind
    return "special file"


SPOOL_MIN = 16 * 1024 * 1024  # a changed source file this large is copied while it is hashed: one read
RACY_NS = 2_000_000_000  # files modified this recently are never taken from the cache


class Hashes:
    """One tree's saved hashes: parallel arrays sorted by inode, and the sha256s' 32 raw bytes each, as one
    bytes object. On disk each array is base64 of its little-endian bytes inside the JSON, and so are the
    digests: reading it is a copy, where JSON numbers cost ~140 ns each to parse, and memory holds no object
    per entry (100,000 files: ~7 MB instead of ~70 MB of lists and keys).

    A file is known by its device, inode, size, mtime and ctime. The ctime is what no program can set: a
    file rewritten in place at the same size with its mtime put back (`cp -p`, `touch -r`, a restore) still
    gets a new ctime, where without it the cache vouched for the old bytes, and a deploy replaced the edit
    unseen and in no backup."""

    __slots__ = ("inos", "devs", "sizes", "mtimes", "ctimes", "shas")
    ARRAYS = (("ino", "Q"), ("dev", "Q"), ("size", "q"), ("mtime", "q"), ("ctime", "q"))
    NAMES = tuple(name for name, _ in ARRAYS)

    def __init__(self, inos: Iterable[int], devs: Iterable[int], sizes: Iterable[int], mtimes: Iterable[int],
                 ctimes: Iterable[int], shas: bytes) -> None:
        from array import array

        self.inos, self.devs = array("Q", inos), array("Q", devs)
        self.sizes, self.mtimes, self.ctimes = array("q", sizes), array("q", mtimes), array("q", ctimes)
        self.shas = shas  # 32 raw bytes each: half the hex text's memory, and read in without converting

    def __len__(self) -> int:
        return len(self.inos)

    def find(self, st: os.stat_result) -> int | None:
        """The index of the entry with this file's (device, inode, size, mtime, ctime), else None."""
        inos, ino = self.inos, st.st_ino
        i = bisect_left(inos, ino)  # in C over the array: no index to build or keep (a dict of 100,000 inodes: ~11 MB)
        while i < len(inos) and inos[i] == ino:  # the same inode number on another device comes next
            if (self.devs[i] == st.st_dev and self.sizes[i] == st.st_size and self.mtimes[i] == st.st_mtime_ns
                    and self.ctimes[i] == st.st_ctime_ns):
                return i
            i += 1
        return None

    def sha(self, i: int) -> str:
        return self.shas[32 * i:32 * i + 32].hex()

    def slices(self, runs: Iterable[tuple[int, int]]) -> "Hashes":
        """The entries in these (start, end) runs, still sorted: copied a run at a time, no object per entry."""
        out, shas = Hashes((), (), (), (), (), b""), list[bytes]()
        for start, end in runs:
            self._copy_range(out, shas, start, end)
        out.shas = b"".join(shas)
        return out

    def merged(self, rows: list[tuple[int, int, int, int, int, str]]) -> "Hashes":
        """These entries with `rows` (inode, device, size, mtime, ctime, sha256; sorted) put in inode order
        among them; each row goes after the entries of its inode (`find` walks all of them)."""
        out, shas, at = Hashes((), (), (), (), (), b""), list[bytes](), 0
        for ino, dev, size, mtime, ctime, sha in rows:
            upto = bisect_right(self.inos, ino, lo=at)
            self._copy_range(out, shas, at, upto)
            for column, value in zip(out.columns(), (ino, dev, size, mtime, ctime)):
                column.append(value)
            shas.append(bytes.fromhex(sha))
            at = upto
        self._copy_range(out, shas, at, len(self))
        out.shas = b"".join(shas)
        return out

    def _copy_range(self, out: "Hashes", shas: list[bytes], start: int, end: int) -> None:
        """Append entries start..end to `out`'s arrays (copied in C) and their sha256s to `shas`."""
        for mine, theirs in zip(out.columns(), self.columns()):
            mine.extend(theirs[start:end])
        shas.append(self.shas[32 * start:32 * end])

    def columns(self) -> tuple["array[int]", ...]:
        return self.inos, self.devs, self.sizes, self.mtimes, self.ctimes

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, int, int, int, int, str]]) -> "Hashes":
        """From (inode, device, size, mtime, ctime, sha256 hex) rows, in any order."""
        return _NONE.merged(sorted(rows))

    def json_chunks(self) -> Iterator[bytes]:
        """The JSON object `from_json` reads, written a piece at a time: at 100,000 files the whole cache as one
        string, its bytes and the dict of base64 texts were ~50 MB at once, the run's peak."""
        from binascii import b2a_base64

        for n, ((name, _), a) in enumerate(zip(self.ARRAYS, self.columns())):
            yield b'%s"%s":"%s"' % (b"," if n else b"{", name.encode(), b2a_base64(_little(a).tobytes(), newline=False))
        yield b',"sha256":"'
        for start in range(0, len(self.shas), _B64_SLICE):  # 3 bytes make 4 characters: slices join exactly
            yield b2a_base64(self.shas[start:start + _B64_SLICE], newline=False)
        yield b'"}'

    @classmethod
    def from_json(cls, data: object) -> "Hashes":
        """ValueError unless it has the shape `json_chunks` writes (a section out of order only misses)."""
        from array import array
        from binascii import a2b_base64

        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in (*cls.NAMES, "sha256")):
            raise ValueError("not a section")
        arrays = []
        for name, code in cls.ARRAYS:
            a = array(code)
            a.frombytes(a2b_base64(data[name], strict_mode=True))  # ValueError unless whole 8-byte items
            arrays.append(_little(a))
        digests = a2b_base64(data["sha256"], strict_mode=True)
        if not all(len(a) == len(arrays[0]) for a in arrays) or len(digests) != 32 * len(arrays[0]):
            raise ValueError("not a section")
        inos, devs, sizes, mtimes, ctimes = arrays
        return cls(inos, devs, sizes, mtimes, ctimes, digests)


def _little(a: "array[int]") -> "array[int]":
    """The array as little-endian bytes are read or written: a copy, byte-swapped, on a big-endian machine."""
    import sys

    if sys.byteorder == "little":
        return a
    from array import array

    swapped = array(a.typecode, a)
    swapped.byteswap()
    return swapped


_NONE = Hashes((), (), (), (), (), b"")
_B64_SLICE = 32 * 3 * 1024  # digests encoded at a time: whole ones, a multiple of 3 bytes


class TreeHashes:
    """sha256 by (dev, ino, size, mtime_ns, ctime_ns) for the files of one tree, keeping only entries seen
    this run.

    Like git's "racy clean" rule: mtimes come from a coarse clock (a tick is milliseconds, up to 2 s on
    some filesystems), so a file rewritten in place at the same size within one tick keeps its key.
    Entries for files modified within RACY_NS of now are therefore neither trusted nor kept. The ctime is
    compared, not held to that window: it moves with every write and with every `utime` that puts an mtime
    back, so it only adds what the mtime cannot tell.
    """

    def __init__(self, old: Hashes, on_hash: Callable[[str, int], None] | None) -> None:
        self.on_hash = on_hash  # told of every file actually read
        # hashes a large file by copying it (a deploy's source: the copy is what it deploys); None: not done
        self.spool: Callable[[str, os.stat_result], str | None] | None = None
        self._old = old
        self._seen = bytearray(len(old))  # 1 for each old entry this run looked up and still trusts
        self._fresh: dict[tuple[int, int], tuple[int, int, int, str]] = {}  # (ino, dev) -> (size, mtime, ctime, sha)
        self._racy_after = time.time_ns() - RACY_NS  # mtimes above this are too recent to trust

    def get(self, st: os.stat_result) -> str | None:
        if st.st_mtime_ns > self._racy_after:
            return None
        if self._fresh:  # hashed this run: that, or (the file changed since) nothing
            hit = self._fresh.get((st.st_ino, st.st_dev))
            if hit is not None:
                return hit[3] if hit[:3] == _stamp(st) else None
        i = self._old.find(st)
        if i is None:
            return None
        self._seen[i] = 1
        return self._old.sha(i)

    def put(self, st: os.stat_result, sha: str) -> None:
        if st.st_mtime_ns <= self._racy_after:
            self._fresh[st.st_ino, st.st_dev] = (*_stamp(st), sha)

    def put_own(self, st: os.stat_result, sha: str) -> None:
        """Record the hash of a copy the tool wrote and stamped with an mtime older than its writing (the
        caller checks the stamp held): a later write stamps a newer mtime, so the racy rule at `put` is not
        needed. `get` still refuses the entry while the mtime is within the racy window."""
        self._fresh[st.st_ino, st.st_dev] = (*_stamp(st), sha)

    def renew(self, st: os.stat_result) -> None:
        """The commit renamed a file this run put into production: a rename changes its ctime alone (same
        inode, size and mtime), so the hash put for it holds under the new ctime; else the next run read every
        file a deploy wrote again (a 1 GB one too)."""
        hit = self._fresh.get((st.st_ino, st.st_dev))
        if hit is not None and hit[:2] == _stamp(st)[:2]:
            self._fresh[st.st_ino, st.st_dev] = (*_stamp(st), hit[3])

    def forget_if_touched(self, st: os.stat_result) -> None:
        """Before the commit renames a file this run put: its hash is dropped unless the file still shows the
        ctime it had when put. Validators and before_commit hooks ran since, and one that rewrote it in place
        with its mtime put back would be vouched for under the ctime `renew` gives it."""
        hit = self._fresh.get((st.st_ino, st.st_dev))
        if hit is not None and hit[:3] != _stamp(st):
            del self._fresh[st.st_ino, st.st_dev]

    def hash(self, path: str, st: os.stat_result) -> str:
        sha = self.get(st)
        if sha is None:
            if self.spool is not None and st.st_size >= SPOOL_MIN:
                sha = self.spool(path, st)
            if sha is None:
                sha = sha256_file(path)
            self.put(st, sha)
            if self.on_hash is not None:
                self.on_hash(path, st.st_size)
        return sha

    def unchanged(self) -> bool:
        """True when saving would write back exactly the old entries: each seen, nothing new."""
        return not self._fresh and 0 not in self._seen

    def kept(self) -> Hashes:
        """What to save: the old entries seen this run, and the fresh ones (which replace an old one)."""
        old, fresh = self._old, self._fresh
        keep = bytearray(self._seen)
        for ino, dev in fresh:  # the old entry of a file hashed again is dropped (as `find` walks, by device)
            i = bisect_left(old.inos, ino)
            while i < len(old.inos) and old.inos[i] == ino:
                if old.devs[i] == dev:
                    keep[i] = 0
                i += 1
        kept = old.slices(_runs(keep))
        if not fresh:
            return kept
        return kept.merged(sorted((ino, dev, *known) for (ino, dev), known in fresh.items()))


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    """What a fresh entry holds of a file besides its (inode, device) key: size, mtime, ctime."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _runs(flags: bytearray) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of 1s in `flags`, found in C: a few runs where nearly all are kept."""
    i, n = 0, len(flags)
    while i < n:
        start = flags.find(1, i)
        if start < 0:
            return
        end = flags.find(0, start)
        end = n if end < 0 else end
        yield start, end
        i = end


class HashCache:
    """The hash cache file: one section per tree root, saved atomically.

    A run replaces the sections of the trees it scanned and keeps the others as they were: a
    rollback scans only production and must not make the next deploy re-read the whole source.
    """

    FORMAT = 4  # 3 had no ctimes; 2 held one [size, mtime, sha256] list per "dev:ino" key: each read as no cache

    def __init__(self, path: Path | None, roots: list[Path] | None = None) -> None:
        self.path = path
        self.roots = None if roots is None else {str(r) for r in roots}  # sections worth keeping
        self.on_hash: Callable[[str, int], None] | None = None
        self._saved: dict[str, Hashes] = {}
        self._trees: dict[str, TreeHashes] = {}
        if path is not None:
            from . import warm

            kept = warm.recall(path)  # a long-lived server keeps what it last read or wrote there
            if kept is not None:
                self._saved = kept
                return
            try:
                data = loads_state(read_state(path))
                if isinstance(data, dict) and data.get("format") == self.FORMAT and isinstance(data.get("trees"), dict):
                    self._saved = {root: Hashes.from_json(section) for root, section in data["trees"].items()}
                    warm.remember(path, self._saved)
            except (OSError, ValueError, OverflowError):
                pass  # a missing or damaged cache only costs re-hashing

    def tree(self, root: Path | str) -> TreeHashes:
        key = str(root)
        if key not in self._trees:
            self._trees[key] = TreeHashes(self._saved.get(key) or _NONE, self.on_hash)
        self._trees[key].on_hash = self.on_hash
        return self._trees[key]

    def save(self) -> str | None:
        """Write the cache; a failure only costs re-reading files next time, so it is a note (returned)."""
        if self.path is None or not self.path.parent.is_dir():
            return None
        def keep(root: str) -> bool:
            return self.roots is None or root in self.roots

        if all(t.unchanged() for t in self._trees.values()) and all(map(keep, self._saved)):
            return None  # e.g. a status on an unchanged tree: nothing to write
        trees = {root: section for root, section in self._saved.items() if keep(root)}
        trees.update({root: t.kept() for root, t in self._trees.items() if keep(root) and not t.unchanged()})
        def chunks() -> Iterator[bytes]:
            yield b'{"format":%d,"trees":{' % self.FORMAT
            for n, (root, section) in enumerate(trees.items()):
                yield b'%s%s:' % (b"," if n else b"", json.dumps(root).encode())
                yield from section.json_chunks()
            yield b"}}"

        try:
            atomic_write(self.path, chunks())
        except OSError as exc:
            return f"{self.path}: hash cache not saved ({exc.strerror}); the next run reads every file again"
        from . import warm

        warm.remember(self.path, trees)
        self._saved = trees
        return None


def link_entry(relpath: str, target: str, mode: int) -> Entry:
    """The entry of a symlink: size and sha256 of its target's bytes (which need not be UTF-8)."""
    import hashlib

    data = os.fsencode(target)
    return Entry(relpath, len(data), mode, hashlib.sha256(data).hexdigest(), link=target)


def link_escapes(relpath: str, target: str) -> bool:
    """True when a symlink at `relpath` pointing to `target` resolves outside the tree root."""
    if os.path.isabs(target):
        return True
    resolved = os.path.normpath(os.path.join(os.path.dirname(relpath), target))
    return resolved == ".." or resolved.startswith("../")


def link_leaves(files: dict[str, Entry], relpath: str, target: str) -> bool:
    """True when a symlink at `relpath` pointing to `target` leads outside the tree once deployed with the
    other links of `files`: `link_escapes` reads the target alone, so `a -> s/..` beside `s -> .` passed
    (lexically `.`, really the tree's parent). Followed as the kernel would, links of `files` included."""
    if link_escapes(relpath, target):
        return True
    where = relpath.split("/")[:-1]
    todo = target.split("/")
    hops = 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not where:
                return True
            where.pop()
            continue
        where.append(part)
        found = files.get("/".join(where))
        if found is not None and found.link is not None:
            hops += 1
            if hops > 40:  # a loop: the kernel gives up (ELOOP), nothing is reached through it
                return False
            if os.path.isabs(found.link):
                return True
            where.pop()
            todo = found.link.split("/") + todo
    return False


def manifest_problem(files: dict[str, Entry]) -> str | None:
    """Why a manifest read from outside this process (a fleet controller's, a snapshot's) describes
    what no scan makes, else None: a key naming another entry's path, a link leaving the tree, or an entry
    inside another entry (a file or link of the same release: the stage would write through the link)."""
    if _plainly_sound(files):
        return None
    for key, entry in files.items():  # something is wrong: find the first problem, in order, to name it
        if key != entry.path:
            return f"the key {str(key)[:80]!r} holds the entry of {entry.path[:80]!r}"
        if entry.link is not None and link_leaves(files, entry.path, entry.link):
            return f"{entry.path} is a symlink to {entry.link}, which leads outside the target"
        parts = entry.path.split("/")
        for i in range(1, len(parts)):
            above = "/".join(parts[:i])
            if above in files:
                return f"{entry.path} lies inside {above}, which is a file or symlink of the same release"
    return None


def _plainly_sound(files: dict[str, Entry]) -> bool:
    """`manifest_problem` finds nothing, decided in bulk: every key its entry's path, no link leaving, and no
    path's directory (nor any above it) an entry. A rollback asks it of 10,000 entries; a loop per entry took
    4 ms."""
    entries = files.values()
    if not all(map(eq, files, map(itemgetter(0), entries))):
        return False
    for entry in compress(entries, map(is_not, map(itemgetter(4), entries), repeat(None))):  # the links alone
        if entry.link is not None and link_leaves(files, entry.path, entry.link):
            return False
    above: set[str] = set()
    for parent in {path.rpartition("/")[0] for path in files}:  # a few hundred directories, then their parents
        while parent and parent not in above:
            above.add(parent)
            parent = parent.rpartition("/")[0]
    return above.isdisjoint(files)


def walk(root: Path, rules: SyncRules) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Yield (relpath, dir entry) for every non-directory under the walk roots, never following links."""
    for start in rules.walk_roots():
        top = os.path.join(root, start) if start else str(root)
        if start and (os.path.islink(top) or not os.path.isdir(top)):
            continue
        stack = [(top, start)]
        while stack:
            directory, rel = stack.pop()
            try:
                with os.scandir(directory) as it:
                    children = list(it)
            except FileNotFoundError:
                continue
            if rel and any(c.name == VENV_MARKER for c in children):
                continue  # a virtualenv, whatever its name: never managed, never walked
            for child in children:
                childrel = f"{rel}/{child.name}" if rel else child.name
                if child.is_dir(follow_symlinks=False):
                    if not rules.prunes(childrel):
                        stack.append((child.path, childrel))
                else:
                    yield childrel, child


def scan(root: Path, rules: SyncRules, cache: HashCache, *, source: bool = False,
         ignored: Callable[[list[str]], set[str]] | None = None) -> Scan:
    """Manifest of the files under `root` that the sync rules select (the source tree).

    With `source=True` a symlink that escapes the root is an error: deploying it
    would make production read files outside the tree. `ignored` (git's ignore rules)
    is asked once, with every candidate path, before anything is hashed.
    """
    entries: Manifest = {}
    withheld: list[str] = []
    stamps: dict[str, int] = {}
    skipped: list[tuple[str, str]] = []
    if not root.is_dir():
        return Scan(entries, withheld)
    hashes = cache.tree(root)
    base = str(root)
    # paths only: 100,000 DirEntry objects held until the loop below cost ~20 MB
    managed, withheld = rules.select([relpath for relpath, _ in walk(root, rules)])
    if ignored is not None:
        skip = ignored(managed + withheld)
        managed = [p for p in managed if p not in skip]
        withheld = [p for p in withheld if p not in skip]
    known, lstat, S_ISREG, S_IMODE = hashes.get, os.lstat, stat.S_ISREG, stat.S_IMODE  # hoisted: once per file
    managed.sort()
    for relpath in managed:
        path = f"{base}/{relpath}"
        st = lstat(path)
        sha = known(st)
        if sha is not None and S_ISREG(st.st_mode):  # the common case, in short: a file the cache vouches for
            entries[relpath] = new_entry(Entry, (relpath, st.st_size, S_IMODE(st.st_mode), sha, None))
        else:
            kind = special_kind(st.st_mode)
            if kind is not None:
                skipped.append((relpath, kind))
                continue
            entry = _entry(path, relpath, st, hashes, source)
            if entry is None:
                continue
            entries[relpath] = entry
        if source:
            stamps[relpath] = st.st_mtime_ns  # a (size, mtime) tuple each was 8 MB at 100,000 files
    if source:
        for relpath, entry in entries.items():
            if entry.link is not None and link_leaves(entries, relpath, entry.link):
                raise PreflightFailed(
                    f"{base}/{relpath}: symlink points outside the source tree ({entry.link}, through the "
                    "links beside it); replace it with the file or exclude it in deploy.yaml")
    return Scan(entries, sorted(withheld), stamps, sorted(skipped))


def scan_paths(root: Path, paths: Iterable[str], cache: HashCache) -> Manifest:
    """Entries for those of `paths` that exist under `root` as files or symlinks (production).

    Only named paths are looked at, never a walk: production's other files are
    the user's business. A path below a symlinked or non-directory parent counts
    as absent, so nothing is ever read through a link out of the tree.
    """
    entries: Manifest = {}
    if not root.is_dir():
        return entries
    hashes = cache.tree(root)
    base = str(root)
    real_dirs: dict[str, bool] = {"": True}
    known, lstat, S_ISREG, S_IMODE = hashes.get, os.lstat, stat.S_ISREG, stat.S_IMODE  # hoisted: once per path
    last_parent, parent_real = None, True
    for relpath in sorted(paths):
        parent = relpath.rpartition("/")[0]
        if parent != last_parent:  # sorted: a directory's files come together
            last_parent, parent_real = parent, _real_parent(base, relpath, real_dirs)
        if not parent_real:
            continue
        path = f"{base}/{relpath}"
        try:
            st = lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError:
            raise _unreadable(path) from None
        sha = known(st)
        if sha is not None and S_ISREG(st.st_mode):  # the common case, in short (see `scan`)
            entries[relpath] = new_entry(Entry, (relpath, st.st_size, S_IMODE(st.st_mode), sha, None))
            continue
        entry = _entry(path, relpath, st, hashes, source=False)
        if entry is not None:
            entries[relpath] = entry
    return entries


def shared(files: Manifest, like: Manifest) -> Manifest:
    """`files`, each entry equal to the one `like` has for its path replaced by that one, and keyed by that
    entry's own path string: most files are unchanged, and at 100,000 files three manifests held three
    tuples and strings for each (a release record's keys alone: 6.6 MB)."""
    out: Manifest = {}
    get = like.get
    for path, entry in files.items():
        same = get(path)
        if same == entry:
            out[same[0]] = same  # an equal entry's path is `path`, as `like` holds the string
        else:
            out[path] = entry
    return out


def _real_parent(base: str, relpath: str, known: dict[str, bool]) -> bool:
    """Whether every parent directory of `relpath` under `base` is a real directory (memoised per directory)."""
    parent = relpath.rpartition("/")[0]
    if parent not in known:
        try:
            real = _real_parent(base, parent, known) and stat.S_ISDIR(os.lstat(f"{base}/{parent}").st_mode)
        except PermissionError:
            raise _unreadable(f"{base}/{parent}") from None
        except OSError:
            real = False
        known[parent] = real
    return known[parent]


def _unreadable(path: str) -> PreflightFailed:
    return PreflightFailed(f"{path}: cannot be looked up by this user (permission denied on a directory above "
                           "it); fix the permissions, or deploy as the user who owns the target")


def _entry(path: str, relpath: str, st: os.stat_result, hashes: TreeHashes, source: bool) -> Entry | None:
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        if source and link_escapes(relpath, target):
            raise PreflightFailed(
                f"{path}: symlink points outside the source tree ({target}); "
                "replace it with the file or exclude it in deploy.yaml"
            )
        return link_entry(relpath, target, 0o777)
    if not stat.S_ISREG(st.st_mode):
        return None  # sockets, fifos and devices are never deployed
    try:
        sha = hashes.hash(path, st)
    except PermissionError:
        raise PreflightFailed(f"{path}: cannot read file (permission denied); fix its permissions") from None
    return Entry(relpath, st.st_size, stat.S_IMODE(st.st_mode), sha)


@dataclass
class Release:
    """What a release manages: its files, and the directories this tool created for them."""

    files: Manifest
    dirs: list[str] = field(default_factory=list)
    version_file: str = VERSION_FILE  # the name its VERSION was written under

    def to_json(self) -> dict[str, object]:
        return {"format": MANIFEST_FORMAT, "files": manifest_columns(self.files), "dirs": self.dirs,
                "version_file": self.version_file}

    def json_chunks(self) -> Iterator[bytes]:
        """`json.dumps(self.to_json())`, the same bytes, in pieces (see `manifest_chunks`)."""
        yield b'{"format": %d, "files": ' % MANIFEST_FORMAT
        yield from manifest_chunks(self.files)
        yield f', "dirs": {json.dumps(self.dirs)}, "version_file": {json.dumps(self.version_file)}}}'.encode()

    def copy(self) -> "Release":
        """A record of its own (its entries are immutable and shared): what a kept record is handed out as."""
        return Release(dict(self.files), list(self.dirs), self.version_file)

    def names_problem(self) -> str | None:
        """Why its directories or version file name something other than a path inside the target, if so."""
        if not all(map(safe_relpath, self.dirs)):
            return "a path does not match its entry"
        if not plain_name(self.version_file):
            return "the version file is not a plain name"
        return None


def save_release(path: Path, release: Release) -> None:
    from . import warm

    path.parent.mkdir(parents=True, exist_ok=True)
    if not warm.ENABLED:
        atomic_write(path, release.json_chunks())
        return
    kept = release.copy()
    data = b"".join(release.json_chunks())
    atomic_write(path, data)
    if _parses_back(kept):  # the server's next preview reads it: kept as written
        warm.remember_record(path, data, kept)


def _parses_back(release: Release) -> bool:
    """Whether `load_release` would accept this record's text as it stands (what it checks beyond each
    entry's own fields): a kept record must be exactly what parsing the file gives, refusals included."""
    return (all(key == entry.path for key, entry in release.files.items()) and all_plain(list(release.files))
            and release.names_problem() is None)


def load_release(path: Path) -> Release | None:
    """A saved release record, or None when it is missing or cannot be opened (the record is then lost).

    A record that does not parse (it is written atomically: never torn), or names a
    path outside its tree, is hostile or damaged state: CorruptState, and nothing is touched.
    """
    from . import warm

    try:
        raw = read_state(path)
        kept = warm.recall_record(path, raw)  # a long-lived server: parsed already if these are the same bytes
        if isinstance(kept, Release):
            return kept.copy()
        if warm.ENABLED:
            data = loads_state(raw)
        else:  # nothing keeps the bytes: the text alone is parsed (at 100,000 files, 10 MB less at the peak)
            text = raw.decode("utf-8")
            del raw
            data = loads_state(text)
            del text
    except OSError:
        return None
    except ValueError as exc:
        raise CorruptState(f"{path}: release record is damaged ({why(exc)}); move it aside and "
                           "redeploy (production is untouched)") from None
    try:
        if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT:
            if tuple(data) != ("format", "files", "dirs", "version_file"):
                raise ValueError("unexpected keys in the record")
            files = manifest_from_columns(data["files"])
            dirs, name = data["dirs"], data["version_file"]
        elif isinstance(data, dict) and data.get("format") == 2:  # an earlier version's: an object per file
            files = manifest_from_json(data["files"])
            dirs, name = data["dirs"], data.get("version_file", VERSION_FILE)
        else:  # the first format: a bare manifest
            newer_format(data)
            files, dirs, name = manifest_from_json(data), [], VERSION_FILE
        if type(dirs) is not list or type(name) is not str:
            raise ValueError("bad dirs or version file")
        release = Release(files, list(dirs), name)
        problem = release.names_problem()
        if problem:
            raise ValueError(problem)
    except NewerFormat as exc:
        raise CorruptState(f"{path}: release record {exc} (production is untouched)") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CorruptState(f"{path}: release record is damaged ({str(exc)[:120]}); move it aside and "
                           "redeploy (production is untouched)") from None
    if warm.ENABLED:
        warm.remember_record(path, raw, release.copy())
    return release
