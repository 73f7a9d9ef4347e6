"""Run the profile's validators against the staged release: a rejected release never reaches production."""

from __future__ import annotations

from ..commit import RELEASE_DIR
from ..context import Operation
from ..journal import State
from ..validators import validate
from .stage import Staged

NAME, STATE = "validate", State.VALIDATING


def check_env(op: Operation) -> dict[str, str]:
    """What validator and verify commands learn about the operation."""
    return {
        "MCP_DEPLOY_ID": op.op_id,
        "MCP_DEPLOY_OPERATION": op.name,
        "MCP_DEPLOY_SOURCE": str(op.profile.source),
        "MCP_DEPLOY_TARGET": str(op.target),
        "MCP_DEPLOY_STAGE": str(op.stage / RELEASE_DIR),
    }


def run(op: Operation, staged: Staged) -> list[dict[str, object]]:
    return validate(op.profile.validators, staged.view, staged.view.files, check_env(op), op.emit)


def undo(op: Operation) -> None:
    """Validators change nothing outside the stage, which the stage step drops."""
