"""Hooks: the user's commands at fixed points of an operation (deploy.yaml `hooks:`).

`before_commit` runs in a directory holding the whole staged release, before
production changes: its failure undoes the operation like a validator's. The
others run once the outcome is final, in production: `after_commit` (deploy and
rollback) and `after_rollback` after verify passed, `on_failure` after an undo.
Nothing can be undone then, so their failures are reported (a note, the result,
the history), never turned into an exit code. Each list stops at its first
failing command, like `set -e`. Commands learn about the operation from
MCP_DEPLOY_* environment variables.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from . import report, shell, signals
from .profile import Hook
from .context import Operation, Survey
from .errors import HookFailed

# MCP_DEPLOY_CHANGED_FILES holds the list itself up to this many bytes, else the path of a file holding it:
# Linux refuses to start a program with any one environment string over 128 KiB (E2BIG)
INLINE_LIMIT = 64 * 1024
Result = dict[str, Any]


def environment(op: Operation, survey: Survey | None, version_info: dict[str, Any]) -> dict[str, str]:
    """What every hook (and notify command) learns about the operation."""
    previous = (survey.previous if survey else None) or {}
    return {
        "MCP_DEPLOY_OPERATION": op.name,
        "MCP_DEPLOY_ID": op.op_id,
        "MCP_DEPLOY_PROFILE": op.profile.name,
        "MCP_DEPLOY_TARGET": str(op.target),
        "MCP_DEPLOY_SOURCE": str(op.profile.source),
        "MCP_DEPLOY_CONFIG_DIR": str(op.profile.config_path.parent),
        "MCP_DEPLOY_VERSION": str(version_info.get("version") or ""),
        "MCP_DEPLOY_PREVIOUS_VERSION": str(previous.get("version") or ""),
    }


def changed(survey: Survey | None) -> list[str]:
    """The paths the operation adds, changes or removes (the version file is written every time)."""
    if survey is None:
        return []
    plan = survey.plan
    return sorted(e.path for e in plan.added + plan.changed + plan.removed)


def before_commit(op: Operation, cwd: Path, env: dict[str, str], paths: list[str]) -> list[Result]:
    """Run the before_commit hooks; raise HookFailed at the first that fails (the pipeline undoes)."""
    results = _run(op, "before_commit", cwd, env, paths)
    if results and not results[-1]["ok"]:
        raise HookFailed(report.hook_problem(results[-1]), detail=results[-1]["output"])
    return results


def final(op: Operation, point: str, cwd: Path, env: dict[str, str], paths: list[str]) -> list[Result]:
    """Run an after-the-outcome hook list; a failure, or a signal that cuts it short, becomes a note."""
    results: list[Result] = []
    stopped: list[str] = []
    with signals.stopping(stopped):
        _run(op, point, cwd, env, paths, results)
    hooks = op.profile.hooks.get(point, ())
    if stopped and len(results) < len(hooks):  # the one running when the signal came; its group was killed
        hook = hooks[len(results)]
        results.append(_result(point, hook, None, report.stopped_by(hook.run, stopped[0]), "", 0.0))
        op.emit("hook", results[-1])
    if results and not results[-1]["ok"]:
        op.note(report.hook_note(results[-1]))
    return results


def _run(op: Operation, point: str, cwd: Path, env: dict[str, str], paths: list[str],
         results: list[Result] | None = None) -> list[Result]:
    """Run `point`'s commands in order in `cwd`, appending to `results`, until one fails."""
    results = [] if results is None else results
    hooks = op.profile.hooks.get(point, ())
    if not hooks:
        return results
    with _listing(paths) as listing:
        env = {**env, "MCP_DEPLOY_HOOK": point, "MCP_DEPLOY_CHANGED_FILES": listing}
        for hook in hooks:
            done = shell.run(hook.run, cwd, hook.timeout, env)
            results.append(_result(point, hook, done.returncode, None if done.ok else done.describe(),
                                   done.output, done.seconds))
            op.emit("hook", results[-1])
            if not done.ok:
                break
    return results


def _result(point: str, hook: Hook, code: int | None, problem: str | None, output: str, seconds: float) -> Result:
    """One hook run as --json and the history show it (output: its last OUTPUT_TAIL characters)."""
    return {"hook": point, "run": hook.run, "ok": problem is None, "exit": code, "problem": problem,
            "seconds": seconds, "output": output}


@contextmanager
def _listing(paths: list[str]) -> Iterator[str]:
    """The changed files, newline-separated; a long list goes to a temporary file named instead
    (an absolute path, so a hook tells the two apart by the leading `/`)."""
    text = "\n".join(paths)
    if len(text.encode()) <= INLINE_LIMIT:
        yield text
        return
    with tempfile.NamedTemporaryFile("w", prefix="mcp-deploy-changed-", suffix=".txt") as f:
        f.write(text + "\n")
        f.flush()
        yield f.name
