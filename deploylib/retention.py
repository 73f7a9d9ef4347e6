"""Which snapshots retention may delete, and the garbage collection of objects none references."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .profile import Profile
from .errors import CorruptState
from .sources import default_snapshot
from .store import Snapshot, Store, select_expired


@dataclass
class PruneReport:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    objects_removed: int = 0
    bytes_freed: int = 0


def protected_ids(snapshots: list[Snapshot], current: dict[str, Any] | None) -> set[str]:
    """Never deleted: the rollback target, and the newest snapshot of the release now in production."""
    protected: set[str] = set()
    if not current:
        return protected
    target = default_snapshot(snapshots, current)
    if target:
        protected.add(target.id)
    if current.get("snapshot_id"):
        protected.add(current["snapshot_id"])
    own = [s for s in snapshots if s.release and s.release == current.get("release")]
    if own:
        protected.add(own[-1].id)
    return protected


def prune(profile: Profile, store: Store, current: dict[str, Any] | None, dry_run: bool = False,
          collect_always: bool = True) -> PruneReport:
    """Delete expired snapshots, then unreferenced objects. After a deploy (`collect_always=False`) only
    the objects of snapshots that just expired can have become garbage: only those are looked at."""
    every, problems = store.all_snapshots()
    if problems:
        # an unreadable snapshot may reference any object: collecting now could destroy a backup
        raise CorruptState(f"{problems[0]}; prune refuses to collect objects until it is repaired or removed")
    snapshots = store.ours(every)  # another target's snapshots are its own profile's to expire
    expired = select_expired(snapshots, profile.retention.keep_last, profile.retention.keep_days,
                             protected_ids(snapshots, current))
    gone = {s.id for s in expired}
    kept = [s for s in every if s.id not in gone]  # every target's: GC keeps what any snapshot references
    if not gone and not collect_always:
        return PruneReport([], [s.id for s in snapshots], 0, 0)  # nothing expired: nothing became garbage
    candidates = None if collect_always else _expired_objects(store, expired)
    try:  # GC must see every object the kept snapshots reference
        if candidates is None:
            wanted = store.objects_of((s.id for s in kept), cache=not dry_run)
        else:
            doomed = store.unreferenced(candidates, (s.id for s in kept), cache=not dry_run)
    except CorruptState as exc:
        raise CorruptState(f"{exc.message}; prune refuses to collect objects until it is repaired") from None
    if not dry_run:
        for snap in expired:
            store.delete(snap.id)
    if candidates is None:
        objects, size = store.collect_garbage(wanted, dry_run=dry_run)
    else:
        objects, size = store.remove_objects(doomed, dry_run=dry_run)
    return PruneReport(sorted(gone), [s.id for s in snapshots if s.id not in gone], objects, size)


def _expired_objects(store: Store, expired: list[Snapshot]) -> set[str] | None:
    """Every object the expired snapshots reference, or None (sweep the whole store) if one cannot be read."""
    try:
        return store.objects_of((s.id for s in expired), cache=False)  # about to go
    except CorruptState:
        return None
