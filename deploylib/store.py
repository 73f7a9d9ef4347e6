"""Backups: snapshots of managed files over content-addressed objects.

    backup_dir/mcp-deploy-store.json      {"format": 1}: this directory is a store
    backup_dir/objects/ab/abcdef...       file contents, named by sha256, stored once, read-only
    backup_dir/snapshots/<id>.files.json  a snapshot's manifest (written first)
    backup_dir/snapshots/<id>.json        its header: ids, version, counts, the target it backs up (written
                                          last: publishes it)
    backup_dir/snapshots/<id>.refs        the objects its manifest references (a cache for retention, bound
                                          to the manifest's bytes by their sha256; see `_read_refs`)

Several targets may share one store. Each snapshot records the target it
backs up, and a profile lists, restores, compares and expires only its own
target's (`Store.ours`); garbage collection keeps every object that any
snapshot, of any target, references. A snapshot from before targets were
recorded is the profile's own only if no snapshot in the store names another
target and the profile's own records (its history log, production's VERSION)
name it, the operation that took it or the release it holds; otherwise it
belongs to nobody that can be told: it is listed, restored and expired by no
profile, and its objects are kept.

A snapshot costs only the objects it adds. Every restore re-hashes what it
copies, so a damaged object is caught before anything reaches production.
A directory without the marker file (or the layout of a store from before the
marker) is not a store: nothing is written into it, read from it or deleted.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from .errors import ConfigError, CorruptState, DeployError
from .fsutil import (atomic_write, copy_with_hash, has_renameat2, kernel_copy, open_regular, sha256_file,
                     sync_filesystem)
from .ids import parse_time
from .jsonfile import loads_state, why
from .layout import LOCK_FILE, STORE_FORMAT, STORE_MARKER, is_op_id, store_marker_path
from .manifest import (Entry, Manifest, NewerFormat, is_sha256, manifest_file_chunks, manifest_from_state,
                       sha256_lines)
from .naming import hint

if TYPE_CHECKING:
    from .profile import Profile

_OWN_NAMES = {STORE_MARKER, LOCK_FILE, "objects", "snapshots"}
_REFS_MAGIC = "mcp-deploy-refs 1"
_REFS_SLICE = 8192  # names decoded, or encoded, at a time


def _lines(names: list[str]) -> Iterator[bytes]:
    """A refs file's list, a name and a newline each, a slice of names at a time."""
    for start in range(0, len(names), _REFS_SLICE):
        yield ("\n".join(names[start:start + _REFS_SLICE]) + "\n").encode("ascii")


TAKE_MIN = 16 * 1024 * 1024  # an outgoing file this large becomes its backup at the commit, not copied


def takeable(st: os.stat_result, entry: Entry, known: Callable[[os.stat_result], str | None]) -> bool:
    """Whether the file showing `st` may be moved into the store as `entry`'s object: a regular file with
    no other name (a hard link elsewhere would share the object), this user's, whose hash the cache vouches
    for under the racy-clean rule (a write since would have stamped a newer mtime)."""
    return (stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_uid == os.geteuid()
            and st.st_size == entry.size and known(st) == entry.sha256)


@dataclass
class Snapshot:
    id: str
    created: str
    op_id: str  # the operation that took it
    release: str | None  # the release (deploy id) whose files it holds, if known
    version: str | None
    version_info: dict[str, Any] | None  # the VERSION of the tree it captured
    files: Manifest = field(default_factory=dict)

    file_count: int = 0
    bytes: int = 0
    target: str | None = None  # the real path of the production directory it backs up (None: not recorded)

    def header(self) -> dict[str, Any]:
        """Everything but the manifest (asdict would deep-copy every entry only to drop them)."""
        return {"id": self.id, "created": self.created, "op_id": self.op_id, "release": self.release,
                "version": self.version, "version_info": self.version_info, "file_count": len(self.files),
                "bytes": sum(e.size for e in self.files.values()), "target": self.target}

    @classmethod
    def from_header(cls, data: Any, snapshot_id: str) -> "Snapshot":
        """A header read back from the store; ValueError unless every field is what `header` writes."""
        snap = cls(**data)
        if not (snap.id == snapshot_id and is_op_id(snap.id) and isinstance(snap.created, str)
                and is_op_id(snap.op_id) and (snap.release is None or is_op_id(snap.release))
                and (snap.version is None or isinstance(snap.version, str))
                and (snap.version_info is None or isinstance(snap.version_info, dict))
                and (snap.target is None or (isinstance(snap.target, str) and os.path.isabs(snap.target)
                                             and "\0" not in snap.target))
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                        for n in (snap.file_count, snap.bytes))):
            raise ValueError("bad snapshot header")
        parse_time(snap.created)
        return snap

    def brief(self) -> dict[str, Any]:
        info = self.version_info or {}
        return {"id": self.id, "created": self.created, "release": self.release, "version": self.version,
                "git_commit": info.get("git_commit"), "deployed": info.get("deployed"),
                "files": self.file_count, "bytes": self.bytes}


def store_for(profile: Profile) -> Store:
    """The profile's store; its state dir and log may live inside it (the README's layout)."""
    return Store(profile.backup_dir, beside=(profile.state_dir, profile.log), target=profile.target,
                 own_ids=lambda: _own_ids(profile))


def _own_ids(profile: Profile) -> set[str]:
    """Every operation, release and snapshot id the profile's own records name: its history log and
    production's VERSION (how a snapshot from before targets were recorded is told to be this target's)."""
    from .history import read as read_history
    from .version import read_version

    try:
        records, _ = read_history(profile.log)
    except CorruptState:
        records = []
    live, _ = read_version(profile.target, profile.version_file)
    found = {r.get(key) for r in records for key in ("id", "release", "snapshot_id")}
    found |= {(live or {}).get(key) for key in ("deploy_id", "release", "previous_release", "snapshot_id",
                                                 "restored_from")}
    return {i for i in found if isinstance(i, str)}


def target_key(target: Path) -> str:
    """How a snapshot names its target: the real path, so two spellings of one directory are one target."""
    return os.path.realpath(target)


class Store:
    def __init__(self, root: Path, beside: Iterable[Path] = (), target: Path | None = None,
                 own_ids: Callable[[], set[str]] = set) -> None:
        self.root = root
        self.target = target_key(target) if target is not None else None  # whose snapshots `ours` keeps
        self._own_ids = own_ids
        self._owned: set[str] | None = None
        self.object_dir = root / "objects"
        self.snapshot_dir = root / "snapshots"
        self._known: set[str] | None = None
        self._guests = {p.relative_to(root).parts[0] for p in beside if p.is_relative_to(root) and p != root}
        self._check_is_store()

    def _check_is_store(self) -> None:
        """Refuse a backup_dir that is somebody's directory: prune would delete what it calls objects."""
        marker = store_marker_path(self.root)
        try:
            names = set(os.listdir(self.root))
        except FileNotFoundError:
            return  # made on first use
        except NotADirectoryError:
            raise ConfigError(f"backup_dir {self.root}: is not a directory; point backup_dir at a new or "
                              "empty directory") from None
        for sub in ("objects", "snapshots"):
            if sub in names and os.path.islink(self.root / sub):
                raise CorruptState(f"{self.root / sub}: is a symlink; a store's directories must be its own "
                                   "(prune would delete in the link's target): replace it with the directory")
        if STORE_MARKER in names:
            try:
                data = loads_state(marker.read_bytes())
                fmt = data["format"] if isinstance(data, dict) else None
            except (OSError, ValueError, KeyError):
                fmt = None
            if fmt != STORE_FORMAT:
                raise CorruptState(f"{marker}: not a store of format {STORE_FORMAT} (found {str(fmt)[:40]}); "
                                   "this MCP Deploy cannot use it: point backup_dir at a new directory")
            return
        names = {n for n in names if not n.startswith(f".{STORE_MARKER}.tmp-")}  # another process claiming it
        if not names <= _OWN_NAMES | self._guests or ("objects" in names and not _objects_only(self.object_dir)):
            raise ConfigError(f"backup_dir {self.root}: holds files that are not MCP Deploy backups (no "
                              f"{STORE_MARKER}); point backup_dir at a new or empty directory")

    def claim(self) -> None:
        """Make the directory a store (marker first) before anything is written into it."""
        self.root.mkdir(parents=True, exist_ok=True)
        marker = store_marker_path(self.root)
        if not marker.exists():
            atomic_write(marker, json.dumps({"format": STORE_FORMAT}).encode())

    def object_path(self, sha: str) -> Path:
        return self.object_dir / sha[:2] / sha

    def has(self, sha: str) -> bool:
        """Whether an object is stored; one listing of the store instead of a stat per file."""
        if self._known is None:
            from .warm import object_names

            self._known = object_names(self.object_dir)
        return sha in self._known

    def forget_listing(self) -> None:
        """Drop the listing `has` keeps (100,000 names are 15 MB); the next `has` lists the store again."""
        self._known = None

    # -- writing -------------------------------------------------------------

    def put(self, path: str | Path, entry: Entry,
            known: Callable[[os.stat_result], str | None] | None = None) -> Entry:
        """Store the file at `path` unless its object exists; returns the entry for what was stored.

        `known` (the hash cache of the file's tree) may vouch for the file's hash by its (device, inode,
        size, mtime, ctime), under the racy-clean rule: then the kernel copies the bytes (`copy_file_range`, no
        read into Python, no hashing) and the file must show the same identity before and after the copy.
        Otherwise, or if anything about that differs, the bytes are hashed as they are copied."""
        if entry.link is not None or self.has(entry.sha256):
            return entry
        tmp = self.object_dir / f"tmp-{os.getpid()}-{os.urandom(4).hex()}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        _real_dir(self.object_dir)  # the copy is written there: never through a link
        if known is not None and kernel_copy(path, tmp, entry.sha256, known):
            sha = entry.sha256
        else:
            sha = copy_with_hash(path, tmp, mode=0o444)
        try:
            final = self._publish(tmp, sha)
        except CorruptState:
            tmp.unlink()
            raise
        if sha != entry.sha256:  # the file changed since it was scanned: record what we hold
            entry = Entry(entry.path, os.stat(final).st_size, entry.mode, sha)
        return entry

    def can_take(self, path: str, entry: Entry,
                 known: Callable[[os.stat_result], str | None]) -> tuple[int, int] | None:
        """Whether the commit may make production's file at `path` its own backup object, moved into the
        store once a swap took it out of production, instead of the backup copying it now: a large regular
        file of one link, this user's, whose hash the cache vouches for, on the store's filesystem, on a
        system that swaps files atomically. Its (device, inode) if so; the commit checks all of it again."""
        if entry.link is not None or entry.size < TAKE_MIN or not has_renameat2():
            return None
        try:
            st = os.lstat(path)
            self.object_dir.mkdir(parents=True, exist_ok=True)
            objects = os.lstat(self.object_dir)  # a link there is refused by the backup's copy instead
        except OSError:
            return None
        if not takeable(st, entry, known) or not stat.S_ISDIR(objects.st_mode) or st.st_dev != objects.st_dev:
            return None
        return st.st_dev, st.st_ino

    def take(self, kept: Path, entry: Entry) -> None:
        """Make `kept` (production's outgoing version, which the commit just swapped into its stage) the
        object of `entry`: moved into the store, not copied. The commit checked that it is the very file
        the hash cache vouched for. Another filesystem below the store (a mount) gets a verified copy."""
        if os.lstat(kept).st_nlink == 1:  # a second name made since would share (and see re-stamped) the object
            try:
                final = self._publish(kept, entry.sha256)
                os.chmod(final, 0o444)  # only now: until it is the store's, it may go back into production
                return
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        tmp = self.object_dir / f"tmp-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            if copy_with_hash(kept, tmp, mode=0o444) != entry.sha256:
                raise DeployError(f"{kept}: the outgoing version of {entry.path} does not hold the bytes its "
                                  "backup names; nothing was stored")
            self._publish(tmp, entry.sha256)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.unlink(kept)

    def _publish(self, tmp: Path, sha: str) -> Path:
        """Give the complete file `tmp` its object name (or drop it if that object exists): the object."""
        final = self.object_path(sha)
        _real_dir(self.object_dir)  # first: the mkdir below must not go through a link
        final.parent.mkdir(exist_ok=True)
        _real_dir(final.parent)
        if final.exists():
            tmp.unlink()
        else:
            os.rename(tmp, final)
        if self._known is not None:
            self._known.add(sha)
        return final

    def save(self, snapshot: Snapshot) -> None:
        """Publish a snapshot; its objects are flushed to disk first so it never names a missing one."""
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()

        def hashed(chunks: Iterator[bytes]) -> Iterator[bytes]:  # written in pieces: never the whole text at once
            for chunk in chunks:
                digest.update(chunk)
                yield chunk

        atomic_write(self.snapshot_dir / f"{snapshot.id}.files.json", hashed(manifest_file_chunks(snapshot.files)))
        self._write_refs(snapshot.id, digest.hexdigest(), [e.sha256 for e in snapshot.files.values() if e.link is None])
        if self.object_dir.exists():
            sync_filesystem(self.object_dir)
        atomic_write(self.snapshot_dir / f"{snapshot.id}.json", json.dumps(snapshot.header()).encode())

    def delete(self, snapshot_id: str) -> None:
        for suffix in (".json", ".files.json", ".refs"):  # the header first: unpublished before it goes
            path = self.snapshot_dir / f"{snapshot_id}{suffix}"
            try:
                path.unlink(missing_ok=True)
            except IsADirectoryError:  # never removed as a tree: nothing of the store's is a directory there
                raise CorruptState(f"{path}: a directory stands where the store keeps a snapshot's file; "
                                   "remove it by hand, then prune again") from None

    # -- reading -------------------------------------------------------------

    def load(self, snapshot_id: str, with_files: bool = True) -> Snapshot:
        path = self.snapshot_dir / f"{snapshot_id}.json"
        with _reading(path, snapshot_id):
            snap = Snapshot.from_header(loads_state(path.read_bytes()), snapshot_id)
        if with_files:
            path = self.snapshot_dir / f"{snapshot_id}.files.json"
            with _reading(path, snapshot_id):
                snap.files = manifest_from_state(loads_state(path.read_bytes()))
        return snap

    def objects_of(self, snapshot_ids: Iterable[str], cache: bool = True) -> set[str]:
        """The objects these snapshots reference, without building their manifests (retention reads them all).

        A snapshot's `.refs` file answers when it is valid and was made from the manifest's exact bytes (their
        sha256 matches): one read and one hash of the manifest instead of parsing its 10,000 entries. Any
        other case parses the manifest as before, and (with `cache`, under the lock) writes the refs anew."""
        found: set[str] = set()
        for shas in self._references(snapshot_ids, cache):
            found.update(shas)
        return found

    def unreferenced(self, candidates: set[str], snapshot_ids: Iterable[str], cache: bool = True) -> set[str]:
        """Those of `candidates` that none of these snapshots references, `candidates - objects_of(ids)`: taken
        away from `candidates` itself, one snapshot's list at a time (at 100,000 files each kept snapshot is
        100,000 names, and their union, or a copy of the candidates, beside them was the peak of a deploy's
        memory). Every snapshot is read even once none is left: one that cannot be read still stops retention
        (and says so), as the README promises."""
        left = candidates
        for shas in self._references(snapshot_ids, cache):
            left.difference_update(shas)
        return left

    def _references(self, snapshot_ids: Iterable[str], cache: bool) -> Iterator[list[str]]:
        """Each snapshot's object names in turn, in pieces (see `objects_of`); CorruptState for one that cannot
        be read, before any piece of it is given."""
        for snapshot_id in snapshot_ids:
            path = self.snapshot_dir / f"{snapshot_id}.files.json"
            with _reading(path, snapshot_id):
                with path.open("rb") as f:  # hashed a piece at a time: the manifest is 10 MB at 100,000 files
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
                body = self._read_refs(snapshot_id, digest)
                if body is None:
                    manifest = path.read_bytes()
                    shas = [e.sha256 for e in manifest_from_state(loads_state(manifest)).values() if e.link is None]
                    if cache:
                        self._write_refs(snapshot_id, hashlib.sha256(manifest).hexdigest(), shas)
            if body is None:
                yield shas
                continue
            for start in range(0, len(body), 65 * _REFS_SLICE):  # 100,000 names at once were ~20 MB
                yield body[start:start + 65 * _REFS_SLICE].decode("ascii").split("\n")[:-1]

    def _write_refs(self, snapshot_id: str, manifest_sha256: str, shas: list[str]) -> None:
        """Record which objects a manifest references. A cache: no fsync (a torn or lost file fails the
        checks in `_read_refs` and the manifest is parsed instead); never fatal.

        The list is hashed, then written, a slice at a time: at 100,000 objects the whole text as one string,
        then as bytes, raised a deploy's memory by ~19 MB the process never gave back."""
        names = [name for name, _ in groupby(sorted(shas))]  # each once: no set of 100,000 names (4 MB) first
        digest = hashlib.sha256()
        for piece in _lines(names):
            digest.update(piece)
        head = f"{_REFS_MAGIC}\nmanifest {manifest_sha256}\nobjects {len(names)} {digest.hexdigest()}\n"
        path = self.snapshot_dir / f"{snapshot_id}.refs"
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444)
            with os.fdopen(fd, "wb") as f:
                f.write(head.encode())
                f.writelines(_lines(names))
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)

    def _read_refs(self, snapshot_id: str, manifest_sha256: str) -> bytes | None:
        """The objects `<id>.refs` lists (a sha256 and a newline each), if it is whole and was made from the
        manifest bytes of that sha256; else None.

        Checked: the format line, the manifest's sha256, the count and the sha256 of the list itself (so a
        torn write or an edit is caught), and that every name is a sha256 (never a path): in the list's
        bytes (6.5 MB at 100,000 objects), which the caller decodes a slice at a time."""
        try:
            with open(open_regular(self.snapshot_dir / f"{snapshot_id}.refs"), "rb") as f:
                magic, digest_line, counted_line = f.readline(), f.readline(), f.readline()
                body = f.read()  # read apart from the head: not copied out of the whole file's bytes
        except OSError:
            return None
        if magic != f"{_REFS_MAGIC}\n".encode() or not digest_line.endswith(b"\n") or not counted_line.endswith(b"\n"):
            return None
        digest_line, counted = digest_line[:-1], counted_line[:-1].split(b" ")
        n = sha256_lines(body)
        if (n is None or digest_line != f"manifest {manifest_sha256}".encode() or len(counted) != 3
                or counted[0] != b"objects" or counted[1] != str(n).encode()
                or counted[2] != hashlib.sha256(body).hexdigest().encode()):
            return None
        return body

    def all_snapshots(self, with_files: bool = False) -> tuple[list[Snapshot], list[str]]:
        """Snapshots oldest first (headers only unless `with_files`), and the problems of unreadable ones."""
        snaps: list[Snapshot] = []
        problems: list[str] = []
        if not self.snapshot_dir.is_dir():
            return snaps, problems
        for path in sorted(self.snapshot_dir.glob("*.json")):
            if path.name.endswith(".files.json"):
                continue
            try:
                snaps.append(self.load(path.stem, with_files))
            except CorruptState as exc:
                problems.append(exc.message)
        snaps.sort(key=lambda s: (s.created, s.id))
        return snaps, problems

    def ours(self, snapshots: list[Snapshot]) -> list[Snapshot]:
        """The snapshots of this store's target (see the module's docstring for those without one)."""
        if self.target is None:
            return snapshots
        shared = any(s.target is not None and s.target != self.target for s in snapshots)
        return [s for s in snapshots if s.target == self.target or (s.target is None and not shared
                                                                    and self._claims(s))]

    def _claims(self, snap: Snapshot) -> bool:
        """Whether the profile's own records name this snapshot, its operation or its release."""
        if self._owned is None:
            self._owned = self._own_ids()
        return bool({snap.id, snap.op_id, snap.release} & self._owned)

    def owner_problem(self, snap: Snapshot, snapshots: list[Snapshot]) -> str | None:
        """Why `snap` (one of `snapshots`, the whole store) is not this target's to restore or compare."""
        if self.target is None or snap.target == self.target:
            return None
        if snap.target is not None:
            return (f"snapshot {snap.id} backs up another target ({snap.target}), not {self.target}: "
                    "roll it back with the profile that deploys there")
        if any(s.id == snap.id for s in self.ours(snapshots)):
            return None
        return (f"snapshot {snap.id} does not record the target it backs up (an older MCP Deploy took it), and "
                f"neither this profile's history nor production's VERSION shows it is {self.target}'s, or the "
                "store holds other targets' snapshots too: it is kept, and restored by no profile")

    def restore(self, entry: Entry, dest: Path) -> None:
        """Write one file of a snapshot to `dest` (which must not exist), refusing a damaged object."""
        if entry.link is not None:
            os.symlink(entry.link, dest)
            return
        src = self.object_path(entry.sha256)
        try:
            sha = copy_with_hash(src, dest, mode=entry.mode)
        except FileNotFoundError:
            raise CorruptState(f"{src}: backup object for {entry.path} is missing; "
                               f"this snapshot cannot be restored, pick another (see `{hint('backups')}`)") from None
        if sha != entry.sha256:
            dest.unlink()
            raise CorruptState(f"{src}: backup object for {entry.path} is damaged (hash mismatch); "
                               f"this snapshot cannot be restored, pick another (see `{hint('backups')}`)")

    def check(self, entries: Iterable[Entry]) -> list[str]:
        """Re-hash the objects behind `entries`; the list of what is missing or damaged."""
        problems = []
        for entry in entries:
            if entry.link is not None:
                continue
            obj = self.object_path(entry.sha256)
            try:
                if sha256_file(obj) != entry.sha256:
                    problems.append(f"{entry.path}: object {obj} is damaged")
            except OSError:
                problems.append(f"{entry.path}: object {obj} is missing")
        return problems

    # -- retention -----------------------------------------------------------

    def remove_objects(self, shas: Iterable[str], dry_run: bool = False) -> tuple[int, int]:
        """Delete these objects (those that exist); returns (objects, bytes) removed."""
        count = size = 0
        for sha in shas:
            if not is_sha256(sha):
                continue  # never a path built from a name that is not an object's
            path = self.object_path(sha)
            try:
                size += path.stat().st_size
            except FileNotFoundError:
                continue
            count += 1
            if not dry_run:
                path.unlink()
        return count, size

    def collect_garbage(self, wanted: set[str], dry_run: bool = False) -> tuple[int, int]:
        """Delete every object not in `wanted` (what the kept snapshots reference); returns (objects, bytes)."""
        count = size = 0
        if not self.object_dir.is_dir():
            return 0, 0
        for sub in os.scandir(self.object_dir):
            if sub.name.startswith("tmp-") and sub.is_file(follow_symlinks=False):
                if not dry_run:
                    os.unlink(sub.path)  # left by a killed backup
                continue
            if not sub.is_dir(follow_symlinks=False) or not _is_hex(sub.name, 2):
                continue
            for obj in os.scandir(sub.path):
                if obj.name not in wanted and is_sha256(obj.name) and obj.name.startswith(sub.name):
                    count += 1
                    size += obj.stat(follow_symlinks=False).st_size
                    if not dry_run:
                        os.unlink(obj.path)
        return count, size


def _real_dir(directory: Path) -> None:
    """CorruptState unless `directory` is a directory itself, not a link to one: the store writes into it."""
    if not stat.S_ISDIR(os.lstat(directory).st_mode):
        raise CorruptState(f"{directory}: is not a directory of the store (a link?); nothing was written "
                           "through it: replace it with a directory")


def _is_hex(name: str, length: int) -> bool:
    return len(name) == length and all(c in "0123456789abcdef" for c in name)


def _objects_only(object_dir: Path) -> bool:
    """A store from before the marker: objects/ holds only two-hex-digit directories and tmp- files."""
    try:
        return all(_is_hex(name, 2) or name.startswith("tmp-") for name in os.listdir(object_dir))
    except OSError:
        return False


@contextmanager
def _reading(path: Path, snapshot_id: str) -> Iterator[None]:
    """Turn a missing or unparsable snapshot file into the CorruptState a user can act on."""
    try:
        yield
    except FileNotFoundError:
        raise CorruptState(f"{path}: snapshot {snapshot_id} does not exist; see `{hint('backups')}`") from None
    except NewerFormat as exc:
        raise CorruptState(f"{path}: snapshot {snapshot_id} was {exc}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CorruptState(f"{path}: snapshot manifest is damaged ({why(exc)}); "
                           f"roll back to another snapshot (see `{hint('backups')}`)") from None


def select_expired(snapshots: list[Snapshot], keep_last: int, keep_days: float | None,
                   protected: set[str], now: datetime | None = None) -> list[Snapshot]:
    """Snapshots that are neither among the newest `keep_last`, nor younger than `keep_days`, nor protected."""
    now = now or datetime.now(timezone.utc)
    newest = {s.id for s in sorted(snapshots, key=lambda s: (s.created, s.id))[-keep_last:]} if keep_last else set()
    expired = []
    for snap in snapshots:
        young = keep_days is not None and now - parse_time(snap.created) < timedelta(days=keep_days)
        if snap.id in newest or snap.id in protected or young:
            continue
        expired.append(snap)
    return expired
