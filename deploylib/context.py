"""What the steps of one operation share: the profile, the journal record, and what each step found."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Protocol

from .config import Profile
from .journal import Journal, Record
from .lock import DeployLock
from .manifest import Entry, HashCache, Manifest, Scan
from .plan import Plan
from .store import Snapshot, Store
from .trees import Replica

EventSink = Callable[[str, dict[str, Any]], None]


class Source(Protocol):
    """Where the new managed files come from: the dev tree (deploy) or a snapshot (rollback)."""

    operation: str

    def desired(self, ctx: "Context") -> Scan: ...

    def fetch(self, entry: Entry, dest: Path) -> None: ...

    def next_version(self) -> str | None: ...

    def verify_available(self, plan: Plan) -> None: ...

    def version_info(self, ctx: "Context") -> dict[str, Any]: ...


@dataclass
class Context:
    profile: Profile
    source: Source
    record: Record
    journal: Journal
    store: Store
    cache: HashCache
    emit: EventSink = lambda kind, data: None
    wait: float = 0.0
    expected_digest: str | None = None
    # filled in by the steps, in order
    previous: dict[str, Any] | None = None  # VERSION of the production tree we replace
    deployed: Manifest = field(default_factory=dict)  # what the current release deployed
    production: Manifest = field(default_factory=dict)  # production's managed files now
    desired: Manifest = field(default_factory=dict)
    plan: Plan | None = None
    snapshot: Snapshot | None = None
    version_info: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    stop_reason: str | None = None  # set by a step to end the operation early with success
    lock: DeployLock | None = None
    replica: Replica | None = None  # set by the stage: lets the late-file carry read only changed directories
    managed_known: bool = True  # False in a recovery that lost the manifests: then no file is carried
    keep_journal: bool = False  # set when cleanup after a passed verify failed: the next command finishes it

    @property
    def op_id(self) -> str:
        return self.record.op_id

    @cached_property
    def target(self) -> Path:  # cached: per-file loops ask for it ten thousand times
        return Path(self.record.target)

    @property
    def swap_path(self) -> Path:
        return Path(self.record.swap_path)

    @property
    def spare_path(self) -> Path:
        """The tree the last swap replaced, kept beside production so the next stage is O(changed)."""
        return self.target.parent / f".{self.target.name}.deploy-spare"

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.emit("note", {"text": text})

    def is_managed(self, relpath: str) -> bool:
        """Written by this tool in either tree: the current release, the new one, or VERSION.

        Everything else (user files, even ones matching the sync globs) belongs to
        the user and follows them across the swap.
        """
        return relpath == "VERSION" or relpath in self.deployed or relpath in self.desired
