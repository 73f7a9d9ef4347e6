"""Verify checks against the committed release in production; a failure undoes the commit.

An `mcp` check with `stage: true` also runs before the commit, against the staged
release (from the validate step), so a server that cannot start never goes live.

`REGISTRY` maps the `type:` names deploy.yaml's `verify:` list may use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import checks, shell
from .profile import CheckSpec
from .errors import VerifyFailed

Check = Callable[[CheckSpec, Path, dict[str, str]], str | None]


def check_command(spec: CheckSpec, target: Path, env: dict[str, str]) -> str | None:
    """Run the command in the deployed tree; the problem text, or None when it passed."""
    assert spec.run is not None
    result = shell.run(spec.run, target, spec.timeout, env)
    return None if result.ok else f"{result.describe()}\n{result.output.rstrip()}"


def check_mcp(spec: CheckSpec, target: Path, env: dict[str, str]) -> str | None:
    from .mcp_check import check_mcp as handshake  # imports the MCP SDK only when a profile uses it

    return handshake(spec, target, env)


REGISTRY: dict[str, Check] = {"command": check_command, "mcp": check_mcp}


def verify(specs: tuple[CheckSpec, ...], target: Path, env: dict[str, str],
           emit: checks.EventSink | None = None, staged: bool = False) -> list[dict[str, object]]:
    """Run every verify check in `target`; raise VerifyFailed at the first that fails.

    `staged`: `target` is the staged release and this is the validate step (`stage: true` checks), so a
    server that cannot start is refused before it goes live.
    """

    def attempt(spec: CheckSpec) -> tuple[list[str], dict[str, object]]:
        problem = REGISTRY[spec.type](spec, target, env)
        return ([problem] if problem else []), ({"stage": True} if staged else {})

    if staged:
        return checks.run(specs, "validate", attempt, VerifyFailed, "staged verify", emit)
    return checks.run(specs, "verify", attempt, VerifyFailed, "verify", emit)
