"""Store what the commit will replace, so every change to production can be taken back.

The snapshot holds production's managed files: the commit's undo and a later
rollback restore them from it, verified by hash. A large file the commit
replaces is not copied here: the commit swaps it out of production and moves
that very file into the store (`Backup.takes`), so its bytes are written once.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from .. import faults
from ..context import Operation, Survey
from ..errors import StoreFull
from ..ids import new_id, utc_now
from ..journal import State
from ..layout import SNAPSHOT_PREFIX
from ..manifest import Entry
from ..store import Snapshot, target_key

NAME, STATE = "backup", State.BACKING_UP


@dataclass
class Backup:
    snapshot: Snapshot | None  # None when production held nothing to replace
    takes: dict[str, tuple[int, int]] = field(default_factory=dict)  # path: (device, inode) the commit moves
    # into the store instead of this step copying it (see `Store.can_take`); their objects exist once it ran

    def old(self, path: str) -> Entry | None:
        """The stored entry of what production has at `path` now (None: nothing)."""
        return self.snapshot.files.get(path) if self.snapshot else None


def run(op: Operation, survey: Survey) -> Backup:
    root = str(op.target)
    if not survey.production and survey.previous is None:
        return Backup(None)  # nothing in production that we would replace
    files: dict[str, Entry] = {}
    op.emit("begin", {"step": NAME, "what": "backup", "files": len(survey.production),
                      "bytes": sum(e.size for e in survey.production.values())})
    prev = survey.previous or {}
    snapshot = Snapshot(id=new_id(SNAPSHOT_PREFIX), created=utc_now(), op_id=op.op_id, release=prev.get("release"),
                        version=prev.get("version"), version_info=survey.previous, files=files,
                        target=target_key(op.target))
    has, stored, stored_bytes = op.store.has, 0, 0
    known = op.cache.tree(op.target).get  # hashes preflight took or trusted: the kernel may copy those files
    replaced = {e.path for e in survey.plan.changed}
    takes: dict[str, tuple[int, int]] = {}
    try:
        for n, (path, entry) in enumerate(survey.production.items(), 1):
            if entry.link is not None or has(entry.sha256):  # already stored: one event for all of these
                files[path] = entry
                stored += 1
                stored_bytes += entry.size
            elif path in replaced and (identity := op.store.can_take(f"{root}/{path}", entry, known)):
                files[path] = entry
                takes[path] = identity  # a later path with these bytes is still copied now
                op.emit("file", {"step": NAME, "path": path, "bytes": 0})
            else:
                files[path] = op.store.put(f"{root}/{path}", entry, known)
                op.emit("file", {"step": NAME, "path": path, "bytes": entry.size})
            faults.point(faults.BACKUP, n)
        if stored:
            op.emit("file", {"step": NAME, "path": "", "bytes": stored_bytes, "count": stored})
        op.store.save(snapshot)
        op.store.forget_listing()  # asked of every production file, and of none after: the stage needs the memory
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise StoreFull(f"backup_dir {op.store.root}: no space left for the backup ({exc.strerror}); "
                        "free space there or prune old backups") from None
    op.record.snapshot_id = snapshot.id
    op.journal.write(op.record)
    return Backup(snapshot, takes)


def undo(op: Operation) -> None:
    """Production is back to what the snapshot holds, so it is redundant."""
    if op.record.snapshot_id:
        op.store.delete(op.record.snapshot_id)
