"""The table of contents of every deploy and rollback.

    lock -> preflight -> backup -> stage -> validate -> swap -> verify -> record

Before each step the journal records the state it moves to (fsynced), so that
a process killed at any instant leaves enough behind for the next one to
finish or undo its work. When a step fails, the steps already run (and the
failing one) are undone in reverse and production is exactly as before.
"""

from __future__ import annotations

import time

from .context import Context
from .errors import CorruptState, DeployError, StepFailed
from .history import append
from .journal import Journal, Record, State
from .manifest import load_manifest
from .steps import Step
from .steps.backup import Backup
from .steps.lock import LockStep
from .steps.preflight import Preflight, release_path
from .steps.record import Record as RecordStep
from .steps.record import finish, history_record
from .steps.stage import Stage
from .steps.swap import Swap
from .steps.validate import Validate
from .steps.verify import Verify
from .version import read_version


def recover(ctx: Context) -> None:
    """Finish or undo the operation whose journal a dead process left; called with the lock held."""
    journal = ctx.journal
    if not journal.exists():
        return
    try:
        dead: Record | None = journal.read()
    except CorruptState:
        dead = _reconstruct(ctx)
    if dead is None:
        journal.clear()
        ctx.note(f"{journal.path}: damaged journal with no operation in flight; removed it")
        return
    rctx = _recovery_context(ctx, dead)
    state = State(dead.failed_state or dead.state) if dead.state == State.ROLLING_BACK else State(dead.state)
    if state in (State.RECORDING, State.COMPLETE):
        finish(rctx)
        action = "completed it (verify had passed)"
    else:
        undo(rctx, [s for s in STEPS if ORDER.index(s.state) <= ORDER.index(state)])
        action = "rolled it back; production is as before it started"
    journal.clear()
    append(ctx.profile.log, {"event": "recovery", "id": dead.op_id, "operation": dead.operation,
                             "ok": True, "state": state.value, "action": action, "profile": ctx.profile.name})
    ctx.note(f"recovered interrupted {dead.operation} {dead.op_id} (stopped at {state.value}): {action}")


def _reconstruct(ctx: Context) -> Record | None:
    """Rebuild a journal record from the trees on disk when the journal itself is unreadable."""
    target = ctx.target
    prefix = f".{target.name}.deploy-"
    leftovers = sorted(target.parent.glob(prefix + "[dr]-*")) if target.parent.is_dir() else []  # op ids only
    if not leftovers:
        return None
    swap_path = leftovers[-1]
    op_id = swap_path.name[len(prefix):]
    swapped = (read_version(target)[0] or {}).get("deploy_id") == op_id
    return Record(op_id=op_id, operation="deploy", state=(State.VERIFYING if swapped else State.STAGING).value,
                  target=str(target), swap_path=str(swap_path), backup_dir=str(ctx.store.root),
                  log=str(ctx.profile.log), target_existed=True)


def _recovery_context(ctx: Context, dead: Record) -> Context:
    rctx = Context(profile=ctx.profile, source=ctx.source, record=dead, journal=ctx.journal,
                   store=ctx.store, cache=ctx.cache, emit=ctx.emit)
    desired = load_manifest(release_path(rctx, dead.op_id))
    swapped = (read_version(rctx.target)[0] or {}).get("deploy_id") == dead.op_id
    old_version = read_version(rctx.swap_path if swapped else rctx.target)[0]
    deployed = load_manifest(release_path(rctx, old_version["deploy_id"])) if old_version else {}
    rctx.desired, rctx.deployed = desired or {}, deployed or {}
    rctx.managed_known = desired is not None and deployed is not None
    return rctx


STEPS: list[Step] = [LockStep(recover), Preflight(), Backup(), Stage(), Validate(), Swap(), Verify(), RecordStep()]
ORDER = [State.CHECKING, State.BACKING_UP, State.STAGING, State.VALIDATING, State.SWAPPING,
         State.VERIFYING, State.RECORDING, State.COMPLETE]


def undo(ctx: Context, steps: list[Step]) -> None:
    for step in reversed(steps):
        if type(step).undo is not Step.undo:
            ctx.emit("undo", {"step": step.name})
        step.undo(ctx)


def run(ctx: Context) -> Context:
    """Run every step; on failure undo and raise a DeployError naming the step. Returns the context."""
    done: list[Step] = []
    try:
        for step in STEPS:
            if ctx.lock is not None and ctx.record.state != step.state.value:
                ctx.journal.advance(ctx.record, step.state)
            ctx.emit("step", {"step": step.name, "state": step.state.value})
            started = time.monotonic()
            done.append(step)
            step.run(ctx)
            ctx.timings[step.name] = round(time.monotonic() - started, 4)
            if ctx.stop_reason:
                break
        if ctx.lock is not None and not ctx.keep_journal:
            ctx.journal.advance(ctx.record, State.COMPLETE)
            ctx.journal.clear()
        return ctx
    except BaseException as exc:
        if ctx.lock is None:
            raise  # nothing started: the lock was never ours
        raise _fail(ctx, done, exc) from (None if isinstance(exc, DeployError) else exc)
    finally:
        if ctx.lock is not None:
            ctx.cache.save()
            ctx.lock.release()


def _fail(ctx: Context, done: list[Step], exc: BaseException) -> BaseException:
    """Undo `done` in reverse, log the failure, and return the error to raise."""
    step = done[-1].name if done else "start"
    ctx.record.failed_state, ctx.record.error = ctx.record.state, str(exc)
    try:
        ctx.journal.advance(ctx.record, State.ROLLING_BACK)
    except OSError:
        pass  # e.g. the disk is full: undo anyway; the journal's last state leads recovery to the same undo
    try:
        undo(ctx, done)
    except Exception as undo_exc:  # journal kept: the next command retries the recovery
        return CorruptState(
            f"{ctx.target}: {ctx.record.operation} failed at {step} ({exc}) and undoing it failed too "
            f"({undo_exc}); the journal at {ctx.journal.path} is kept and the next command retries the recovery"
        )
    ctx.journal.clear()
    error: BaseException
    if isinstance(exc, DeployError):
        error = exc
    elif isinstance(exc, OSError):
        error = StepFailed(step, f"{exc.strerror or exc}: {exc.filename or ctx.target}")
    else:
        error = exc  # a bug or an interrupt: still undone, re-raised as it is
    undone = "nothing was changed" if step in ("lock", "preflight") else "undone; production is as before"
    if isinstance(error, DeployError):
        error.message = f"{ctx.record.operation} failed at {step}: {error.message.removeprefix(step + ' failed: ')} ({undone})"
        error.args = (error.message,)
        error.step = step
    try:
        append(ctx.profile.log, history_record(ctx, ok=False, failed_step=step, error=str(error),
                                               detail=getattr(error, "detail", "")))
    except OSError:
        pass  # the failure itself is what the user must see; a full disk must not mask it
    return error

