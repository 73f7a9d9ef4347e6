"""Run the profile's validators on the stage: a rejected tree never reaches production."""

from __future__ import annotations

from ..context import Context
from ..journal import State
from ..validators import validate
from . import Step


def check_env(ctx: Context) -> dict[str, str]:
    """What validator and verify commands learn about the operation."""
    return {
        "MCP_DEPLOY_ID": ctx.op_id,
        "MCP_DEPLOY_OPERATION": ctx.record.operation,
        "MCP_DEPLOY_SOURCE": str(ctx.profile.source),
        "MCP_DEPLOY_TARGET": str(ctx.target),
        "MCP_DEPLOY_STAGE": str(ctx.swap_path),
    }


class Validate(Step):
    name = "validate"
    state = State.VALIDATING

    def run(self, ctx: Context) -> None:
        ctx.checks += validate(ctx.profile.validators, ctx.swap_path, sorted(ctx.desired), check_env(ctx), ctx.emit)
