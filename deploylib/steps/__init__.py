"""The pipeline's steps. Each does one thing in `run` and takes it back in `undo`.

`undo` must be idempotent and work from the journal record alone, because
crash recovery calls it in a fresh process that knows only what was journaled.
"""

from __future__ import annotations

from ..context import Context
from ..journal import State


class Step:
    name: str = ""
    state: State = State.IDLE

    def run(self, ctx: Context) -> None:
        raise NotImplementedError

    def undo(self, ctx: Context) -> None:
        """Nothing to take back by default."""
