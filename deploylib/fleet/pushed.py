"""The source of a deploy on a fleet host: the manifest the controller scanned, with the bytes of the
files that change pushed into this host's own content-addressed store before the stage copies them.

Only objects the store lacks are asked for, so a redeploy moves each changed byte once per host and a
rollback (whose objects the backups already hold) nothing. Content checks (secrets, file validators)
ran once on the controller, on these same bytes; each object is re-hashed here as it is written.
"""

from __future__ import annotations

import os
import stat
import zlib
from pathlib import Path
from typing import Any, Callable

from ..context import Operation, Survey
from ..errors import CorruptState
from ..ids import utc_now
from ..manifest import Entry, Scan
from ..plan import Plan
from ..sources import _strip_setid
from ..store import Snapshot, Store

Request = Callable[[list[str]], None]


class PushedSource:
    """Deploy on a host: `manifest` from the controller; `request(shas)` has the controller send objects."""

    operation = "deploy"
    checked_upstream = True  # secrets were scanned by the controller, on the bytes it sends

    def __init__(self, manifest: dict[str, Entry], release: dict[str, Any], store: Store,
                 request: Request | None) -> None:
        self.manifest = manifest
        self.release = release  # version, git_commit, git_dirty, deployed_from: the same on every host
        self.store = store
        self.request = request  # None: a preview or status, which must not move any bytes
        self.received = 0  # objects written by this operation

    def desired(self, op: Operation, previous: dict[str, Any] | None) -> Scan:
        found = Scan(dict(self.manifest), [])
        _strip_setid(op, found)  # as the controller's scan did: a manifest asking for them gets none either
        return found

    def missing(self, plan: Plan) -> list[str]:
        """The objects the stage will need that this host's store does not hold."""
        wanted = {e.sha256 for e in plan.added + plan.changed if e.link is None}
        return sorted(sha for sha in wanted if not self.store.has(sha))

    def verify_available(self, plan: Plan) -> None:
        if self.request is None:
            return
        missing = self.missing(plan)
        if missing:
            self.request(missing)
        still = self.missing(plan)
        if still:
            raise CorruptState(f"{self.store.root}: the controller did not send {len(still)} object(s) "
                               f"this deploy needs ({still[0]}, ...); production untouched")

    def fetch(self, entry: Entry, dest: Path) -> None:
        self.store.restore(entry, dest)  # re-hashed on the way: a damaged object is refused

    def next_version(self) -> str | None:
        return self.release.get("version")

    def next_release(self) -> tuple[str | None, str | None, bool | None]:
        return None, self.release.get("git_commit"), self.release.get("git_dirty")

    def version_info(self, op: Operation, survey: Survey, snapshot: Snapshot | None) -> dict[str, Any]:
        prev = survey.previous or {}
        plan = survey.plan
        added, changed = [e.path for e in plan.added], [e.path for e in plan.changed]
        return {
            "version": self.release.get("version") or op.op_id,
            "deployed": utc_now(),
            "deployed_from": self.release.get("deployed_from"),
            "git_commit": self.release.get("git_commit"),
            "git_dirty": self.release.get("git_dirty"),
            "deployed_by": op.profile.deployed_by,
            "operation": "deploy",
            "profile": op.profile.name,
            "deploy_id": op.op_id,
            "previous_id": prev.get("deploy_id"),
            "release": op.op_id,
            "previous_release": prev.get("release"),
            "snapshot_id": snapshot.id if snapshot else None,
            "fleet": self.release.get("fleet"),
            "files_updated": added + changed, "files_added": added, "files_changed": changed,
            "files_removed": [e.path for e in plan.removed],
        }


def write_object(store: Store, sha: str, payload: bytes, compressed: bool, size: int) -> int:
    """Put one pushed object into the store (read-only, by its hash, checked); its size.

    `size` is the release's size for it: decompression stops there, so a few kilobytes of zlib that
    inflate to gigabytes cost this host nothing."""
    import hashlib

    data = zlib.decompressobj().decompress(payload, size + 1) if compressed else payload
    if len(data) != size:
        raise CorruptState(f"object {sha[:12]}... arrived damaged (not the release's {size} bytes); "
                           "nothing was written")
    if hashlib.sha256(data).hexdigest() != sha:
        raise CorruptState(f"object {sha[:12]}... arrived damaged (hash mismatch); nothing was written")
    final = store.object_path(sha)
    final.parent.mkdir(parents=True, exist_ok=True)
    if not stat.S_ISDIR(os.lstat(final.parent).st_mode):
        raise CorruptState(f"{final.parent}: is not a directory of the store; nothing was written through it")
    tmp = store.object_dir / f"tmp-{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if store._known is not None:
        store._known.add(sha)
    return len(data)
