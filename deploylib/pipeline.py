"""The table of contents of every deploy and rollback.

    lock -> recover -> preflight -> backup -> stage -> validate -> before_commit -> commit -> verify -> record
                                             (hooks: after_commit, after_rollback | on_failure; then notify)

Before each step the journal records the state it moves to (fsynced), so that a
process killed at any instant leaves enough behind for the next one to finish
or undo its work (`recovery.py`). When a step fails, or a signal arrives, the
steps already run are undone in reverse and production is exactly as before.
Once verify has passed the only direction is forward: `record` finishes the
release whatever happens, and housekeeping (history, retention) comes last.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from . import hooks, notify, signals
from .context import Operation, Survey
from .errors import DeployError, Interrupted, PlanMismatch, StepFailed, UndoFailed
from .history import append
from .ids import iso, utc_now
from .journal import State
from .lock import Locked
from .recovery import recover
from .steps import backup, before_commit, commit, finish, preflight, stage, validate, verify
from .steps.sequence import Step, undo
from .steps.backup import Backup
from .steps.stage import Staged

T = TypeVar("T")


@dataclass
class Outcome:
    """What a run made, step by step; the operations API turns it into a result."""

    started: float = field(default_factory=time.time)
    survey: Survey | None = None
    backup: Backup | None = None
    staged: Staged | None = None
    checks: list[dict[str, object]] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    done: list[Step] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.staged is not None and commit in self.done


def run(op: Operation) -> Outcome:
    """Run the operation under the lock; raise a DeployError naming the failing step (undone)."""
    out = Outcome()
    started = time.monotonic()
    op.emit("step", {"step": "lock", "state": State.IDLE.value, "wait": op.wait})
    with Locked(op.profile, op.name, wait=op.wait):
        out.timings["lock"] = round(time.monotonic() - started, 4)
        try:
            _run_locked(op, out)
        finally:
            problem = op.cache.save()  # the hashes learned are true whatever happened: next run skips re-reading
            if problem:
                op.note(problem)
    return out


def _run_locked(op: Operation, out: Outcome) -> None:
    recover(op)  # holding the lock: any journal left behind belongs to a dead process
    try:
        with signals.raising():
            _steps(op, out)
    except BaseException as exc:
        raise _fail(op, out, exc) from exc
    assert out.survey is not None
    if out.survey.plan.empty:
        op.journal.clear()
        return
    _record(op, out)


def _steps(op: Operation, out: Outcome) -> None:
    out.survey = _step(op, out, preflight, lambda: preflight.run(op))
    if out.survey.plan.empty:
        return
    survey = out.survey
    op.emit("plan", {"plan": survey.plan.summary(), "from": (survey.previous or {}).get("version"),
                     "to": op.source.next_version()})  # shown before the work starts
    out.backup = _step(op, out, backup, lambda: backup.run(op, survey))
    taken = out.backup
    out.staged = _step(op, out, stage, lambda: stage.run(op, survey, taken))
    staged = out.staged
    out.checks += _step(op, out, validate, lambda: validate.run(op, staged))
    if op.profile.hooks.get(before_commit.NAME):  # a step only for profiles that have such hooks
        out.hooks += _step(op, out, before_commit, lambda: before_commit.run(op, survey, staged))
    # a fleet holds every host here until all are prepared (a local run goes straight on)
    op.checkpoint("prepared", {"plan": survey.plan.summary(), "version": staged.version_info.get("version")})
    _step(op, out, commit, lambda: commit.run(op, staged))
    out.checks += _step(op, out, verify, lambda: verify.run(op))
    # provisional until the controller confirms: a failure here undoes the commit like a failed verify
    op.checkpoint("verified", {"checks": out.checks})


def _step(op: Operation, out: Outcome, step: Step, work: Callable[[], T]) -> T:
    """Journal the move to `step`'s state (unless already there), then do its work, timed."""
    if op.record.state != step.STATE.value:
        op.journal.advance(op.record, step.STATE)
    op.emit("step", {"step": step.NAME, "state": step.STATE.value})
    out.done.append(step)
    started = time.monotonic()
    try:
        return work()
    finally:  # a failing step's time counts too: a 20 s verify timeout must show as 20 s in the history
        out.timings[step.NAME] = round(time.monotonic() - started, 4)


def _record(op: Operation, out: Outcome) -> None:
    """Verify passed: finish the release, even on a signal or a failed journal write, then log it."""
    assert out.staged is not None
    started = time.monotonic()
    held: list[str] = []
    op.emit("step", {"step": finish.NAME, "state": finish.STATE.value})
    with signals.held(held):
        try:
            op.journal.advance(op.record, State.RECORDING)
        except OSError as exc:  # recovery must never find this journal still at VERIFYING
            op.note(f"{op.journal.path}: could not record that verify passed ({exc.strerror}); removed the journal")
            op.journal.clear()
        try:
            finish.finish(op)
            op.journal.advance(op.record, State.COMPLETE)
            op.journal.clear()
        except OSError as exc:
            op.note(f"could not finish tidying up ({exc.strerror}: {exc.filename}); the release is live and "
                    "the next command completes it")
    if held:
        op.note(f"{', '.join(held)} arrived after verify passed: the release was finished, never undone")
    out.timings[finish.NAME] = round(time.monotonic() - started, 4)
    _let_go(op, out)
    env = hooks.environment(op, out.survey, out.staged.version_info)
    try:
        with signals.raising():  # SIGTERM/SIGHUP too: the release is live, the run must still report it
            for point in ("after_commit", "after_rollback") if op.name == "rollback" else ("after_commit",):
                _final_hooks(op, out, point, op.target, env)
            record = history_record(op, out, ok=True)
            finish.housekeeping(op, record, out.staged.version_info)
            event = "rollback" if op.name == "rollback" else "success"
            out.notifications = notify.send(op, event, notify.body(op, event, record, _previous_version(out)),
                                            env, op.target)
    except (KeyboardInterrupt, Interrupted):
        op.note("interrupted during housekeeping: the release is live; history or retention may be missing")


def _let_go(op: Operation, out: Outcome) -> None:
    """The release is live and recorded, never undone: what follows (hooks, history, retention, the result)
    reads the plan and the VERSION, not the manifests. Dropping them lets retention work in the memory they
    held; at 100,000 files its candidate names came on top of them and were the run's peak."""
    assert out.survey is not None and out.staged is not None
    out.survey.release.files, out.survey.desired, out.survey.production = {}, {}, {}
    out.backup = None
    out.staged.view.unchanged, out.staged.view.files = [], []
    if hasattr(op.source, "stamps"):
        op.source.stamps = {}
    snapshot = getattr(op.source, "snapshot", None)  # a rollback's: its id is still reported
    if snapshot is not None:
        snapshot.files = {}


def _final_hooks(op: Operation, out: Outcome, point: str, cwd: Path, env: dict[str, str]) -> None:
    """Run a hook list whose failure can only be reported (its time is kept like a step's)."""
    if not op.profile.hooks.get(point):
        return
    started = time.monotonic()
    out.hooks += hooks.final(op, point, cwd, env, hooks.changed(out.survey))
    out.timings[point] = round(time.monotonic() - started, 4)


def _previous_version(out: Outcome) -> str | None:
    return ((out.survey.previous if out.survey else None) or {}).get("version")


def _fail(op: Operation, out: Outcome, exc: BaseException) -> DeployError:
    """Undo what ran, then report the failure: on_failure hooks, the history, notifications."""
    step = out.done[-1].NAME if out.done else "lock"
    error = _undo(op, out, step, exc)
    mask = getattr(op.source, "mask", None)  # a --ref deploy names its files by ref, not by the export
    if mask is not None:
        error.message, error.detail = mask(error.message), mask(error.detail)
    info = out.staged.version_info if out.staged else {}
    env = {**hooks.environment(op, out.survey, info), "MCP_DEPLOY_FAILED_STEP": step,
           "MCP_DEPLOY_ERROR": error.message}
    if isinstance(error, UndoFailed):
        # production may be a mix until the next command recovers it: tell the notifiers, but run no hook
        # (a restart would load the mix)
        _notify_failure(op, out, error, history_record(op, out, ok=False, failed_step=step, error=error.message), env)
        return error
    _final_hooks(op, out, "on_failure", _production_or_config_dir(op), env)
    extra: dict[str, object] = {"failed_step": step, "error": error.message, "detail": error.detail}
    if isinstance(exc, PlanMismatch):  # a safety check doing its job, not a failed operation
        extra.update(event="refused", error=exc.message, expected_digest=exc.expected, plan_digest=exc.found)
    record = history_record(op, out, ok=False, **extra)
    try:
        append(op.profile.log, record)
    except OSError:
        pass  # the failure itself is what the user must see; a full disk must not mask it
    _notify_failure(op, out, error, record, env)
    return error


def _undo(op: Operation, out: Outcome, step: str, exc: BaseException) -> DeployError:
    """Take back the steps that ran (signals held meanwhile); the error to raise says whether that worked."""
    if [s.NAME for s in out.done] in ([], [preflight.NAME]):
        op.journal.clear()
        return StepFailed(op.name, step, exc, undone=False)
    op.record.failed_state, op.record.error = op.record.state, str(exc)[:2000]
    try:
        op.journal.advance(op.record, State.ROLLING_BACK)
    except OSError:
        pass  # e.g. the disk is full: undo anyway; the journal's last state leads recovery to the same undo
    held: list[str] = []
    started = time.monotonic()
    with signals.held(held):
        try:
            undo(op, out.done)
        except BaseException as undo_exc:
            return UndoFailed(
                f"{op.target}: {op.name} failed at {step} ({exc}) and undoing it failed too ({undo_exc}); "
                f"production may be partly changed: the journal at {op.journal.path} is kept and the next "
                "command retries the recovery")
    op.journal.clear()
    out.timings["undo"] = round(time.monotonic() - started, 4)
    return StepFailed(op.name, step, exc, kept=op.kept_by_undo)


def _notify_failure(op: Operation, out: Outcome, error: DeployError, record: dict[str, Any],
                    env: dict[str, str]) -> None:
    """Send the failure notifications; what went wrong with hooks or notifications joins the error's detail
    (printed with --verbose), since a failed run prints its error, not its notes."""
    out.notifications = notify.send(op, "failure", notify.body(op, "failure", record, _previous_version(out)), env,
                                    _production_or_config_dir(op))
    if op.notes:
        error.detail = "\n".join(filter(None, [error.detail, *(f"note: {n}" for n in op.notes)]))


def _production_or_config_dir(op: Operation) -> Path:
    """Where failure hooks run: production, unless a failed first deploy left none."""
    return op.target if op.target.is_dir() else op.profile.config_path.parent


def history_record(op: Operation, out: Outcome, ok: bool, **extra: object) -> dict[str, Any]:
    """One history line; `extra` adds fields and may override `event` (a refusal is not a failure)."""
    plan = out.survey.plan if out.survey else None
    info = out.staged.version_info if out.staged else {}
    return {
        "event": op.name if ok else "failure",
        "operation": op.name,
        "id": op.op_id,
        "ok": ok,
        "profile": op.profile.name,
        "started": iso(out.started),
        "finished": utc_now(),
        "duration": round(sum(out.timings.values()), 4),
        "version": info.get("version"),
        "release": info.get("release"),
        "git_commit": info.get("git_commit"),
        "git_dirty": info.get("git_dirty"),
        "previous_id": (out.survey.previous or {}).get("deploy_id") if out.survey else None,
        "snapshot_id": op.record.snapshot_id if ok else None,
        "restored_from": info.get("restored_from"),
        "counts": plan.summary()["counts"] if plan else None,
        "files_updated": info.get("files_updated", []),
        "steps": out.timings,
        "hooks": out.hooks,
        **extra,
    }
