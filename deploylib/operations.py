"""The one API every entry point (invoke tasks, console script, MCP server) calls.

Each function loads the profile, runs the pipeline or a read-only survey, and
returns a result object. Failures raise `DeployError` subclasses.

A module used by only some operations (the pipeline, recovery, the fleet controller, git exports,
text diffs) is imported by the function that needs it: every command is a fresh process, and a
`status` should not pay for a deploy's imports.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from . import report
from .config import Profile, load_any, load_profile
from .context import EventSink, Operation, Source
from .errors import ConfigError, CorruptState, DeployError, LockHeld, PreflightFailed
from .globs import PatternSet, normalize, pattern_problem
from .history import last as last_record
from .history import read as read_history
from .ids import new_id, parse_time
from .journal import Journal, Record, State
from .layout import DEPLOY_PREFIX, ROLLBACK_PREFIX, hash_cache_path, stage_path
from .lock import Locked, current_holder
from .manifest import HashCache
from .releases import LIVE, Releases
from .results import (BackupsResult, DiffResult, HistoryResult, OperationResult, PruneResult,
                      ReleaseDiffResult, StatsResult, StatusResult)
from .retention import protected_ids
from .retention import prune as apply_retention
from .sources import RefSource, SnapshotSource, TreeSource, default_snapshot
from .steps.preflight import refuse_if_unsafe, survey
from .store import store_for
from .version import read_version

PathLike = str | os.PathLike[str] | None


def _operation(profile: Profile, source: Source, *, wait: float = 0.0, digest: str | None = None,
               adopt: tuple[str, ...] = (), overwrite_drift: bool = False,
               on_event: EventSink | None = None, cache_roots: list[Path] | None = None) -> Operation:
    """`cache_roots`: the trees whose hashes the cache keeps (default: the profile's source and target)."""
    prefix = DEPLOY_PREFIX if source.operation == "deploy" else ROLLBACK_PREFIX
    op_id = new_id(prefix)
    target = profile.target
    record = Record(op_id=op_id, operation=source.operation, state=State.IDLE.value, target=str(target),
                    stage=str(stage_path(target, op_id)))
    return Operation(
        profile=profile, source=source, record=record, journal=Journal(profile.state_dir),
        store=store_for(profile),
        cache=HashCache(hash_cache_path(profile.state_dir), cache_roots or [profile.source, target]),
        emit=on_event or (lambda kind, data: None), wait=wait, expected_digest=digest,
        adopt=PatternSet(tuple(adopt)), overwrite_drift=overwrite_drift,
    )


def _run(op: Operation, dry_run: bool) -> OperationResult:
    from . import pipeline

    refusal = None
    if dry_run:
        if op.journal.exists():
            op.note("an interrupted operation is pending recovery; the next real run recovers it first")
        found = survey(op)
        out = pipeline.Outcome(survey=found)
        try:  # the preview must not promise a plan the real run refuses
            refuse_if_unsafe(op, found)
        except PreflightFailed as exc:
            refusal = exc.message
    else:
        out = pipeline.run(op)
    assert out.survey is not None
    plan, prev = out.survey.plan, out.survey.previous or {}
    info = out.staged.version_info if out.staged else {}
    snapshot = getattr(op.source, "snapshot", None)  # what a rollback restores (also in a dry run)
    changed = out.changed
    result = OperationResult(
        ok=True, operation=op.name, profile=op.profile.name, target=str(op.target),
        dry_run=dry_run, changed=changed, message="",
        deploy_id=op.op_id if changed else None,
        version=info.get("version") if changed else (op.source.next_version() if dry_run else None),
        previous_version=prev.get("version"), previous_id=prev.get("deploy_id"),
        snapshot_id=op.record.snapshot_id if changed else None,
        restored_from=snapshot.id if snapshot else None,
        plan=plan.summary(), checks=out.checks, notes=op.notes, timings=out.timings,
        previous_git_commit=prev.get("git_commit"),
        hooks=out.hooks, notifications=out.notifications, would_refuse=refusal,
    )
    if changed:
        result.release, result.git_commit, result.git_dirty = info.get("release"), info.get("git_commit"), \
            info.get("git_dirty")
    elif dry_run:
        result.release, result.git_commit, result.git_dirty = op.source.next_release()
    result.message = report.operation_message(result)
    return result


def deploy(config: PathLike = None, profile: str | None = None, *, dry_run: bool = False,
           plan_digest: str | None = None, wait: float = 0.0, adopt: tuple[str, ...] = (),
           overwrite_drift: bool = False, ref: str | None = None,
           on_event: EventSink | None = None) -> OperationResult:
    """Deploy the source tree into production (or, with dry_run, only plan it).

    `adopt` names (globs) files in production that MCP Deploy did not deploy but may overwrite;
    `overwrite_drift` lets it overwrite managed files that were edited in production by hand;
    `ref` deploys the committed tree of that git ref instead of the working tree.
    """
    found = load_any(config, profile)
    if not isinstance(found, Profile):  # a Fleet
        from .fleet import controller as fleet_controller

        _fleet_flags("deploy", ref=ref, wait=wait)
        if dry_run:
            return fleet_controller.status(found, dry_run=True, on_event=on_event)  # type: ignore[return-value]
        return fleet_controller.run(found, "deploy", adopt=adopt, overwrite_drift=overwrite_drift,  # type: ignore[return-value]
                                    plan_digest=plan_digest, on_event=on_event)
    prof = found
    adopt = _adopt_globs(prof, adopt)
    if ref is None:
        op = _operation(prof, TreeSource(prof.source), wait=wait, digest=plan_digest, adopt=adopt,
                        overwrite_drift=overwrite_drift, on_event=on_event)
        return _run(op, dry_run)
    from . import gitref

    with gitref.exported(prof.source, ref) as exported:
        # every step reads "the source" from the profile: point it at the export; the hash cache keeps
        # the real source's section (the export's hashes die with it)
        op = _operation(replace(prof, source=exported.tree), RefSource(exported), wait=wait, digest=plan_digest,
                        adopt=adopt, overwrite_drift=overwrite_drift, on_event=on_event,
                        cache_roots=[prof.source, prof.target])
        try:
            result = _run(op, dry_run)
        except DeployError as exc:  # a dry run's refusal never went through the pipeline's failure path
            exc.message, exc.detail = exported.mask(exc.message), exported.mask(exc.detail)
            raise
        result.notes = [exported.mask(n) for n in result.notes]
        result.message = exported.mask(result.message)
        if result.would_refuse is not None:
            result.would_refuse = exported.mask(result.would_refuse)
        return result


def _adopt_globs(profile: Profile, globs: tuple[str, ...]) -> tuple[str, ...]:
    """`--adopt` globs, normalised; one that could name a path outside the target is a usage error."""
    for glob in globs:
        problem = pattern_problem(glob)
        if problem:
            raise ConfigError(f"--adopt '{report.shown(glob)}': {problem}; name files inside the target "
                              f"{report.shown(str(profile.target))} with a glob relative to it, "
                              "e.g. --adopt 'config/*.json'")
    return tuple(normalize(glob) for glob in globs)


def _fleet_flags(task: str, **given: object) -> None:
    """Flags a fleet operation does not take yet: refused, never silently ignored."""
    for flag, value in given.items():
        if value not in (None, False, 0, 0.0):
            raise ConfigError(f"{task} --{flag.replace('_', '-')}: not supported for a fleet profile (hosts:) yet")


def rollback(config: PathLike = None, profile: str | None = None, *, to: str | None = None,
             dry_run: bool = False, plan_digest: str | None = None, wait: float = 0.0,
             on_event: EventSink | None = None) -> OperationResult:
    """Restore production's managed files from a snapshot (default: the release before the current one).

    With `plan_digest`, only if the plan is still the one a dry run previewed (else PlanMismatch)."""
    found = load_any(config, profile)
    if not isinstance(found, Profile):  # a Fleet
        from .fleet import controller as fleet_controller

        _fleet_flags("rollback", plan=plan_digest, wait=wait, dry_run=dry_run)
        return fleet_controller.run(found, "rollback", to=to, on_event=on_event)  # type: ignore[return-value]
    prof = found
    op = _operation(prof, SnapshotSource(store_for(prof), to), wait=wait, digest=plan_digest, on_event=on_event)
    return _run(op, dry_run)


def status(config: PathLike = None, profile: str | None = None) -> StatusResult:
    """What is in production, what is pending, what drifted, who holds the lock (a fleet: on every host)."""
    from . import recovery

    loaded = load_any(config, profile)
    if not isinstance(loaded, Profile):  # a Fleet
        from .fleet import controller as fleet_controller

        return fleet_controller.status(loaded)  # type: ignore[return-value]
    prof = loaded
    op = _operation(prof, TreeSource(prof.source))
    notes: list[str] = []
    if op.journal.exists() or recovery.leftover_stages(op):
        notes += _recover_now(op)
    found = survey(op)
    notes += op.notes
    problem = op.cache.save()
    if problem:
        notes.append(problem)
    plan, prev = found.plan, found.previous or {}
    drift = plan.drift
    try:
        last = last_record(prof.log)
    except CorruptState as exc:  # status still tells what is in production
        last = None
        notes.append(exc.message)
    snapshots, _ = op.store.all_snapshots()
    target_snap = default_snapshot(op.store.ours(snapshots), found.previous)
    age = None
    if prev.get("deployed"):
        age = (datetime.now(timezone.utc) - parse_time(prev["deployed"])).total_seconds()
    holder = current_holder(prof)
    result = StatusResult(
        profile=prof.name, source=str(prof.source), target=str(prof.target), deployed=found.previous is not None,
        summary="", version=prev.get("version"), deploy_id=prev.get("deploy_id"),
        deployed_at=prev.get("deployed"), age_seconds=round(age, 1) if age is not None else None,
        operation=prev.get("operation"), pending=plan.summary(), drift=drift,
        lock=holder.__dict__ if holder else None, last=last,
        rollback_target=target_snap.id if target_snap else None, notes=notes,
        release=prev.get("release"), git_commit=prev.get("git_commit"), git_dirty=prev.get("git_dirty"),
    )
    result.summary = report.status_summary(result)
    return result


def _recover_now(op: Operation) -> list[str]:
    """Status recovers a dead operation's leftovers, unless a live one holds the lock."""
    from . import recovery

    try:
        with Locked(op.profile, "recovery"):
            recovery.recover(op)
            return list(op.notes)
    except LockHeld:
        return ["an operation is in progress (see lock)"]
    finally:
        op.notes.clear()


def diff(config: PathLike = None, profile: str | None = None) -> DiffResult:
    """The pending changes, with unified diffs for text files."""
    from .textdiff import Side, unified

    prof = load_profile(config, profile)
    op = _operation(prof, TreeSource(prof.source))
    plan = survey(op).plan
    diffs: dict[str, str] = {}
    for entry, old, new in ([(e, None, prof.source) for e in plan.added]
                            + [(e, prof.target, prof.source) for e in plan.changed]
                            + [(e, prof.target, None) for e in plan.removed]):
        text = unified(Side("production", old and old / entry.path), Side("source", new and new / entry.path),
                       entry.path)
        diffs[entry.path] = text if text is not None else report.binary_differs(entry.path)
    return DiffResult(profile=prof.name, plan=plan.summary(), diffs=diffs, notes=op.notes)


def release_diff(config: PathLike = None, profile: str | None = None, *, release: str | None = None,
                 old: str | None = None, new: str | None = None) -> ReleaseDiffResult:
    """What a release changed against its predecessor (`release`), or between any two (`old`, `new`).

    Each is `live`, a snapshot id, a deploy id or a version; `new` defaults to `live`. Reads only.
    """
    prof = load_profile(config, profile)
    # read the hash cache, never save it: a diff writes nothing
    known = Releases(prof, store_for(prof), HashCache(hash_cache_path(prof.state_dir)))
    if release is not None:
        after = known.find(release)
        before = known.before(after)
    else:
        assert old is not None
        before, after = known.find(old), known.find(new or LIVE)
    changes = known.compare(before, after)
    notes = known.notes
    if Journal(prof.state_dir).exists():
        notes.append("an operation is in flight or was interrupted: the live files may be mid-change")
    return ReleaseDiffResult(profile=prof.name, old=before.describe(), new=after.describe(),
                             plan=changes.plan.summary(), diffs=changes.diffs, binary=changes.binary, notes=notes)


def _history_log(config: PathLike, profile: str | None) -> Path:
    """The history log of a profile; a fleet's is its controller's (one record per fleet operation)."""
    found = load_any(config, profile)
    return found.log if isinstance(found, Profile) else found.local.log


def history(config: PathLike = None, profile: str | None = None, limit: int = 20) -> HistoryResult:
    log = _history_log(config, profile)
    records, bad = read_history(log)
    return HistoryResult(log=str(log), records=records[-limit:] if limit > 0 else records, damaged_lines=bad)


def history_stats(config: PathLike = None, profile: str | None = None, period: str = "day") -> StatsResult:
    """Metrics from the history log: per-period counts, success rate, step durations, time to recover."""
    from . import metrics  # statistics and friends load only for `history --stats`

    if period not in ("day", "week", "month"):
        raise ConfigError(f"--period: expected day, week or month, got '{period}'")
    log = _history_log(config, profile)
    records, bad = read_history(log)
    return StatsResult(log=str(log), stats=metrics.compute(records, period), damaged_lines=bad)


def backups(config: PathLike = None, profile: str | None = None) -> BackupsResult:
    prof = load_profile(config, profile)
    store = store_for(prof)
    every, problems = store.all_snapshots()
    snapshots = store.ours(every)
    current, _ = read_version(prof.target, prof.version_file)
    target = default_snapshot(snapshots, current)
    protected = protected_ids(snapshots, current)
    rows = [{**s.brief(), "rollback_target": target is not None and s.id == target.id,
             "protected": s.id in protected} for s in reversed(snapshots)]
    return BackupsResult(backup_dir=str(store.root), snapshots=rows,
                         rollback_target=target.id if target else None, problems=problems,
                         other_targets=len(every) - len(snapshots))


def prune(config: PathLike = None, profile: str | None = None, *, dry_run: bool = False,
          wait: float = 0.0) -> PruneResult:
    """Apply the retention rules and delete objects no remaining snapshot references."""
    prof = load_profile(config, profile)
    store = store_for(prof)
    current, _ = read_version(prof.target, prof.version_file)
    if dry_run:
        report = apply_retention(prof, store, current, dry_run=True)
    else:
        with Locked(prof, "prune", wait=wait):
            report = apply_retention(prof, store, current)
    return PruneResult(dry_run=dry_run, removed=report.removed, kept=report.kept,
                       objects_removed=report.objects_removed, bytes_freed=report.bytes_freed)
