"""Take the deployment lock, recover whatever a dead holder left, then open the journal."""

from __future__ import annotations

from typing import Callable

from ..context import Context
from ..journal import State
from ..lock import DeployLock
from . import Step


class LockStep(Step):
    name = "lock"
    state = State.CHECKING

    def __init__(self, recover: Callable[[Context], None]) -> None:
        self.recover = recover

    def run(self, ctx: Context) -> None:
        lock = DeployLock(ctx.profile.state_dir, ctx.source.operation, wait=ctx.wait)
        lock.acquire()
        ctx.lock = lock  # only now: a process that lost the race must not touch the journal
        # holding the lock means any journal left behind belongs to a dead process
        self.recover(ctx)
        ctx.journal.advance(ctx.record, State.CHECKING)

    # the pipeline releases the lock itself, after the journal is closed
