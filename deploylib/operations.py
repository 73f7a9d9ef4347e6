"""The one API every entry point (invoke tasks, console script, MCP server) calls.

Each function loads the profile, runs the pipeline or a read-only survey, and
returns a result object. Failures raise `DeployError` subclasses.
"""

from __future__ import annotations

import difflib
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import pipeline
from .config import Profile, load_profile
from .context import Context, EventSink, Source
from .errors import ConfigError, LockHeld
from .history import read as read_history
from .ids import new_id, parse_time
from .journal import Journal, Record, State
from .lock import DeployLock, current_holder
from .manifest import HashCache
from .results import (BackupsResult, DiffResult, HistoryResult, OperationResult, PruneResult,
                      StatsResult, StatusResult)
from .report import files
from .retention import protected_ids
from .retention import prune as apply_retention
from .sources import SnapshotSource, TreeSource, default_snapshot
from .steps.preflight import survey
from .store import Store
from .version import read_version

PathLike = str | os.PathLike[str] | None


def _context(profile: Profile, source: Source, *, wait: float = 0.0, digest: str | None = None,
             on_event: EventSink | None = None) -> Context:
    prefix = "d" if source.operation == "deploy" else "r"
    op_id = new_id(prefix)
    target = profile.target
    record = Record(
        op_id=op_id, operation=source.operation, state=State.IDLE.value, target=str(target),
        swap_path=str(target.parent / f".{target.name}.deploy-{op_id}"), backup_dir=str(profile.backup_dir),
        log=str(profile.log), target_existed=target.exists(),
    )
    return Context(
        profile=profile, source=source, record=record, journal=Journal(profile.state_dir),
        store=Store(profile.backup_dir), cache=HashCache(profile.state_dir / "hashcache.json", [profile.source, target]),
        emit=on_event or (lambda kind, data: None), wait=wait, expected_digest=digest,
    )


def _operation(ctx: Context, dry_run: bool) -> OperationResult:
    if dry_run:
        if ctx.journal.exists():
            ctx.note("an interrupted operation is pending recovery; the next real run recovers it first")
        survey(ctx)
    else:
        pipeline.run(ctx)
    plan = ctx.plan
    assert plan is not None
    info, prev = ctx.version_info, ctx.previous or {}
    changed = not dry_run and not ctx.stop_reason
    snapshot = getattr(ctx.source, "snapshot", None)  # what a rollback restores (also in a dry run)
    if plan.empty:
        message = ctx.stop_reason or f"nothing to {'deploy' if ctx.record.operation == 'deploy' else 'roll back'}: production already matches"
    elif dry_run:
        message = f"{files(plan.size)} would change (dry run, nothing written); plan {plan.digest}"
    else:
        verb = "deployed" if ctx.record.operation == "deploy" else "rolled back to"
        message = f"{verb} {info.get('version')} ({files(plan.size)}); {ctx.op_id}"
    return OperationResult(
        ok=True, operation=ctx.record.operation, profile=ctx.profile.name, target=str(ctx.target),
        dry_run=dry_run, changed=changed, message=message,
        deploy_id=ctx.op_id if changed else None,
        version=info.get("version") if changed else (ctx.source.next_version() if dry_run else None),
        previous_version=prev.get("version"), previous_id=prev.get("deploy_id"),
        snapshot_id=ctx.snapshot.id if ctx.snapshot else None,
        restored_from=snapshot.id if snapshot else None,
        plan=plan.summary(), checks=ctx.checks, notes=ctx.notes, timings=ctx.timings,
    )


def deploy(config: PathLike = None, profile: str | None = None, *, dry_run: bool = False,
           plan_digest: str | None = None, wait: float = 0.0, on_event: EventSink | None = None) -> OperationResult:
    """Deploy the source tree into production (or, with dry_run, only plan it)."""
    prof = load_profile(config, profile)
    ctx = _context(prof, TreeSource(prof.source), wait=wait, digest=plan_digest, on_event=on_event)
    return _operation(ctx, dry_run)


def rollback(config: PathLike = None, profile: str | None = None, *, to: str | None = None,
             dry_run: bool = False, wait: float = 0.0, on_event: EventSink | None = None) -> OperationResult:
    """Restore production's managed files from a snapshot (default: the release before the current one)."""
    prof = load_profile(config, profile)
    ctx = _context(prof, SnapshotSource(Store(prof.backup_dir), to), wait=wait, on_event=on_event)
    return _operation(ctx, dry_run)


def status(config: PathLike = None, profile: str | None = None) -> StatusResult:
    """What is in production, what is pending, what drifted, who holds the lock."""
    prof = load_profile(config, profile)
    ctx = _context(prof, TreeSource(prof.source))
    notes: list[str] = []
    if ctx.journal.exists():
        notes += _recover_now(ctx)
    survey(ctx)
    notes += ctx.notes
    ctx.cache.save()
    plan, prev = ctx.plan, ctx.previous or {}
    assert plan is not None
    drift = sorted(p for p, e in ctx.deployed.items()
                   if p not in ctx.production or ctx.production[p].sha256 != e.sha256)
    holder = current_holder(prof.state_dir)
    records, _ = read_history(prof.log)
    snapshots, _ = ctx.store.all_snapshots()
    target_snap = default_snapshot(snapshots, ctx.previous)
    age = None
    if prev.get("deployed"):
        age = (datetime.now(timezone.utc) - parse_time(prev["deployed"])).total_seconds()
    pending = plan.size
    if ctx.previous:
        shown = str(prev.get("version"))
        shown = f"v{shown}" if shown[:1].isdigit() else shown
        summary = (f"Production {shown} ({_age(age)} old). "
                   f"{files(pending)} pending deployment.")
    else:
        summary = f"Nothing deployed yet to {prof.target}. {files(pending)} pending deployment."
    if drift:
        summary += f" {files(len(drift))} changed in production since the deploy."
    return StatusResult(
        profile=prof.name, source=str(prof.source), target=str(prof.target), deployed=ctx.previous is not None,
        summary=summary, version=prev.get("version"), deploy_id=prev.get("deploy_id"),
        deployed_at=prev.get("deployed"), age_seconds=round(age, 1) if age is not None else None,
        operation=prev.get("operation"), pending=plan.summary(), drift=drift,
        lock=holder.__dict__ if holder else None, last=records[-1] if records else None,
        rollback_target=target_snap.id if target_snap else None, notes=notes,
    )


def _recover_now(ctx: Context) -> list[str]:
    """Status recovers a dead operation's leftovers, unless a live one holds the lock."""
    lock = DeployLock(ctx.profile.state_dir, "recovery")
    try:
        lock.acquire()
    except LockHeld:
        return ["an operation is in progress (see lock)"]
    try:
        pipeline.recover(ctx)
        return list(ctx.notes)
    finally:
        ctx.notes.clear()
        lock.release()


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "unknown age"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{int(seconds)} seconds"


def diff(config: PathLike = None, profile: str | None = None) -> DiffResult:
    """The pending changes, with unified diffs for text files."""
    prof = load_profile(config, profile)
    ctx = _context(prof, TreeSource(prof.source))
    survey(ctx)
    plan = ctx.plan
    assert plan is not None
    diffs: dict[str, str] = {}
    for entry in plan.added:
        diffs[entry.path] = _unified(None, prof.source / entry.path, entry.path)
    for entry in plan.changed:
        diffs[entry.path] = _unified(prof.target / entry.path, prof.source / entry.path, entry.path)
    for entry in plan.removed:
        diffs[entry.path] = _unified(prof.target / entry.path, None, entry.path)
    return DiffResult(profile=prof.name, plan=plan.summary(), diffs=diffs, notes=ctx.notes)


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
    store = Store(prof.backup_dir)
    snapshots, problems = store.all_snapshots()
    current, _ = read_version(prof.target)
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
    store = Store(prof.backup_dir)
    current, _ = read_version(prof.target)
    if dry_run:
        report = apply_retention(prof, store, current, dry_run=True)
    else:
        with DeployLock(prof.state_dir, "prune", wait=wait):
            report = apply_retention(prof, store, current)
    return PruneResult(dry_run=dry_run, removed=report.removed, kept=report.kept,
                       objects_removed=report.objects_removed, bytes_freed=report.bytes_freed)
