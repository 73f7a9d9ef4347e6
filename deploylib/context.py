"""What one operation is given (`Operation`) and what its first step finds out (`Survey`).

Steps take these and return what they make; nothing else is shared between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Protocol

from .profile import Profile
from .globs import PatternSet
from .journal import Journal, Record
from .layout import stage_path
from .manifest import Entry, HashCache, Manifest, Release, Scan
from .plan import Plan
from .store import Snapshot, Store

EventSink = Callable[[str, dict[str, Any]], None]


class Source(Protocol):
    """Where the new managed files come from: the dev tree (deploy) or a snapshot (rollback)."""

    operation: str

    def desired(self, op: "Operation", previous: dict[str, Any] | None) -> Scan: ...

    def fetch(self, entry: Entry, dest: Path) -> int | None: ...

    def next_version(self) -> str | None: ...

    def next_release(self) -> tuple[str | None, str | None, bool | None]: ...

    def verify_available(self, plan: Plan) -> None: ...

    def version_info(self, op: "Operation", survey: "Survey", snapshot: Snapshot | None) -> dict[str, Any]: ...


def _quiet(kind: str, data: dict[str, Any]) -> None:
    """The event sink when nobody listens."""


def _go_on(point: str, data: dict[str, Any]) -> None:
    """The checkpoint when nobody holds the operation: a local run goes straight on."""


@dataclass
class Operation:
    """The fixed inputs of one deploy or rollback, and the journal record that follows it."""

    profile: Profile
    source: Source
    record: Record
    journal: Journal
    store: Store
    cache: HashCache
    emit: EventSink = _quiet
    wait: float = 0.0
    expected_digest: str | None = None
    adopt: PatternSet = PatternSet()
    overwrite_drift: bool = False  # a deploy may overwrite managed files edited in production
    # Called at "prepared" (validated, before the commit) and "verified" (before the release is recorded);
    # raising there undoes the operation like any failure. A fleet agent waits there for its controller.
    checkpoint: Callable[[str, dict[str, Any]], None] = _go_on
    notes: list[str] = field(default_factory=list)
    kept_by_undo: list[str] = field(default_factory=list)  # files the undo left: changed since the commit

    @property
    def op_id(self) -> str:
        return self.record.op_id

    @property
    def name(self) -> str:
        return self.record.operation

    @cached_property
    def target(self) -> Path:  # cached: per-file loops ask for it ten thousand times
        return self.profile.target

    @cached_property
    def stage(self) -> Path:
        """Derived from the target and the id, never read from the journal (which could name anything)."""
        return stage_path(self.target, self.op_id)

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.emit("note", {"text": text})


@dataclass
class Survey:
    """Production and the source as preflight found them, and the plan between them."""

    previous: dict[str, Any] | None  # VERSION of the release in production
    release: Release  # what that release manages (empty when no record is left)
    desired: Manifest  # the new release's files
    production: Manifest  # production's files at the paths either release manages
    plan: Plan
