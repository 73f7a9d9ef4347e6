"""Run the profile's validators, then its `stage: true` verify checks, against the staged release:
a rejected release never reaches production."""

from __future__ import annotations

from ..commit import RELEASE_DIR
from ..context import Operation
from ..journal import State
from ..validators import validate
from ..verify import verify
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
    results = validate(op.profile.validators, staged.view, staged.view.files, check_env(op), op.emit)
    early = tuple(spec for spec in op.profile.verify if spec.options.get("stage"))
    if early:  # `stage: true` verify checks: the server is started from the whole staged release
        results += verify(early, staged.view.directory(), check_env(op), op.emit, staged=True)
    return results


def undo(op: Operation) -> None:
    """Validators change nothing outside the stage, which the stage step drops."""
