"""The one API every entry point (invoke tasks, console script, MCP server) calls.

Each function loads the profile, runs the pipeline or a read-only survey, and
returns a result object. Failures raise `DeployError` subclasses.
"""

from __future__ import annotations

import difflib
import os
from datetime import datetime, timezone
from pathlib import Path

from . import pipeline, recovery, report
from .config import Profile, load_profile
from .context import EventSink, Operation, Source
from .errors import ConfigError, CorruptState, LockHeld
from .globs import PatternSet
from .history import read as read_history
from .ids import new_id, parse_time
from .journal import Journal, Record, State
from .layout import DEPLOY_PREFIX, ROLLBACK_PREFIX, hash_cache_path, stage_path
from .lock import Locked, current_holder
from .manifest import HashCache
from .results import (BackupsResult, DiffResult, HistoryResult, OperationResult, PruneResult,
                      StatsResult, StatusResult)
from .retention import protected_ids
from .retention import prune as apply_retention
from .sources import SnapshotSource, TreeSource, default_snapshot
from .steps.preflight import survey
from .store import store_for
from .version import read_version

PathLike = str | os.PathLike[str] | None


def _operation(profile: Profile, source: Source, *, wait: float = 0.0, digest: str | None = None,
               adopt: tuple[str, ...] = (), on_event: EventSink | None = None) -> Operation:
    prefix = DEPLOY_PREFIX if source.operation == "deploy" else ROLLBACK_PREFIX
    op_id = new_id(prefix)
    target = profile.target
    record = Record(op_id=op_id, operation=source.operation, state=State.IDLE.value, target=str(target),
                    stage=str(stage_path(target, op_id)))
    return Operation(
        profile=profile, source=source, record=record, journal=Journal(profile.state_dir),
        store=store_for(profile),
        cache=HashCache(hash_cache_path(profile.state_dir), [profile.source, target]),
        emit=on_event or (lambda kind, data: None), wait=wait, expected_digest=digest,
        adopt=PatternSet(tuple(adopt)),
    )


def _run(op: Operation, dry_run: bool) -> OperationResult:
    if dry_run:
        if op.journal.exists():
            op.note("an interrupted operation is pending recovery; the next real run recovers it first")
        out = pipeline.Outcome(survey=survey(op))
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
        hooks=out.hooks, notifications=out.notifications,
    )
    result.message = report.operation_message(result)
    return result


def deploy(config: PathLike = None, profile: str | None = None, *, dry_run: bool = False,
           plan_digest: str | None = None, wait: float = 0.0, adopt: tuple[str, ...] = (),
           on_event: EventSink | None = None) -> OperationResult:
    """Deploy the source tree into production (or, with dry_run, only plan it).

    `adopt` names (globs) files in production that MCP Deploy did not deploy but may overwrite.
    """
    prof = load_profile(config, profile)
    op = _operation(prof, TreeSource(prof.source), wait=wait, digest=plan_digest, adopt=adopt, on_event=on_event)
    return _run(op, dry_run)


def rollback(config: PathLike = None, profile: str | None = None, *, to: str | None = None,
             dry_run: bool = False, wait: float = 0.0, on_event: EventSink | None = None) -> OperationResult:
    """Restore production's managed files from a snapshot (default: the release before the current one)."""
    prof = load_profile(config, profile)
    op = _operation(prof, SnapshotSource(store_for(prof), to), wait=wait, on_event=on_event)
    return _run(op, dry_run)


def status(config: PathLike = None, profile: str | None = None) -> StatusResult:
    """What is in production, what is pending, what drifted, who holds the lock."""
    prof = load_profile(config, profile)
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
    drift = sorted(p for p, e in found.release.files.items()
                   if p not in found.production or found.production[p].sha256 != e.sha256)
    try:
        records, _ = read_history(prof.log)
    except CorruptState as exc:  # status still tells what is in production
        records = []
        notes.append(exc.message)
    snapshots, _ = op.store.all_snapshots()
    target_snap = default_snapshot(snapshots, found.previous)
    age = None
    if prev.get("deployed"):
        age = (datetime.now(timezone.utc) - parse_time(prev["deployed"])).total_seconds()
    holder = current_holder(prof)
    result = StatusResult(
        profile=prof.name, source=str(prof.source), target=str(prof.target), deployed=found.previous is not None,
        summary="", version=prev.get("version"), deploy_id=prev.get("deploy_id"),
        deployed_at=prev.get("deployed"), age_seconds=round(age, 1) if age is not None else None,
        operation=prev.get("operation"), pending=plan.summary(), drift=drift,
        lock=holder.__dict__ if holder else None, last=records[-1] if records else None,
        rollback_target=target_snap.id if target_snap else None, notes=notes,
    )
    result.summary = report.status_summary(result)
    return result


def _recover_now(op: Operation) -> list[str]:
    """Status recovers a dead operation's leftovers, unless a live one holds the lock."""
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
    prof = load_profile(config, profile)
    op = _operation(prof, TreeSource(prof.source))
    plan = survey(op).plan
    diffs: dict[str, str] = {}
    for entry in plan.added:
        diffs[entry.path] = _unified(None, prof.source / entry.path, entry.path)
    for entry in plan.changed:
        diffs[entry.path] = _unified(prof.target / entry.path, prof.source / entry.path, entry.path)
    for entry in plan.removed:
        diffs[entry.path] = _unified(prof.target / entry.path, None, entry.path)
    return DiffResult(profile=prof.name, plan=plan.summary(), diffs=diffs, notes=op.notes)


MAX_DIFF_BYTES = 1024 * 1024


def _unified(old: Path | None, new: Path | None, rel: str) -> str:
    texts: list[list[str]] = []
    for path in (old, new):
        if path is None:
            texts.append([])
            continue
        if path.is_symlink():
            texts.append([f"-> {os.readlink(path)}\n"])
            continue
        data = path.read_bytes()[: MAX_DIFF_BYTES + 1]
        if len(data) > MAX_DIFF_BYTES or b"\0" in data[:8192]:
            return f"Binary or large file {rel} differs\n"
        try:
            texts.append(data.decode().splitlines(keepends=True))
        except UnicodeDecodeError:
            return f"Binary file {rel} differs\n"
    lines = difflib.unified_diff(texts[0], texts[1], f"production/{rel}" if old else "/dev/null",
                                 f"source/{rel}" if new else "/dev/null")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def history(config: PathLike = None, profile: str | None = None, limit: int = 20) -> HistoryResult:
    prof = load_profile(config, profile)
    records, bad = read_history(prof.log)
    return HistoryResult(log=str(prof.log), records=records[-limit:] if limit > 0 else records, damaged_lines=bad)


def history_stats(config: PathLike = None, profile: str | None = None, period: str = "day") -> StatsResult:
    """Metrics from the history log: per-period counts, success rate, step durations, time to recover."""
    from . import metrics  # statistics and friends load only for `history --stats`

    if period not in ("day", "week", "month"):
        raise ConfigError(f"--period: expected day, week or month, got '{period}'")
    prof = load_profile(config, profile)
    records, bad = read_history(prof.log)
    return StatsResult(log=str(prof.log), stats=metrics.compute(records, period), damaged_lines=bad)


def backups(config: PathLike = None, profile: str | None = None) -> BackupsResult:
    prof = load_profile(config, profile)
    store = store_for(prof)
    snapshots, problems = store.all_snapshots()
    current, _ = read_version(prof.target, prof.version_file)
    target = default_snapshot(snapshots, current)
    protected = protected_ids(snapshots, current)
    rows = [{**s.brief(), "rollback_target": target is not None and s.id == target.id,
             "protected": s.id in protected} for s in reversed(snapshots)]
    return BackupsResult(backup_dir=str(store.root), snapshots=rows,
                         rollback_target=target.id if target else None, problems=problems)


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
