"""Finish or undo an operation whose process died, from its journal; called with the lock held.

Killed before verify passed, the operation is undone step by step in reverse
(production is exactly as before it started); killed after, it is finished
(production is exactly the new release). The journal is removed only once the
recovery succeeded: a failing recovery keeps it and says so, and the next
command tries again.
"""

from __future__ import annotations

from pathlib import Path

from .commit import PLAN_FILE, CommitPlan, drop_stage, load_plan
from .context import Operation
from .errors import CorruptState, DeployError, UndoFailed, but_for
from .history import append
from .journal import KEPT, DamagedJournal, Record, State
from .layout import DEPLOY_PREFIX, is_op_id, release_path, stage_path
from .version import read_version


def recover(op: Operation) -> None:
    """Recover the journal a dead holder of the lock left, then drop stages no journal owns."""
    journal = op.journal
    if journal.exists():
        try:
            dead = journal.read()
        except DamagedJournal:
            _recover_from_stages(op)
            return
        _recover(op, dead)
    for stage in leftover_stages(op):
        try:
            drop_stage(stage)  # a stage whose journal was closed (e.g. a failed tidy-up): nothing refers to it
        except OSError as exc:
            op.note(f"{stage}: leftover stage not removed ({exc.strerror}); remove it by hand")


def _recover_from_stages(op: Operation) -> None:
    """The journal's bytes are gone: each stage left beside production still holds its commit plan
    (or never got as far as one), which is all an undo needs. Verify's verdict is lost with the
    journal, so the interrupted operation is undone: production ends exactly as before it.
    The damaged journal is never deleted: once the undo succeeded it is set aside as evidence."""
    stages = leftover_stages(op)
    for stage in stages:
        op_id = stage.name.rpartition(".deploy-")[2]
        plan = load_plan(stage)
        taken = [s.id for s in op.store.all_snapshots()[0] if s.op_id == op_id]  # the backup it took, if any
        dead = Record(op_id=op_id, operation="deploy" if op_id.startswith(DEPLOY_PREFIX) else "rollback",
                      state=(State.COMMITTING if plan else State.STAGING).value, target=str(op.target),
                      stage=str(stage), snapshot_id=taken[0] if taken else None,
                      commit=plan.to_json() if plan else None)
        _recover(op, dead, close=False)
    try:
        aside = op.journal.set_aside()
    except OSError as exc:
        raise CorruptState(f"{op.journal.path}: the journal is damaged and could not be set aside "
                           f"({exc.strerror}); move it aside by hand to continue") from None
    if stages:
        op.note(f"{op.journal.path}: the journal was damaged; recovered from the stage beside production "
                f"and kept the damaged journal as {aside.name}")
    else:
        op.note(f"{op.journal.path}: damaged journal with no operation in flight; kept it as {aside.name}")


def _mismatch(op: Operation, dead: Record) -> str | None:
    """Which of the journal's paths is not this profile's (None: both are)."""
    if dead.target != str(op.target):
        return f"the journal is for the target {dead.target[:200]}, not this profile's target {op.target}"
    expected = stage_path(op.target, dead.op_id)
    if dead.stage != str(expected):
        return (f"the journal's stage is {dead.stage[:200]}, not {expected} (the stage of its operation "
                f"{dead.op_id} beside this profile's target)")
    return None


def _inconsistency(op: Operation, dead: Record, state: State) -> str | None:
    """Why the journal cannot describe an operation on this target that died (None: it can).

    Recovery acts on what the journal says; a journal edited (or planted) to name an operation that
    never ran would make it delete the live release's record or a good backup.
    """
    if state in (State.RECORDING, State.COMPLETE):
        if not release_path(op.profile.state_dir, dead.op_id).is_file():
            return (f"it says {dead.operation} {dead.op_id} passed verify, but its release record "
                    f"{release_path(op.profile.state_dir, dead.op_id)} does not exist")
        live, _ = read_version(op.target, op.profile.version_file)
        if live is not None and live.get("deploy_id") != dead.op_id:
            return (f"it says {dead.operation} {dead.op_id} passed verify, but production's "
                    f"{op.profile.version_file} names {live.get('deploy_id')}")
    stage = Path(dead.stage)
    if dead.commit is not None and stage.is_dir():
        kept = load_plan(stage)
        if kept is not None and kept.to_json() != CommitPlan.from_json(dead.commit).to_json():
            return f"its commit plan differs from the one its stage keeps ({stage / PLAN_FILE})"
    if dead.snapshot_id is not None:
        try:
            snap = op.store.load(dead.snapshot_id, with_files=False)
        except CorruptState:
            snap = None  # missing (or unreadable): undoing the backup deletes nothing that matters
        if snap is not None and snap.op_id != dead.op_id:
            return f"its backup {dead.snapshot_id} was taken by another operation ({snap.op_id})"
    return None


def _recover(op: Operation, dead: Record, close: bool = True) -> None:
    mismatch = _mismatch(op, dead)
    if mismatch:
        raise CorruptState(f"{op.journal.path}: {mismatch}; it is kept and nothing was touched: "
                           "use the profile it belongs to")
    state = State(dead.failed_state or State.VERIFYING) if dead.state == State.ROLLING_BACK else State(dead.state)
    problem = _inconsistency(op, dead, state)
    if problem:
        raise CorruptState(f"{op.journal.path}: journal is damaged ({problem}); {KEPT}")
    from .steps.finish import finish  # here: a status that finds nothing to recover loads no step
    from .steps.sequence import reached, undo

    rop = Operation(profile=op.profile, source=op.source, record=dead, journal=op.journal, store=op.store,
                    cache=op.cache, emit=op.emit)
    try:
        if state in (State.RECORDING, State.COMPLETE):
            finish(rop)
            action = "completed it (verify had passed)"
        else:
            undo(rop, reached(state))
            action = f"rolled it back; production is as before it started{but_for(rop.kept_by_undo)}"
        if close:
            op.journal.clear()
    except (OSError, DeployError) as exc:
        reason = getattr(exc, "message", None) or f"{getattr(exc, 'strerror', None) or exc}: " \
                                                   f"{getattr(exc, 'filename', '')}"
        raise UndoFailed(f"{op.target}: recovering the interrupted {dead.operation} {dead.op_id} failed "
                         f"({reason}); the journal at {op.journal.path} is kept and the next command retries: "
                         "fix the cause and rerun") from None
    try:
        append(op.profile.log, {"event": "recovery", "id": dead.op_id, "operation": dead.operation, "ok": True,
                                "state": state.value, "action": action, "profile": op.profile.name})
    except OSError:
        pass  # the recovery itself succeeded
    op.note(f"recovered interrupted {dead.operation} {dead.op_id} (stopped at {state.value}): {action}")


def leftover_stages(op: Operation) -> list[Path]:
    """Stages beside production, recognised by their exact name (an operation id), never by a prefix alone."""
    parent = op.target.parent
    prefix = f".{op.target.name}.deploy-"
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir()
                  if p.name.startswith(prefix) and is_op_id(p.name[len(prefix):]) and not p.is_symlink())
