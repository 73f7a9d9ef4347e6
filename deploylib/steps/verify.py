"""Health-check the committed release in production; a failure undoes the commit."""

from __future__ import annotations

from ..context import Operation
from ..journal import State
from ..verify import verify
from .validate import check_env

NAME, STATE = "verify", State.VERIFYING


def run(op: Operation) -> list[dict[str, object]]:
    return verify(op.profile.verify, op.target, check_env(op), op.emit)


def undo(op: Operation) -> None:
    """Verify checks change nothing the commit's undo does not take back."""
