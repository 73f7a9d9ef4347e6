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

    @property
    def kind(self) -> str:
        """The name scripts see as `error_type` in --json output."""
        return type(self).__name__

    def to_json(self) -> dict[str, object]:
        """What `--json` prints on failure, and what an MCP tool error carries as structured content."""
        return {"ok": False, "error": self.message, "exit_code": self.exit_code, "step": self.step,
                "error_type": self.kind}


def but_for(kept: list[str] | None) -> str:
    """What an undo left as it found it: files changed in production after the commit put them, which no
    backup holds (so the undo does not overwrite them)."""
    if not kept:
        return ""
    more = f" and {len(kept) - 3} more" if len(kept) > 3 else ""
    return (f", but for {len(kept)} file(s) changed there after the commit put them, left as they are (no backup "
            f"holds those changes): {', '.join(kept[:3])}{more}")


class StepFailed(DeployError):
    """A pipeline step failed and the steps already run were undone: production is as before.

    Wraps the cause (raised `from` it), keeping its exit code and its `kind`.
    """

    def __init__(self, operation: str, step: str, cause: BaseException, *, undone: bool = True,
                 kept: list[str] | None = None) -> None:
        reason = cause.message if isinstance(cause, DeployError) else _describe(cause)
        outcome = f"undone; production is as before{but_for(kept)}" if undone else "nothing was changed"
        super().__init__(f"{operation} failed at {step}: {reason} ({outcome})",
                         detail=getattr(cause, "detail", ""))
        self.step = step
        self.cause = cause
        self.exit_code = cause.exit_code if isinstance(cause, DeployError) else 1

    @property
    def kind(self) -> str:
        return self.cause.kind if isinstance(self.cause, DeployError) else type(self).__name__


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc.strerror or exc)
    return str(exc) or type(exc).__name__


class ValidationFailed(DeployError):
    """A validator rejected a staged file; raised inside the validate step."""


class VerifyFailed(DeployError):
    """A verify check failed against the committed release; raised inside the verify step."""


class HookFailed(DeployError):
    """A before_commit hook failed (exit status, timeout); raised before production changed, so it is undone."""


class StoreFull(DeployError):
    """The backup store's filesystem filled up mid-backup: the message names backup_dir, not the target."""


class SourceChanged(DeployError):
    """A source file changed while it was being copied; deploying it could ship a torn file."""


class Interrupted(DeployError):
    """SIGINT, SIGTERM or SIGHUP arrived before verify passed; the operation was undone."""

    exit_code = 130

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name = signal_name


class FleetAborted(DeployError):
    """A fleet host's operation was called off by its controller, or the controller fell silent before
    confirming it (hung up, or no word within confirm_timeout): the host undid it, as after any failure."""


class ConfigError(DeployError):
    """deploy.yaml (or a command-line flag) is invalid: fix the named key and rerun."""

    exit_code = 2


class LockHeld(DeployError):
    """Another operation holds the deployment lock."""

    exit_code = 3


class PreflightFailed(DeployError):
    """A pre-flight check refused to start (disk space, permissions, secrets, user files); nothing was changed."""

    exit_code = 4


class CorruptState(DeployError):
    """On-disk state (VERSION, a backup object, a journal) is damaged; nothing was changed."""

    exit_code = 5


class UndoFailed(DeployError):
    """Undoing a failed operation failed too: production may be partly changed; the journal is kept."""

    exit_code = 5


class PlanMismatch(DeployError):
    """`deploy --plan DIGEST` (or `rollback --plan`) was given but the plan changed since it was previewed.

    A refusal, not a failure: the history logs it as a `refused` event, outside the success rate.
    """

    exit_code = 6

    def __init__(self, message: str, *, expected: str, found: str) -> None:
        super().__init__(message)
        self.expected = expected  # the digest the caller previewed
        self.found = found  # the plan's digest now


class NothingToRollBack(DeployError):
    """There is no snapshot to roll back to."""

    exit_code = 7


class ReleaseNotKept(DeployError):
    """`diff --release/--from/--to` named a release whose files are not (or no longer) kept anywhere."""

    exit_code = 7
