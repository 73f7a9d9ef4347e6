"""Snapshot production's managed files before anything changes, so every deploy can be undone."""

from __future__ import annotations

from .. import faults
from ..context import Context
from ..ids import new_id, utc_now
from ..journal import State
from ..store import Snapshot
from . import Step


class Backup(Step):
    name = "backup"
    state = State.BACKING_UP

    def run(self, ctx: Context) -> None:
        if not ctx.record.target_existed or (not ctx.production and ctx.previous is None):
            return  # nothing in production that we would replace
        files = {}
        ctx.emit("begin", {"step": self.name, "what": "backup", "files": len(ctx.production),
                           "bytes": sum(e.size for e in ctx.production.values())})
        root = str(ctx.target)
        for n, (path, entry) in enumerate(ctx.production.items(), 1):
            files[path] = ctx.store.put(f"{root}/{path}", entry)
            ctx.emit("file", {"step": self.name, "path": path, "bytes": entry.size})
            faults.point(f"backup:{n}")
        prev = ctx.previous or {}
        ctx.snapshot = Snapshot(
            id=new_id("s"), created=utc_now(), op_id=ctx.op_id, release=prev.get("release"),
            version=prev.get("version"), version_info=ctx.previous, files=files,
        )
        ctx.store.save(ctx.snapshot)
        ctx.record.snapshot_id = ctx.snapshot.id
        ctx.journal.write(ctx.record)

    def undo(self, ctx: Context) -> None:
        # production is back to what this snapshot holds, so it is redundant
        if ctx.record.snapshot_id:
            ctx.store.delete(ctx.record.snapshot_id)
