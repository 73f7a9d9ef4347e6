"""Build the complete new tree beside production: hard links for what stays, copies for what changes.

The stage starts from the spare tree (the one the last swap replaced) when there is one, so only
what changed since is written; a stage that fails is deleted, spare and all, and the next starts fresh.
"""

from __future__ import annotations

import os

from .. import faults
from ..context import Context
from ..errors import CorruptState
from ..fsutil import remove_tree, sync_filesystem
from ..journal import State
from ..manifest import save_manifest
from ..trees import ensure_parent, remove_empty_parents, replicate
from ..version import VERSION_FILE, deploy_id_of, write_version
from .preflight import release_path
from . import Step


class Stage(Step):
    name = "stage"
    state = State.STAGING

    def run(self, ctx: Context) -> None:
        assert ctx.plan is not None
        stage = ctx.swap_path
        replaced = {e.path for e in ctx.plan.changed + ctx.plan.removed}
        if ctx.record.target_existed:
            ctx.replica = replicate(ctx.target, stage, replaced | {VERSION_FILE}, ctx.spare_path)
        else:  # first deploy: the target (and maybe its parents) do not exist yet
            stage.parent.mkdir(parents=True, exist_ok=True)
            stage.mkdir(mode=0o755)
        for entry in ctx.plan.removed:
            remove_empty_parents(stage, entry.path)
        incoming = ctx.plan.added + ctx.plan.changed
        what = "copy" if ctx.record.operation == "deploy" else "restore"
        ctx.emit("begin", {"step": self.name, "what": what, "files": len(incoming),
                           "bytes": sum(e.size for e in incoming)})
        staged = ctx.cache.tree(ctx.target)  # the stage becomes production: its files' hashes are known
        for n, entry in enumerate(incoming, 1):
            dest = ensure_parent(stage, entry.path)
            ctx.source.fetch(entry, dest)
            if entry.link is None:
                staged.put(os.lstat(dest), entry.sha256)
            ctx.emit("file", {"step": self.name, "path": entry.path, "bytes": entry.size})
            faults.point(f"copy:{n}")
        ctx.version_info = ctx.source.version_info(ctx)
        write_version(stage, ctx.version_info)
        save_manifest(release_path(ctx, ctx.op_id), ctx.desired)
        if ctx.replica is not None:
            ctx.replica.apply_modes()
        sync_filesystem(stage)  # nothing the swap publishes may still be only in memory

    def undo(self, ctx: Context) -> None:
        if deploy_id_of(ctx.target) == ctx.op_id:
            raise CorruptState(f"{ctx.target}: still holds the new tree; cannot drop the stage safely")
        if ctx.swap_path.exists() or ctx.swap_path.is_symlink():
            remove_tree(ctx.swap_path)
        release_path(ctx, ctx.op_id).unlink(missing_ok=True)
