"""Plain result objects: `--json` prints them as they are, the text output is rendered from them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OperationResult(Result):
    """The outcome of a deploy or rollback (real or --dry-run)."""

    ok: bool
    operation: str
    profile: str
    target: str
    dry_run: bool
    changed: bool  # did production change
    message: str
    deploy_id: str | None = None
    version: str | None = None
    previous_version: str | None = None
    previous_id: str | None = None
    snapshot_id: str | None = None
    restored_from: str | None = None
    plan: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    release: str | None = None  # the release production holds afterwards (a rollback's: the one restored)
    git_commit: str | None = None  # of that release (a preview: of what would be deployed)
    git_dirty: bool | None = None
    previous_git_commit: str | None = None
    hooks: list[dict[str, Any]] = field(default_factory=list)  # every hook run: point, command, ok, output
    notifications: list[dict[str, Any]] = field(default_factory=list)  # every notification sent, and how it went
    would_refuse: str | None = None  # a dry run: why the real run would refuse this plan (exit 4), if it would


@dataclass
class StatusResult(Result):
    profile: str
    source: str
    target: str
    deployed: bool
    summary: str
    version: str | None = None
    deploy_id: str | None = None
    deployed_at: str | None = None
    age_seconds: float | None = None
    operation: str | None = None
    pending: dict[str, Any] = field(default_factory=dict)
    drift: list[str] = field(default_factory=list)
    lock: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    rollback_target: str | None = None
    notes: list[str] = field(default_factory=list)
    release: str | None = None  # the release in production (after a rollback: the one restored)
    git_commit: str | None = None
    git_dirty: bool | None = None


@dataclass
class DiffResult(Result):
    profile: str
    plan: dict[str, Any]
    diffs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class ReleaseDiffResult(Result):
    """What changed from one release (or snapshot) to another: `diff --release` and `diff --from/--to`."""

    profile: str
    old: dict[str, Any]  # kind (live, snapshot, nothing), release, version, deploy_id, snapshot_id, deployed
    new: dict[str, Any]
    plan: dict[str, Any]  # the files old -> new, in the shape of a deploy plan (added, changed, removed, ...)
    diffs: dict[str, str] = field(default_factory=dict)  # unified diffs of text files
    binary: dict[str, dict[str, int | None]] = field(default_factory=dict)  # other files: old and new size
    notes: list[str] = field(default_factory=list)


@dataclass
class HistoryResult(Result):
    log: str
    records: list[dict[str, Any]]
    damaged_lines: int = 0


@dataclass
class StatsResult(Result):
    log: str
    stats: dict[str, Any]
    damaged_lines: int = 0


@dataclass
class BackupsResult(Result):
    backup_dir: str
    snapshots: list[dict[str, Any]]
    rollback_target: str | None = None
    problems: list[str] = field(default_factory=list)
    other_targets: int = 0  # snapshots in the store that are not this target's (not listed)


@dataclass
class PruneResult(Result):
    dry_run: bool
    removed: list[str]
    kept: list[str]
    objects_removed: int
    bytes_freed: int
