"""Post-swap health checks against the live production tree; a failure swaps the old tree back.

`REGISTRY` maps the `type:` names deploy.yaml's `verify:` list may use; new
kinds of check (such as an MCP handshake) register here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from . import commands
from .config import CheckSpec
from .errors import VerifyFailed

Check = Callable[[CheckSpec, Path, dict[str, str]], str | None]


def check_command(spec: CheckSpec, target: Path, env: dict[str, str]) -> str | None:
    """Run the command in the deployed tree; the problem text, or None when it passed."""
    assert spec.run is not None
    result = commands.run(spec.run, target, spec.timeout, env)
    return None if result.ok else f"{result.describe()}\n{result.output.rstrip()}"


def check_mcp(spec: CheckSpec, target: Path, env: dict[str, str]) -> str | None:
    from .mcp_check import check_mcp as handshake  # imports the MCP SDK only when a profile uses it

    return handshake(spec, target, env)


REGISTRY: dict[str, Check] = {"command": check_command, "mcp": check_mcp}


def verify(specs: tuple[CheckSpec, ...], target: Path, env: dict[str, str],
           emit: Callable[[str, dict[str, object]], None] = lambda kind, data: None) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    for spec in specs:
        started = time.monotonic()
        problem = REGISTRY[spec.type](spec, target, env)
        results.append({"name": spec.name, "ok": problem is None, "seconds": round(time.monotonic() - started, 3)})
        emit("check", {"step": "verify", **results[-1]})
        if problem:
            raise VerifyFailed(f"verify {spec.name}: {problem.splitlines()[0]}", detail=problem)
    return results
