"""One runner for validators (against the staged release) and verify checks (against production).

Each check is timed and reported as it completes; the first one with problems
stops the run with the step's error, naming the check and its first problems.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from .profile import CheckSpec
from .errors import DeployError

EventSink = Callable[[str, dict[str, Any]], None]
Attempt = Callable[[CheckSpec], tuple[list[str], dict[str, object]]]  # problems, extra result fields


def run(specs: tuple[CheckSpec, ...], step: str, attempt: Attempt, fail: type[DeployError], label: str,
        emit: EventSink | None = None) -> list[dict[str, object]]:
    """Run `attempt` for every spec in order; raise `fail` on the first that reports problems."""
    results: list[dict[str, object]] = []
    for spec in specs:
        started = time.monotonic()
        problems, extra = attempt(spec)
        results.append({"name": spec.name, **extra, "ok": not problems,
                        "seconds": round(time.monotonic() - started, 3)})
        if emit is not None:
            emit("check", {"step": step, **results[-1]})
        if problems:
            shown = "; ".join(p.splitlines()[0] for p in problems[:3])
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise fail(f"{label} {spec.name}: {shown}{more}", detail="\n".join(problems))
    return results
