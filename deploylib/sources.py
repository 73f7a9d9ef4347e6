"""The two things a tree can be built from: the dev tree (deploy) and a snapshot (rollback)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .context import Operation, Survey
from .profile import clip
from .errors import ConfigError, CorruptState, NothingToRollBack, SourceChanged
from .fsutil import copy_with_hash
from .ids import utc_now
from .ignore import git_ignored, use_gitignore
from .layout import is_op_id
from .manifest import RACY_NS, Entry, Scan, link_leaves, manifest_problem, scan
from .naming import hint
from .plan import Plan
from .report import release_label
from .store import Snapshot, Store
from .version import git_state, source_version

if TYPE_CHECKING:
    from .gitref import ExportedRef

SETID = stat.S_ISUID | stat.S_ISGID


class TreeSource:
    """Deploy: the managed files of the development tree."""

    operation = "deploy"
    names_screened = True  # `scan` admits only managed names, never a secret-looking one: not tested twice

    def __init__(self, root: Path) -> None:
        self.root = root
        self.stamps: dict[str, int] = {}  # mtime_ns of each file when it was planned (its size: the entry's)
        self._git: tuple[str | None, bool | None] | None = None  # asked of git once per operation
        self._version: tuple[str | None] | None = None
        self.spool_dir: Path | None = None  # set by a real run's preflight: large files are copied as hashed
        self.spooled: dict[str, tuple[str, str, tuple[int, int], int | None]] = {}  # path: (copy, sha, stamp, mtime)

    def _spool(self, path: str, st: os.stat_result) -> str | None:
        """Hash a large source file by copying it into the stage (the copy the deploy will commit if the
        plan needs it): one read of the file instead of two. None (and no copy left) if it cannot be
        spooled there; the caller then only hashes it."""
        assert self.spool_dir is not None
        dest = str(self.spool_dir / str(len(self.spooled)))
        mtime = st.st_mtime_ns  # stamped if `stampable` once copied: stage checks the copy has it
        try:
            if not self.spool_dir.is_dir():
                if not self.spool_dir.parent.parent.is_dir():
                    return None  # the target's parent does not exist yet: made only by the stage
                self.spool_dir.parent.mkdir(mode=0o700, exist_ok=True)
                self.spool_dir.mkdir(mode=0o700, exist_ok=True)
            sha = copy_with_hash(path, dest, mode=0o600, mtime_ns=mtime, stamp_if=stampable)
        except OSError:
            try:
                os.unlink(dest)
            except OSError:
                pass
            return None
        self.spooled[path[len(str(self.root)) + 1:]] = (dest, sha, (st.st_size, st.st_mtime_ns), mtime)
        return sha

    def desired(self, op: Operation, previous: dict[str, Any] | None) -> Scan:
        hashes = op.cache.tree(self.root)
        hashes.spool = self._spool if self.spool_dir is not None else None
        try:
            found = scan(self.root, op.profile.rules, op.cache, source=True, ignored=self._ignored(op))
        finally:
            hashes.spool = None
        self.stamps = found.stamps
        _strip_setid(op, found)
        self._note_dirty(op)
        return found

    def _ignored(self, op: Operation) -> Callable[[list[str]], set[str]] | None:
        if not use_gitignore(self.root, op.profile.respect_gitignore, op.profile.config_path):
            return None
        return lambda paths: git_ignored(self.root, paths)

    def _note_dirty(self, op: Operation) -> None:
        commit, dirty = self.git()
        if dirty:
            op.note(f"the source has uncommitted changes to tracked files (on {commit[:7] if commit else '?'}): "
                    "they are deployed as they are, and VERSION records git_dirty: true; "
                    "--ref HEAD deploys the last commit only")

    def git(self) -> tuple[str | None, bool | None]:
        """(commit, dirty) of what this deploy ships (as git said when first asked in this operation)."""
        if self._git is None:
            self._git = git_state(self.root)
        return self._git

    def fetch(self, entry: Entry, dest: Path) -> int | None:
        """Copy one file, hashing the bytes written: an edit since planning aborts the deploy; returns the
        source's mtime the copy was to be stamped with (if `stampable` once written: the copy's own mtime
        tells whether it was), None for a link.

        The file must show the size and mtime it had when planned, before and after the copy, and
        the bytes copied must hash as planned. Aborting (not retrying) keeps the promise that
        production gets exactly the plan that was previewed and validated.
        """
        if entry.link is not None:
            os.symlink(entry.link, dest)
            return None
        src = self.root / entry.path
        before = os.stat(src)
        spooled = self.spooled.pop(entry.path, None)
        stamp = (before.st_size, before.st_mtime_ns)
        planned = (entry.size, self.stamps[entry.path])
        if spooled is not None and spooled[1] == entry.sha256 and spooled[2] == stamp == planned:
            # copied (and hashed: the plan's hash is the copy's) while preflight planned: not read again
            os.rename(spooled[0], dest)
            os.chmod(dest, entry.mode)
            return spooled[3]
        # The copy keeps the source's mtime (as `rsync -a` and `cp -p` do) when `stampable`: the hash cache
        # can then trust the hash of this copy next time (stage records it), and any later edit in
        # production stamps the file with a newer time, so it is re-read.
        mtime = before.st_mtime_ns
        sha = copy_with_hash(src, dest, mode=entry.mode, mtime_ns=mtime, stamp_if=stampable)
        after = os.stat(src)
        stamp = (before.st_size, before.st_mtime_ns)
        if sha != entry.sha256 or stamp != (after.st_size, after.st_mtime_ns) or stamp != planned:
            dest.unlink()
            raise SourceChanged(
                f"{self.root / entry.path}: changed while being deployed; "
                "rerun the deploy once edits have settled"
            )
        return mtime

    def next_version(self) -> str | None:
        """The version a deploy now would record (None: it will be the deploy id); read once per operation."""
        if self._version is None:
            self._version = (source_version(self.root),)
        return self._version[0]

    def next_release(self) -> tuple[str | None, str | None, bool | None]:
        """(release id, git commit, dirty) a deploy now would record; the id is made only by the deploy."""
        return (None, *self.git())

    def verify_available(self, plan: Plan) -> None:
        """Source files are checked as they are copied (hash and stat), nothing to do up front."""

    def origin(self) -> str:
        """Where the files came from, as VERSION's deployed_from records it."""
        return str(self.root)

    def mask(self, text: str) -> str:
        """`text` as the user should read it (a ref's export names its files by repository and ref)."""
        return text

    def version_info(self, op: Operation, survey: Survey, snapshot: Snapshot | None) -> dict[str, Any]:
        prev = survey.previous or {}
        commit, dirty = self.git()
        return {
            "version": self.next_version() or op.op_id,
            "deployed": utc_now(),
            "deployed_from": self.origin(),
            "git_commit": commit,
            "git_dirty": dirty,
            "deployed_by": op.profile.deployed_by,
            "operation": "deploy",
            "profile": op.profile.name,
            "deploy_id": op.op_id,
            "previous_id": prev.get("deploy_id"),
            "release": op.op_id,
            "previous_release": prev.get("release"),
            "snapshot_id": snapshot.id if snapshot else None,
            **_file_lists(survey),
        }


class RefSource(TreeSource):
    """Deploy --ref: the committed tree of a git ref, exported into a temporary directory.

    Everything in it is committed, hence tracked, so git ignores none of it and nothing is dirty.
    """

    def __init__(self, exported: ExportedRef) -> None:
        super().__init__(exported.tree)
        self.exported = exported

    def _ignored(self, op: Operation) -> Callable[[list[str]], set[str]] | None:
        return None

    def _note_dirty(self, op: Operation) -> None:
        pass

    def git(self) -> tuple[str | None, bool | None]:
        return self.exported.commit, False

    def next_version(self) -> str | None:
        if self._version is None:
            self._version = (source_version(self.root, git_dir=self.exported.repo, commit=self.exported.commit),)
        return self._version[0]

    def origin(self) -> str:
        return self.exported.origin

    def mask(self, text: str) -> str:
        return self.exported.mask(text)


OWN_NS = 1_000_000_000  # a copy stamped with an mtime this much older than its writing: see `stampable`


def stampable(mtime_ns: int, now_ns: int) -> bool:
    """Whether a copy the tool writes may carry the source's mtime `mtime_ns` at `now_ns` (the moment of
    stamping; for the copy found later, its ctime), with its hash trusted by that mtime.

    Past the racy window, always. Within it, when the time is at least OWN_NS old and has a sub-second
    part: the copy is the tool's own and any later write stamps a time at least as new as `now_ns`
    (a filesystem that stores the sub-second part ticks finer than OWN_NS; one that keeps whole seconds,
    or two, changes the stamp, and the copy is then not trusted: see `stage`). A build that writes a
    large artifact and deploys it at once then need not read the deployed copy again next time."""
    return mtime_ns < now_ns - RACY_NS or (mtime_ns % 1_000_000_000 != 0 and mtime_ns < now_ns - OWN_NS)


def _strip_setid(op: Operation, found: Scan) -> None:
    """The deployed copy belongs to the deployer (root, often), not to the source file's owner: a setuid
    bit kept on it would hand the deployer's rights to whoever runs it. Only allow_setid keeps the bits."""
    allowed = op.profile.rules.setid_allowed
    stripped = [path for path, entry in found.entries.items()
                if entry.link is None and entry.mode & SETID and not allowed.matches(path)]
    for path in stripped:
        entry = found.entries[path]
        found.entries[path] = entry._replace(mode=entry.mode & ~SETID)
    if stripped:
        verb = "deployed" if op.name == "deploy" else "restored"
        op.note(f"{verb} {len(stripped)} file(s) without their setuid/setgid bits: {', '.join(stripped[:5])} "
                "(list them under allow_setid to keep the bits)")


class SnapshotSource:
    """Rollback: the managed files recorded in a snapshot, each verified by hash."""

    operation = "rollback"

    def __init__(self, store: Store, selector: str | None) -> None:
        self.store = store
        self.selector = selector
        self.snapshot: Snapshot | None = None

    def desired(self, op: Operation, previous: dict[str, Any] | None) -> Scan:
        """The snapshot's files, held to what a deploy would ship: no link out of the target (a snapshot
        describing one was not taken by MCP Deploy), no set-id bits unless allow_setid names the file."""
        chosen = find_snapshot(self.store, previous, self.selector)
        self.snapshot = self.store.load(chosen.id)
        for entry in self.snapshot.files.values():
            if entry.link is not None and link_leaves(self.snapshot.files, entry.path, entry.link):
                raise CorruptState(
                    f"{self.store.snapshot_dir / f'{chosen.id}.files.json'}: snapshot {chosen.id} describes "
                    f"{entry.path} as a symlink to {entry.link}, which leads outside the target; MCP Deploy never "
                    "deploys such a link, so it restores none: nothing was touched; roll back to another "
                    f"snapshot (see `{hint('backups')}`)")
        nested = manifest_problem(self.snapshot.files)
        if nested:
            raise CorruptState(
                f"{self.store.snapshot_dir / f'{chosen.id}.files.json'}: snapshot {chosen.id} is not one MCP Deploy "
                f"took ({nested}); nothing was touched; roll back to another snapshot (see `{hint('backups')}`)")
        found = Scan(dict(self.snapshot.files), [])
        _strip_setid(op, found)
        return found

    def verify_available(self, plan: Plan) -> None:
        """Re-hash the objects this rollback will restore (only those: the rest stays as it is)."""
        assert self.snapshot is not None
        problems = self.store.check(plan.added + plan.changed)
        if problems:
            raise CorruptState(
                f"backup {self.snapshot.id} cannot be restored: {len(problems)} object(s) missing or damaged "
                f"({'; '.join(problems[:2])}); production untouched; roll back to another snapshot "
                f"(see `{hint('backups')}`)"
            )

    def fetch(self, entry: Entry, dest: Path) -> int | None:
        self.store.restore(entry, dest)
        return None

    def next_version(self) -> str | None:
        return self.snapshot.version if self.snapshot else None

    def next_release(self) -> tuple[str | None, str | None, bool | None]:
        info = (self.snapshot.version_info if self.snapshot else None) or {}
        return self.snapshot.release if self.snapshot else None, info.get("git_commit"), info.get("git_dirty")

    def version_info(self, op: Operation, survey: Survey, snapshot: Snapshot | None) -> dict[str, Any]:
        snap = self.snapshot
        assert snap is not None
        restored = dict(snap.version_info or {})
        return {
            **restored,
            "version": snap.version or restored.get("version") or "baseline",
            "deployed": utc_now(),
            "deployed_by": op.profile.deployed_by,
            "operation": "rollback",
            "profile": op.profile.name,
            "deploy_id": op.op_id,
            "previous_id": (survey.previous or {}).get("deploy_id"),
            "release": snap.release or f"baseline:{snap.id}",
            "previous_release": restored.get("previous_release"),
            "snapshot_id": snapshot.id if snapshot else None,
            "restored_from": snap.id,
            **_file_lists(survey),
        }


def _file_lists(survey: Survey) -> dict[str, list[str]]:
    plan = survey.plan
    added = [e.path for e in plan.added]
    changed = [e.path for e in plan.changed]
    return {"files_updated": added + changed, "files_added": added, "files_changed": changed,
            "files_removed": [e.path for e in plan.removed]}


def default_snapshot(snapshots: list[Snapshot], previous: dict[str, Any] | None) -> Snapshot | None:
    """The snapshot `rollback` restores by default: the release before the current one.

    That is the newest snapshot holding the current tree's `previous_release`;
    for a first deploy over an existing directory, the baseline taken then.
    """
    if not previous:
        return None
    wanted = previous.get("previous_release")
    if wanted:
        matches = [s for s in snapshots if s.release == wanted]
        return matches[-1] if matches else None
    if previous.get("operation") == "deploy" and previous.get("snapshot_id"):
        matches = [s for s in snapshots if s.id == previous["snapshot_id"]]
        return matches[-1] if matches else None
    return None


def find_snapshot(store: Store, previous: dict[str, Any] | None, selector: str | None) -> Snapshot:
    """Resolve `--to` (a snapshot id, a deploy id, or a version) or the default target, among the snapshots of
    the store's target only: another target's files restored here would mix two deployments."""
    every, _ = store.all_snapshots()
    snapshots = store.ours(every)
    if selector is None:
        snap = default_snapshot(snapshots, previous)
        if snap is None:
            raise NothingToRollBack(
                f"{store.root}: no earlier release to roll back to; "
                f"list snapshots with `{hint('backups')}` and name one to roll back to"
            )
        return snap
    for match in (
        [s for s in snapshots if s.id == selector],
        [s for s in snapshots if s.release == selector],
        [s for s in snapshots if s.version == selector],
    ):
        if match:
            _one_release(selector, match)
            return match[-1]
    foreign = [store.owner_problem(s, every) for s in every if s.id == selector]
    if foreign and foreign[0]:
        raise NothingToRollBack(f"{store.root}: {foreign[0]}; see `{hint('backups')}`")
    if is_op_id(selector) and (store.snapshot_dir / f"{selector}.json").exists():
        store.load(selector)  # a snapshot by that id exists but cannot be read: say why (CorruptState)
    raise NothingToRollBack(
        f"{store.root}: no snapshot matches '{selector}' (tried snapshot id, deploy id, version); "
        f"see `{hint('backups')}`"
    )


def _one_release(selector: str, matches: list[Snapshot]) -> None:
    """A version several releases share (an unbumped pyproject) names none of them: refuse, listing them."""
    newest = {s.release or s.id: s for s in matches}  # snapshots come oldest first: the newest per release wins
    if len(newest) < 2:
        return
    shown = []
    for snap in reversed(newest.values()):
        info = snap.version_info or {}
        label = release_label(None, info.get("git_commit"), snap.release or "the baseline", info.get("deployed"))
        shown.append(f"{label} (snapshot {snap.id})")
    raise ConfigError(f"'{clip(selector)}' is the version of {len(newest)} releases: {'; '.join(shown[:10])}"
                      f"{' ...' if len(shown) > 10 else ''}; roll back to one of them by its release id or "
                      f"snapshot id (see `{hint('backups')}`)")
