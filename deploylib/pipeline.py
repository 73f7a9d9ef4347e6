"""The table of contents of every deploy and rollback.

    lock -> recover -> preflight -> backup -> stage -> validate -> commit -> verify -> record

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
from typing import Any, Callable, TypeVar

from . import signals
from .context import Operation, Survey
from .errors import Interrupted, PlanMismatch, StepFailed, UndoFailed
from .history import append
from .ids import iso, utc_now
from .journal import State
from .lock import Locked
from .recovery import recover
from .steps import Step, backup, commit, finish, preflight, stage, undo, validate, verify
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
    _step(op, out, commit, lambda: commit.run(op, staged))
    out.checks += _step(op, out, verify, lambda: verify.run(op))


def _step(op: Operation, out: Outcome, step: Step, work: Callable[[], T]) -> T:
    """Journal the move to `step`'s state, then do its work, timed."""
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
    try:
        with signals.raising():  # SIGTERM/SIGHUP too: the release is live, the run must still report it
            finish.housekeeping(op, history_record(op, out, ok=True), out.staged.version_info)
    except (KeyboardInterrupt, Interrupted):
        op.note("interrupted during housekeeping: the release is live; history or retention may be missing")


def _fail(op: Operation, out: Outcome, exc: BaseException) -> BaseException:
    """Undo what ran (signals held meanwhile), log the failure, and return the error to raise."""
    step = out.done[-1].NAME if out.done else "lock"
    changed_nothing = [s.NAME for s in out.done] in ([], [preflight.NAME])
    undo_started = time.monotonic()
    if changed_nothing:
        op.journal.clear()
        error: BaseException = StepFailed(op.name, step, exc, undone=False)
    else:
        op.record.failed_state, op.record.error = op.record.state, str(exc)[:2000]
        try:
            op.journal.advance(op.record, State.ROLLING_BACK)
        except OSError:
            pass  # e.g. the disk is full: undo anyway; the journal's last state leads recovery to the same undo
        held: list[str] = []
        with signals.held(held):
            try:
                undo(op, out.done)
            except BaseException as undo_exc:
                return UndoFailed(
                    f"{op.target}: {op.name} failed at {step} ({exc}) and undoing it failed too ({undo_exc}); "
                    f"production may be partly changed: the journal at {op.journal.path} is kept and the next "
                    "command retries the recovery")
        op.journal.clear()
        error = StepFailed(op.name, step, exc)
        out.timings["undo"] = round(time.monotonic() - undo_started, 4)
    extra: dict[str, object] = {"failed_step": step, "error": str(error), "detail": getattr(error, "detail", "")}
    if isinstance(exc, PlanMismatch):  # a safety check doing its job, not a failed operation
        extra.update(event="refused", error=exc.message, expected_digest=exc.expected, plan_digest=exc.found)
    try:
        append(op.profile.log, history_record(op, out, ok=False, **extra))
    except OSError:
        pass  # the failure itself is what the user must see; a full disk must not mask it
    return error


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
        **extra,
    }
