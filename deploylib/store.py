"""Backups: snapshots of managed files over content-addressed objects.

    backup_dir/objects/ab/abcdef...       file contents, named by sha256, stored once, read-only
    backup_dir/snapshots/<id>.files.json  a snapshot's manifest (written first)
    backup_dir/snapshots/<id>.json        its header: ids, version, counts (written last: publishes it)

A snapshot costs only the objects it adds. Every restore re-hashes what it
copies, so a damaged object is caught before anything reaches production.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import CorruptState
from .fsutil import atomic_write, copy_with_hash, sha256_file, sync_filesystem
from .ids import parse_time
from .manifest import Entry, Manifest


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

    def header(self) -> dict[str, Any]:
        """Everything but the manifest (asdict would deep-copy every entry only to drop them)."""
        return {"id": self.id, "created": self.created, "op_id": self.op_id, "release": self.release,
                "version": self.version, "version_info": self.version_info, "file_count": len(self.files),
                "bytes": sum(e.size for e in self.files.values())}

    def brief(self) -> dict[str, Any]:
        return {"id": self.id, "created": self.created, "release": self.release, "version": self.version,
                "files": self.file_count, "bytes": self.bytes}


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.object_dir = root / "objects"
        self.snapshot_dir = root / "snapshots"
        self._known: set[str] | None = None

    def object_path(self, sha: str) -> Path:
        return self.object_dir / sha[:2] / sha

    def has(self, sha: str) -> bool:
        """Whether an object is stored; one listing of the store instead of a stat per file."""
        if self._known is None:
            self._known = set()
            if self.object_dir.is_dir():
                for sub in os.scandir(self.object_dir):
                    if sub.is_dir():
                        self._known.update(os.listdir(sub.path))
        return sha in self._known

    # -- writing -------------------------------------------------------------

    def put(self, path: str | Path, entry: Entry) -> Entry:
        """Store the file at `path` unless its object exists; returns the entry for what was stored."""
        if entry.link is not None or self.has(entry.sha256):
            return entry
        tmp = self.object_dir / f"tmp-{os.getpid()}-{os.urandom(4).hex()}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        sha = copy_with_hash(path, tmp, mode=0o444)
        final = self.object_path(sha)
        final.parent.mkdir(exist_ok=True)
        if final.exists():
            tmp.unlink()
        else:
            os.replace(tmp, final)
        if self._known is not None:
            self._known.add(sha)
        if sha != entry.sha256:  # the file changed since it was scanned: record what we hold
            entry = Entry(entry.path, os.stat(final).st_size, entry.mode, sha)
        return entry

    def save(self, snapshot: Snapshot) -> None:
        """Publish a snapshot; its objects are flushed to disk first so it never names a missing one."""
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        files = {p: e.to_json() for p, e in snapshot.files.items()}
        atomic_write(self.snapshot_dir / f"{snapshot.id}.files.json", json.dumps(files).encode())
        if self.object_dir.exists():
            sync_filesystem(self.object_dir)
        atomic_write(self.snapshot_dir / f"{snapshot.id}.json", json.dumps(snapshot.header()).encode())

    def delete(self, snapshot_id: str) -> None:
        (self.snapshot_dir / f"{snapshot_id}.json").unlink(missing_ok=True)  # unpublish first
        (self.snapshot_dir / f"{snapshot_id}.files.json").unlink(missing_ok=True)

    # -- reading -------------------------------------------------------------

    def load(self, snapshot_id: str, with_files: bool = True) -> Snapshot:
        path = self.snapshot_dir / f"{snapshot_id}.json"
        with _reading(path, snapshot_id):
            snap = Snapshot(**json.loads(path.read_bytes()))
        if with_files:
            path = self.snapshot_dir / f"{snapshot_id}.files.json"
            with _reading(path, snapshot_id):
                snap.files = {p: Entry.from_json(e) for p, e in json.loads(path.read_bytes()).items()}
        return snap

    def objects_of(self, snapshot_ids: Iterable[str]) -> set[str]:
        """The objects these snapshots reference, without building their manifests (retention reads them all)."""
        found: set[str] = set()
        for snapshot_id in snapshot_ids:
            path = self.snapshot_dir / f"{snapshot_id}.files.json"
            with _reading(path, snapshot_id):
                found.update(e["sha256"] for e in json.loads(path.read_bytes()).values() if "link" not in e)
        return found

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
                               "this snapshot cannot be restored, pick another (see `invoke backups`)") from None
        if sha != entry.sha256:
            dest.unlink()
            raise CorruptState(f"{src}: backup object for {entry.path} is damaged (hash mismatch); "
                               "this snapshot cannot be restored, pick another (see `invoke backups`)")

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
            if not sub.is_dir(follow_symlinks=False):
                continue
            for obj in os.scandir(sub.path):
                if obj.name not in wanted:
                    count += 1
                    size += obj.stat(follow_symlinks=False).st_size
                    if not dry_run:
                        os.unlink(obj.path)
        return count, size


@contextmanager
def _reading(path: Path, snapshot_id: str) -> Iterator[None]:
    """Turn a missing or unparsable snapshot file into the CorruptState a user can act on."""
    try:
        yield
    except FileNotFoundError:
        raise CorruptState(f"{path}: snapshot {snapshot_id} does not exist; see `invoke backups`") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CorruptState(f"{path}: snapshot manifest is damaged ({exc.__class__.__name__}); "
                           "roll back to another snapshot (see `invoke backups`)") from None


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
