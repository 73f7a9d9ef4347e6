"""What a release held, and what changed between two: `diff --release ID` and `diff --from A --to B`.

A snapshot holds the managed files production had before an operation (its
`release` names the deploy they came from), so the content of release X is
production itself while X is live, else the newest snapshot of X. Its
predecessor is what its deploy backed up (exactly what it replaced), else the
release its VERSION names as `previous_release`: the one `rollback` restores.
Everything here only reads: production, the store and the state dir.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .profile import Profile
from .errors import CorruptState, ReleaseNotKept
from .history import read as read_history
from .layout import is_op_id, release_path
from .manifest import Entry, HashCache, Manifest, load_release, scan_paths
from .naming import command, hint
from .plan import Plan, diff
from .store import Snapshot, Store
from .textdiff import Side, unified
from .version import read_version

LIVE = "live"


@dataclass
class Content:
    """One side of a comparison: a release's managed files, and where their bytes are."""

    kind: str  # "live", "snapshot" or "nothing" (before the first deploy)
    files: Manifest
    info: dict[str, Any] | None  # the VERSION of that tree: names its predecessor
    snapshot: Snapshot | None = None
    root: Path | None = None  # production, for the live release; else the bytes are store objects

    @property
    def release(self) -> str | None:
        return self.snapshot.release if self.snapshot else (self.info or {}).get("release")

    @property
    def label(self) -> str:
        """How diff headers name this side: the release id, else the snapshot id; 'live' for production."""
        if self.kind != "snapshot":
            return self.kind
        assert self.snapshot is not None
        return self.snapshot.release or self.snapshot.id

    def describe(self) -> dict[str, Any]:
        info = self.info or {}
        return {"kind": self.kind, "release": self.release,
                "version": self.snapshot.version if self.snapshot else info.get("version"),
                "deploy_id": info.get("deploy_id"), "snapshot_id": self.snapshot.id if self.snapshot else None,
                "deployed": info.get("deployed")}

    def side(self, store: Store, entry: Entry | None, label: str) -> Side:
        if entry is None:
            return Side(label, None)
        if self.root is not None:
            return Side(label, self.root / entry.path)
        return Side(label, None if entry.link else store.object_path(entry.sha256), entry.link)


NOTHING = Content("nothing", {}, None)


@dataclass
class Comparison:
    plan: Plan  # old -> new, in a deploy plan's shape: added, changed, removed, unchanged
    diffs: dict[str, str] = field(default_factory=dict)  # unified diffs of text files
    binary: dict[str, dict[str, int | None]] = field(default_factory=dict)  # path -> old and new size


class Releases:
    """The releases whose files are still known: the live one in production, and every snapshot's."""

    def __init__(self, profile: Profile, store: Store, cache: HashCache) -> None:
        self.profile, self.store, self.cache = profile, store, cache
        self.live, problem = read_version(profile.target, profile.version_file)
        self.notes = [problem] if problem else []
        self.every, problems = store.all_snapshots()
        self.snapshots = store.ours(self.every)  # another target's releases are not this one's to compare
        self.notes += problems

    def find(self, selector: str) -> Content:
        """`live`, a snapshot id, a deploy id or a version (the newest match), as `rollback --to` takes."""
        live = self.live or {}
        if selector == LIVE:
            return self._live()
        if any(s.id == selector for s in self.snapshots):
            return self._snapshot(selector)
        if selector in (live.get("deploy_id"), live.get("release")):
            return self._live()
        found = self._of_release(selector)
        if found is not None:
            return found
        if selector == live.get("version"):
            return self._live()
        versions = [s for s in self.snapshots if s.version == selector]
        if versions:
            return self._snapshot(versions[-1].id)
        foreign = [self.store.owner_problem(s, self.every) for s in self.every if s.id == selector]
        if foreign and foreign[0]:
            raise ReleaseNotKept(f"{self.store.root}: {foreign[0]}; see `{hint('backups')}`")
        if is_op_id(selector) and (self.store.snapshot_dir / f"{selector}.json").exists():
            self.store.load(selector)  # it exists but cannot be read: say why (CorruptState)
        if self._in_history(selector):
            raise ReleaseNotKept(
                f"{self.store.root}: '{selector}' is in the history, but its files are no longer kept "
                f"(retention removed its backup); compare releases that `{hint('backups')}` lists, "
                f"or keep more with retention in {self.profile.config_path}")
        raise ReleaseNotKept(f"{self.store.root}: no release or snapshot matches '{selector}' (tried {LIVE}, "
                             f"snapshot id, deploy id, version); see `{hint('backups')}` and "
                             f"`{command('history')}`")

    def before(self, content: Content) -> Content:
        """The release `content` replaced: the one a rollback from it restores (NOTHING for a first deploy).

        A deploy's own backup holds exactly what it replaced; a release made by a rollback (or whose
        backup is gone) is compared with the newest kept files of the release its VERSION names before it.
        """
        info = content.info or {}
        own = info.get("snapshot_id") if info.get("operation") == "deploy" else None
        if own and any(s.id == own for s in self.snapshots):
            return self._snapshot(own)
        previous = info.get("previous_release")
        if previous:
            found = self._of_release(previous)
            if found is None:
                raise ReleaseNotKept(
                    f"{self.store.root}: the release before {content.label}, {previous}, is no longer kept "
                    f"(retention removed its backup); compare two kept releases with --from and --to "
                    f"(see `{hint('backups')}`)")
            return found
        if own:  # a first deploy over files already there, whose backup of them is gone
            raise ReleaseNotKept(f"{self.store.root}: the files {content.label} replaced (snapshot {own}) "
                                 f"are no longer kept; see `{hint('backups')}`")
        return NOTHING

    def compare(self, old: Content, new: Content) -> Comparison:
        """What changed from `old` to `new`: the file lists, and unified diffs of text files."""
        plan = diff(new.files, old.files, old.files)
        self._check_objects(old, plan.changed + plan.removed)
        self._check_objects(new, plan.added + plan.changed)
        labels = (old.label, new.label)
        if labels[0] == labels[1]:  # e.g. two snapshots of one release
            labels = (old.snapshot.id if old.snapshot else old.label, new.snapshot.id if new.snapshot else new.label)
        result = Comparison(plan)
        for entry in plan.added + plan.changed + plan.removed:
            rel = entry.path
            before, after = old.files.get(rel), new.files.get(rel)
            text = unified(old.side(self.store, before, labels[0]), new.side(self.store, after, labels[1]), rel)
            if text is None:
                result.binary[rel] = {"old": before.size if before else None, "new": after.size if after else None}
            else:
                result.diffs[rel] = text
        return result

    def _live(self) -> Content:
        live = self.live
        if live is None:
            raise ReleaseNotKept(f"{self.profile.target}: nothing is deployed there, so there is no live release "
                                 f"to compare; see `{hint('backups')}` for the snapshots kept")
        deploy_id = live.get("deploy_id")
        record = load_release(release_path(self.profile.state_dir, str(deploy_id))) if is_op_id(deploy_id) else None
        if record is None:
            raise ReleaseNotKept(f"{self.profile.state_dir}: no record of the files the live release {deploy_id} "
                                 "deployed, so its files cannot be told from yours; compare snapshots instead "
                                 f"(see `{hint('backups')}`)")
        files = scan_paths(self.profile.target, record.files, self.cache)
        return Content(LIVE, files, live, root=self.profile.target)

    def _snapshot(self, snapshot_id: str) -> Content:
        snap = self.store.load(snapshot_id)
        return Content("snapshot", snap.files, snap.version_info, snapshot=snap)

    def _of_release(self, release: str) -> Content | None:
        """Release `release`'s files: production while it is live, else its newest snapshot."""
        if (self.live or {}).get("release") == release:
            return self._live()
        matches = [s for s in self.snapshots
                   if s.release == release or (s.version_info or {}).get("deploy_id") == release]
        return self._snapshot(matches[-1].id) if matches else None

    def _in_history(self, selector: str) -> bool:
        try:
            records, _ = read_history(self.profile.log)
        except CorruptState:
            return False
        return any(selector in (r.get("id"), r.get("version"), r.get("snapshot_id")) for r in records if r.get("ok"))

    def _check_objects(self, content: Content, entries: list[Entry]) -> None:
        """Re-hash the store objects about to be shown: a damaged backup is reported, never diffed."""
        if content.snapshot is None:
            return
        wanted = [content.files[e.path] for e in entries]
        problems = self.store.check(wanted)
        if problems:
            raise CorruptState(f"backup {content.snapshot.id} is damaged: {'; '.join(problems[:2])}; "
                               f"compare other snapshots (see `{hint('backups')}`)")
