"""Health-check the live tree; a failure swaps the old tree straight back."""

from __future__ import annotations

from ..context import Context
from ..journal import State
from ..verify import verify
from .validate import check_env
from . import Step


class Verify(Step):
    name = "verify"
    state = State.VERIFYING

    def run(self, ctx: Context) -> None:
        ctx.checks += verify(ctx.profile.verify, ctx.target, check_env(ctx), ctx.emit)
