"""The steps in pipeline order, and how an operation that stopped anywhere is taken back."""

from __future__ import annotations

from typing import Protocol

from ..context import Operation
from ..journal import State
from . import backup, before_commit, commit, preflight, stage, validate, verify


class Step(Protocol):
    NAME: str
    STATE: State

    def undo(self, op: Operation) -> None: ...


STEPS: tuple[Step, ...] = (preflight, backup, stage, validate, before_commit, commit,  # type: ignore[assignment]
                          verify)
ORDER: list[State] = list(dict.fromkeys(step.STATE for step in STEPS)) + [State.RECORDING, State.COMPLETE]


CHANGE_NOTHING = {preflight.NAME, validate.NAME, before_commit.NAME, verify.NAME}  # their undo is a no-op: not worth a line


def undo(op: Operation, steps: list[Step]) -> None:
    """Take back `steps` (those run, the failing one included) in reverse."""
    for step in reversed(steps):
        if step.NAME not in CHANGE_NOTHING:
            op.emit("undo", {"step": step.NAME})
        step.undo(op)


def reached(state: State) -> list[Step]:
    """The steps an operation that got as far as `state` may have (partly) run."""
    return [step for step in STEPS if ORDER.index(step.STATE) <= ORDER.index(state)]
