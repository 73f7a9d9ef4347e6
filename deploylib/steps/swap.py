"""Publish the stage: one atomic exchange of directories; the old tree waits beside it until verified."""

from __future__ import annotations

import os

from ..context import Context
from ..journal import State
from ..swap import exchange, repair
from ..trees import carry_late_files
from ..version import deploy_id_of
from . import Step


class Swap(Step):
    name = "swap"
    state = State.SWAPPING

    def run(self, ctx: Context) -> None:
        if ctx.record.target_existed:
            method = exchange(ctx.target, ctx.swap_path)
            moved = carry_late_files(ctx.swap_path, ctx.target, ctx.is_managed, ctx.replica)
            if moved:
                ctx.note(f"carried {len(moved)} file(s) written to production during the deploy: {', '.join(moved[:5])}")
        else:
            ctx.target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(ctx.swap_path, ctx.target)
            method = "rename"
        ctx.emit("swap", {"method": method})

    def undo(self, ctx: Context) -> None:
        repair(ctx.target, ctx.swap_path)  # finish an interrupted fallback exchange first
        if deploy_id_of(ctx.target) != ctx.op_id:
            return  # never swapped, or already swapped back
        if ctx.swap_path.exists():
            if ctx.managed_known:
                carry_late_files(ctx.target, ctx.swap_path, ctx.is_managed)
            exchange(ctx.target, ctx.swap_path)
        else:
            os.rename(ctx.target, ctx.swap_path)
