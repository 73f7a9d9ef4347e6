"""The profile's before_commit hooks, in the staged release: the last word before production changes.

They run after the validators, in a directory holding the whole new release
(copies, never links to production), and a failing one undoes the operation.
A hook should only check: what it changes outside the stage is not undone.
"""

from __future__ import annotations

from typing import Any

from .. import hooks
from ..context import Operation, Survey
from ..journal import State
from .stage import Staged

NAME, STATE = "before_commit", State.VALIDATING  # still validating: nothing new to journal


def run(op: Operation, survey: Survey, staged: Staged) -> list[dict[str, Any]]:
    release = staged.view.directory()
    env = {**hooks.environment(op, survey, staged.version_info), "MCP_DEPLOY_STAGE": str(release)}
    return hooks.before_commit(op, release, env, hooks.changed(survey))


def undo(op: Operation) -> None:
    """The hooks ran in the stage, which the stage step drops."""
