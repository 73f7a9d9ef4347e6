"""Every error MCP Deploy raises on purpose, each with the exit code the CLI returns.

A `DeployError` is a user-facing condition: its message is printed as one line,
without a traceback, and names what happened, to which path, and what to do next.
Anything else escaping the library is a bug.
"""

from __future__ import annotations


class DeployError(Exception):
    """Base of all expected failures; `exit_code` is what the CLI exits with."""

    exit_code = 1
    step: str | None = None  # the pipeline step it happened in, once the pipeline knows

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail  # longer text (command output, ...) for --verbose and history


class StepFailed(DeployError):
    """A pipeline step failed; the completed steps were undone and production is as before."""

    exit_code = 1

    def __init__(self, step: str, message: str, *, detail: str = "") -> None:
        super().__init__(f"{step} failed: {message}", detail=detail)
        self.step = step


class ValidationFailed(DeployError):
    """A validator rejected a staged file; raised inside the validate step."""

    exit_code = 1


class VerifyFailed(DeployError):
    """A post-swap verify check failed; raised inside the verify step."""

    exit_code = 1


class SourceChanged(DeployError):
    """A source file changed while it was being copied; deploying it could ship a torn file."""

    exit_code = 1


class ConfigError(DeployError):
    """deploy.yaml (or a command-line flag) is invalid: fix the named key and rerun."""

    exit_code = 2


class LockHeld(DeployError):
    """Another operation holds the deployment lock."""

    exit_code = 3


class PreflightFailed(DeployError):
    """A pre-flight check refused to start (disk space, permissions, secrets); nothing was changed."""

    exit_code = 4


class CorruptState(DeployError):
    """On-disk state (VERSION, a backup object, a journal) is damaged; nothing was changed."""

    exit_code = 5


class PlanMismatch(DeployError):
    """`deploy --plan DIGEST` was given but the plan changed since it was previewed."""

    exit_code = 6


class NothingToRollBack(DeployError):
    """There is no snapshot to roll back to."""

    exit_code = 7
