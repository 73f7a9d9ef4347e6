"""Publish the staged release: the journaled per-file renames of `deploylib.commit`."""

from __future__ import annotations

from ..commit import Commit, CommitPlan
from ..context import Operation
from ..errors import CorruptState
from ..journal import State
from .stage import Staged

NAME, STATE = "commit", State.COMMITTING


def run(op: Operation, staged: Staged) -> None:
    commit = Commit(staged.commit, op.target, op.stage, op.store)
    commit.apply(lambda path: op.emit("file", {"step": NAME, "path": path, "bytes": 0}))


def undo(op: Operation) -> None:
    if op.record.commit is None:
        return  # the plan is journaled before the first change: without it, nothing changed
    try:
        plan = CommitPlan.from_json(op.record.commit)
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptState(f"{op.journal.path}: the journaled commit plan is damaged ({str(exc)[:120]}); "
                           "it is kept and nothing was touched; inspect the target") from None
    Commit(plan, op.target, op.stage, op.store).rollback()
