"""The commit: publish a staged release into production file by file, and take it back.

dpkg's discipline: every new file is complete (and flushed) in the stage beside
production before it is renamed over its production path, one atomic rename
each; what it replaces is already in the backup store. The plan below is
journaled before the first change, so a process killed at any instant leaves
enough behind for `rollback` to put production back exactly, or for the run to
be finished. Only managed paths appear in a plan: a user's file, or a
directory the tool did not create, is never moved, linked or removed; and a
managed file is replaced or removed only while it holds what the backup
stored (`Commit._as_backed_up`): an edit made since would be in no backup.

Like pip's StashedUninstallPathSet, one object knows what it replaced and how
to put it back; its caller is `try: apply() except: rollback(); raise`.

    removes  managed files the new release drops (with their backup entry)
    rmdirs   directories this tool created that the new release no longer needs
    mkdirs   directories the new files need, parents first ("" is the target itself)
    puts     files the new release adds or changes (with the backup entry of what
             they replace, or None), staged at <stage>/release/<path>; VERSION last
    takes    the puts whose outgoing version becomes its own backup object (large
             files the backup did not copy): [device, staged inode, production's inode]

Applied in that order; undone in reverse. A take swaps the staged file with
production's in one atomic step (renameat2 RENAME_EXCHANGE), then the store
moves the outgoing file, now in the stage, into its objects: the undo tells
"not swapped", "swapped" and "taken" apart by the inodes journaled, checked
against bytes wherever an inode number alone could mislead (`Commit._swapped`).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from . import faults
from .errors import CorruptState, DeployError
from .fsutil import (atomic_write, copy_with_hash, read_state, remove_tree, rename_exchange, rename_noreplace,
                     sha256_file, sha256_regular, stat_identity, sync_filesystem)
from .jsonfile import loads_state
from .layout import VERSION_FILE, plain_name, safe_relpath
from .manifest import Entry
from .store import Store, takeable

RELEASE_DIR = "release"  # <stage>/release: the new release as validators see it
UNDO_DIR = "undo"  # <stage>/undo: restored files on their way back into production
PREVIOUS_VERSION = "VERSION.previous"  # <stage>/VERSION.previous: production's VERSION, byte for byte
PLAN_FILE = "commit.json"  # <stage>/commit.json: the journaled plan again, for when the journal is damaged


@dataclass
class CommitPlan:
    removes: list[Entry] = field(default_factory=list)
    rmdirs: list[tuple[str, int]] = field(default_factory=list)
    mkdirs: list[tuple[str, int]] = field(default_factory=list)
    puts: list[tuple[str, Entry | None]] = field(default_factory=list)
    version_kept: bool = False  # production had a VERSION, kept in the stage for the undo
    version_file: str = VERSION_FILE  # its name (the profile's version_file), put last
    takes: dict[str, list[int]] = field(default_factory=dict)  # path: [device, staged inode, production inode]

    @property
    def size(self) -> int:
        return len(self.removes) + len(self.rmdirs) + len(self.mkdirs) + len(self.puts)

    def to_json(self) -> dict[str, Any]:
        return {"removes": [e.to_json() for e in self.removes], "rmdirs": self.rmdirs, "mkdirs": self.mkdirs,
                "puts": [[p, None if old is None else old.to_json()] for p, old in self.puts],
                "version_kept": self.version_kept, "version_file": self.version_file, "takes": self.takes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CommitPlan":
        """Read back from the journal; ValueError unless every path stays inside the target."""
        plan = cls([Entry.from_json(e) for e in data["removes"]],
                   [(str(p), _mode(m)) for p, m in data["rmdirs"]],
                   [(str(p), _mode(m)) for p, m in data["mkdirs"]],
                   [(str(p), None if old is None else Entry.from_json(old)) for p, old in data["puts"]],
                   bool(data["version_kept"]), str(data.get("version_file", VERSION_FILE)),
                   _takes(data.get("takes", {})))
        if not plain_name(plan.version_file):
            raise ValueError("the version file is not a plain name")
        paths = [p for p, _ in plan.rmdirs + plan.puts] + [p for p, _ in plan.mkdirs if p != ""]
        if not all(map(safe_relpath, paths)):
            raise ValueError("a path leaves the target")
        if any(old is not None and old.path != p for p, old in plan.puts):
            raise ValueError("a backup entry names another path")
        if not set(plan.takes) <= {p for p, old in plan.puts if old is not None}:
            raise ValueError("a take names no put with a backup entry")
        return plan


def _takes(data: Any) -> dict[str, list[int]]:
    """The takes read back from a plan: path -> three non-negative integers (device and inodes)."""
    if not isinstance(data, dict):
        raise ValueError("takes is not an object")
    for ids in data.values():
        if not (isinstance(ids, list) and len(ids) == 3 and
                all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 1 << 64 for i in ids)):
            raise ValueError(f"bad take {str(ids)[:40]}")
    return {str(p): list(ids) for p, ids in data.items()}


def _mode(m: Any) -> int:
    """A directory mode read back from a plan: what os.mkdir/chmod accept, never a float or a huge number."""
    if not isinstance(m, int) or isinstance(m, bool) or not 0 <= m <= 0o7777:
        raise ValueError(f"bad directory mode {str(m)[:40]}")
    return m


def save_plan(plan: CommitPlan, stage: Path) -> None:
    atomic_write(stage / PLAN_FILE, json.dumps(plan.to_json()).encode())


def load_plan(stage: Path) -> CommitPlan | None:
    """The plan kept in a stage, or None when there is none (the stage never got that far)."""
    try:
        data = loads_state(read_state(stage / PLAN_FILE))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CorruptState(f"{stage / PLAN_FILE}: commit plan is damaged ({exc.__class__.__name__}); "
                           "it is kept and nothing was touched; inspect the target") from None
    try:
        return CommitPlan.from_json(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptState(f"{stage / PLAN_FILE}: commit plan is damaged ({str(exc)[:120]}); "
                           "it is kept and nothing was touched; inspect the target") from None


def save_previous_version(target: Path, stage: Path, name: str) -> bool:
    """Keep production's VERSION (damaged or not) in the stage, so an undo puts back exactly its bytes."""
    try:
        st = os.lstat(target / name)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    copy_with_hash(target / name, stage / PREVIOUS_VERSION, mtime_ns=st.st_mtime_ns)  # never through a link
    return True


def plan_commit(target: Path, puts: list[tuple[str, Entry | None]], removes: list[Entry],
                old_dirs: list[str], new_paths: Iterable[str], version_kept: bool,
                version_file: str, takes: dict[str, list[int]] | None = None) -> tuple[CommitPlan, list[str]]:
    """The commit for these puts and removes, and the directories the new release owns.

    A directory is created only where none exists, and removed only if this tool
    created it (`old_dirs`), the new release has nothing below it, and it is empty
    by then: a directory with a user's file in it stays, and becomes the user's.
    """
    below = {p.rpartition("/")[0] for p in new_paths}
    needed = {d for p in below for d in _self_and_parents(p)}
    rmdirs = []
    real: dict[str, bool] = {"": True}
    for d in sorted((d for d in old_dirs if d not in needed), key=lambda d: (-d.count("/"), d)):
        if not in_real_dirs(target, d, real):
            continue  # a parent became a link (or a file): what is below is not ours to remove
        try:
            st = os.lstat(target / d)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            rmdirs.append((d, stat.S_IMODE(st.st_mode)))
    mkdirs: list[tuple[str, int]] = []
    seen: set[str] = set()
    exists = target.is_dir()
    if not exists:
        mkdirs.append(("", 0o755))
    for path, _ in puts:
        for d in reversed(_self_and_parents(path.rpartition("/")[0])):
            if d in seen:
                continue
            seen.add(d)
            if not exists or not os.path.isdir(target / d):
                mkdirs.append((d, 0o755))
    puts = sorted(puts, key=lambda put: (put[0] == version_file, put[0]))
    owned = sorted({d for d in old_dirs if d in needed} | {d for d, _ in mkdirs if d})
    return CommitPlan(sorted(removes), rmdirs, mkdirs, puts, version_kept, version_file, takes or {}), owned


def in_real_dirs(target: Path, rel: str, known: dict[str, bool]) -> bool:
    """Whether every directory above `rel` inside `target` is a real directory, no link: only then does
    an operation on `target/rel` stay inside production (memoised per directory in `known`)."""
    parent = rel.rpartition("/")[0]
    if parent not in known:
        try:
            st = os.lstat(target / parent)
            known[parent] = in_real_dirs(target, parent, known) and stat.S_ISDIR(st.st_mode)
        except OSError:
            known[parent] = False
    return known[parent]


def _self_and_parents(d: str) -> list[str]:
    """'a/b/c' -> ['a/b/c', 'a/b', 'a']; '' -> []."""
    out = []
    while d:
        out.append(d)
        d = d.rpartition("/")[0]
    return out


class Commit:
    """Applies a CommitPlan to production and takes it back, from the plan and the backup store alone."""

    def __init__(self, plan: CommitPlan, target: Path, stage: Path, store: Store,
                 added: dict[str, Entry] | None = None,
                 known: Callable[[os.stat_result], str | None] = lambda st: None) -> None:
        self.plan = plan
        self.known = known  # production's hash cache: whether a file it replaces is the one the backup stored
        self.target = target
        self.release = stage / RELEASE_DIR
        self.undo_dir = stage / UNDO_DIR
        self.stage = stage
        self.store = store
        self.added = added  # what the release put (its record): an undo removes only files that match
        self.kept: list[str] = []  # paths the undo left as they are: changed since the commit put them

    def apply(self, on_change: Callable[[str], None] = lambda path: None) -> None:
        """Publish the stage. Every rename is atomic; the journal makes the sequence recoverable."""
        target, n = self.target, 0
        for entry in self.plan.removes:
            self._still_inside(entry.path)
            self._as_backed_up(entry, removing=True)
            _unlink_file(target / entry.path)
            n += 1
            on_change(entry.path)
            faults.point(faults.COMMIT, n)
        for d, _ in self.plan.rmdirs:
            _rmdir_if_empty(target / d)
        for d, mode in self.plan.mkdirs:
            _mkdir(target / d if d else target, mode)
        for path, old in self.plan.puts:
            self._still_inside(path)
            if old is None and path != self.plan.version_file:
                try:  # preflight found nothing there: whatever stands there now is a user's, made since
                    rename_noreplace(self.release / path, target / path)
                except FileExistsError:
                    raise DeployError(f"{target / path}: appeared in production during the deploy, where the "
                                      "release adds a file; it is not MCP Deploy's to replace (no backup holds "
                                      "it): move it aside, or pass --adopt for it, and deploy again") from None
            elif path in self.plan.takes and old is not None:
                self._swap_and_take(path, old, n + 1)
            else:
                if old is not None:
                    self._as_backed_up(old)
                os.rename(self.release / path, target / path)
            n += 1
            on_change(path)
            faults.point(faults.COMMIT, n)
        sync_filesystem(target)

    def _as_backed_up(self, old: Entry, removing: bool = False) -> None:
        """Right before a managed file is replaced or removed: it still holds what the backup stored. A change
        made in production after the backup (a hand edit, a running server writing its file while validators
        ran) would be in no backup: refused, the file left as it is now (the undo puts back the rest). The hash
        cache vouches for a file this run saw that kept its inode, size and mtime; any other is hashed again.
        A file the release drops may be gone already, or be a directory (which the remove leaves alone)."""
        live = self.target / old.path
        try:
            st = os.lstat(live)
        except FileNotFoundError:
            if removing:
                return
            raise _changed_since_backup(live) from None
        vouched = old.link is None and stat.S_ISREG(st.st_mode) and self.known(st) == old.sha256
        if not (vouched or self._holds(old.path, old)) and not (removing and stat.S_ISDIR(st.st_mode)):
            raise _changed_since_backup(live)

    def _swap_and_take(self, path: str, old: Entry, n: int) -> None:
        """Publish a staged file by swapping it with production's, whose outgoing version the store then
        takes as its backup object. Production's file must still be the one the backup vouched for (same
        inode, size and mtime, one link): else it changed during the deploy, which is refused (the undo puts
        back whatever stood there). Where the swap cannot be made, it is copied into the store first."""
        staged, live = self.release / path, self.target / path
        device, staged_inode, inode = self.plan.takes[path]
        try:
            before = os.lstat(live)
        except FileNotFoundError:
            before = None
        if before is None or (before.st_dev, before.st_ino) != (device, inode) or not stat.S_ISREG(before.st_mode):
            raise _changed_since_backup(live)
        # only the journaled staged file is ever swapped (the undo tells "never swapped" by its inode): one a
        # before_commit hook wrote in its place is put the plain way, as is a file hard-linked or changed since
        # (which the cache no longer vouches for: `_copy_then_rename` then reads it)
        if _identity(staged) != (device, staged_inode) or not takeable(before, old, self.known) or \
                not rename_exchange(staged, live):
            self._copy_then_rename(path, old)
            return
        after = os.lstat(staged)  # what the swap took out of production
        if (after.st_ino, after.st_size, after.st_mtime_ns, after.st_nlink) != \
                (before.st_ino, before.st_size, before.st_mtime_ns, 1):
            raise DeployError(f"{live}: changed in production during the deploy, as it was swapped out; it "
                              "is put back as it was and the deploy is undone: deploy again")
        faults.point(faults.TAKE, n)
        self.store.take(staged, old)

    def _copy_then_rename(self, path: str, old: Entry) -> None:
        """A take that cannot be made: production's file is copied into the store, then replaced as any put,
        once it is shown to hold what the backup names (the cache vouches, or it is read again: a hard link or
        chmod since moved its ctime) and to have stayed as it was during the copy."""
        live = self.target / path
        before = os.lstat(live)
        if self.store.has(old.sha256):
            self._as_backed_up(old)  # nothing to copy: only the cache, or reading it again, tells
        else:
            store_outgoing(self.store, live, old, self.known)  # refused unless what it copies hashes as `old`
        if stat_identity(os.lstat(live)) != stat_identity(before):
            raise _changed_since_backup(live)
        os.rename(self.release / path, live)

    def rollback(self) -> None:
        """Put production back as it was before `apply` (all of it, or however far it got). Idempotent.

        A put whose staged file is still in the stage never happened. One that did is
        reversed: its backup entry is restored (via the stage, then one rename), or
        the added file is removed; a take still swapped is swapped back (`_swapped`
        tells). A put file that no longer holds what the release put (changed since,
        in no backup) stays as it is. Removed files come back only where nothing stands.
        """
        target, n = self.target, 0
        self._check_inside()
        for path, old in reversed(self.plan.puts):
            swapped = self._swapped(path, old)
            if swapped is None:
                continue
            self._still_inside(path)  # checked before the undo began: a link may have appeared since
            if path == self.plan.version_file and self.plan.version_kept:
                self._put_back(self.stage / PREVIOUS_VERSION, path)
            elif swapped:  # production's own file is still in the stage
                assert old is not None  # a take always replaces a backed-up file (`CommitPlan.from_json`)
                self._swap_back(path, old)
            else:  # a file changed since the commit put it (a server writing it while verify ran) is in no
                # backup: it stays as it is now (and is named); where nothing stands, the old one comes back
                ours = self._is_ours(path)
                if not ours and os.path.lexists(target / path) and not (old and self._holds(path, old)):
                    self.kept.append(path)  # (holding the old bytes: restored by an undo that was cut short)
                if old is None:
                    if ours:
                        _unlink_file(target / path)
                else:
                    self._restore(old, replace=ours)
            n += 1
            faults.point(faults.UNDO, n)
        for d, _ in reversed(self.plan.mkdirs):
            _rmdir_if_empty(target / d if d else target)
        for d, mode in reversed(self.plan.rmdirs):
            mode &= 0o3777  # never a set-user-id directory, whatever the plan says
            self._still_inside(d)
            if _mkdir(target / d, mode):
                os.chmod(target / d, mode)  # as it was, not as the umask makes it
        for entry in reversed(self.plan.removes):
            self._still_inside(entry.path)
            if not os.path.lexists(target / entry.path):
                self._restore(entry, replace=False)
        if target.is_dir():
            sync_filesystem(target)

    def _swap_back(self, path: str, old: Entry) -> None:
        """Put the outgoing file back into production, the very inode. Swapped with the staged file when that
        is what stands there (it returns to the stage, where a second undo finds it and skips the path); renamed
        back where nothing stands. Anything else there (the new file changed since the swap put it, a file or
        directory made there since) is in no backup: it stays as it is, and is named, and the outgoing file
        becomes its backup object, as the take would have made it (renamed over, the change was lost)."""
        kept, live = self.release / path, self.target / path
        staged_here = self._holds_staged(path)
        if staged_here and rename_exchange(kept, live):
            return
        if staged_here or self.added is None:  # no record of what the release put: over whatever stands, as
            os.rename(kept, live)  # any restore (`_is_ours`)
            return
        try:
            rename_noreplace(kept, live)
            return
        except FileExistsError:
            pass
        self.kept.append(path)
        self.store.take(kept, old)

    def _holds_staged(self, path: str) -> bool:
        """Whether production's file at `path` is the staged file of this take: its inode, a regular file, and
        the bytes the release record names (an inode number alone may have been freed and given to a file or
        directory made there since)."""
        device, staged, _ = self.plan.takes[path]
        entry = (self.added or {}).get(path)
        try:
            st = os.lstat(self.target / path)
        except FileNotFoundError:
            return False
        return ((st.st_dev, st.st_ino) == (device, staged) and stat.S_ISREG(st.st_mode) and entry is not None
                and st.st_size == entry.size and sha256_file(self.target / path) == entry.sha256)

    def _swapped(self, path: str, old: Entry | None) -> bool | None:
        """How far the put of `path` got: None if it never happened, True if a take's swap left the file it
        took out of production in the stage, False if the put is complete.

        A take is told by inodes, and bytes wherever an inode number alone could mislead (one freed and given
        to a new file; a plan forged): production's outgoing file in the stage, its bytes intact: swapped;
        any other file there while production holds the staged file: swapped with a file that had replaced
        production's; nothing there: taken, unless production holds its outgoing file again (swapped back by
        a rename); else the staged file (or one a before_commit hook put in its place, which the commit never
        swaps) is still in the stage: never happened."""
        take = self.plan.takes.get(path)
        if take is not None and not in_real_dirs(self.release, path, {"": True}):
            raise CorruptState(f"{self.release / path}: a directory above it in the stage is a link or not a "
                               "directory; the undo would act through it, so nothing was touched: inspect the stage")
        here = _identity(self.release / path)
        if take is None:
            return None if here is not None else False
        device, staged, outgoing = take
        live = _identity(self.target / path)
        if here is None:  # taken; or production holds its outgoing file again, bytes and all (swapped back)
            if live == (device, outgoing) and old is not None and sha256_file(self.target / path) == old.sha256:
                return None
            return False
        if here == (device, outgoing) and old is not None and sha256_file(self.release / path) == old.sha256:
            return True
        if here != (device, staged) and self._holds_staged(path):
            return True  # (also the outgoing file written to since, by a process that held it open)
        return None

    def _check_inside(self) -> None:
        """Every path of the plan lies below real directories of production, before anything is touched:
        a plan read back from disk must never act through a link a user (or an attacker) put there."""
        known: dict[str, bool] = {"": True}
        paths = [p for p, _ in self.plan.puts] + [e.path for e in self.plan.removes] + \
            [d for d, _ in self.plan.rmdirs + self.plan.mkdirs if d]
        outside = [p for p in paths if not in_real_dirs(self.target, p, known)]
        if outside:
            raise CorruptState(f"{self.target / outside[0]}: a directory above it is a link or not a directory; "
                               "the undo would act outside production, so nothing was touched: inspect the target")

    def _still_inside(self, path: str) -> None:
        """Right before acting on `path`: no directory above it was replaced by a link meanwhile (a rename
        through it would replace a file outside production, which no backup holds)."""
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            try:
                mode = os.lstat(self.target.joinpath(*parts[:i])).st_mode
            except FileNotFoundError:
                return  # nothing there to act through (a remove then finds nothing; a put fails, undone)
            if stat.S_ISDIR(mode):
                continue
            raise CorruptState(f"{self.target / path}: a directory above it became a link or not a directory "
                               "during the commit or its undo; nothing was written through it: remove the link "
                               "(or move the directory back), then run any command to finish the undo")

    def _is_ours(self, path: str) -> bool:
        """Whether the file at `path` is the one this release put there (else someone else's: it stays)."""
        if self.added is None or path == self.plan.version_file:
            return True
        entry = self.added.get(path)
        return entry is not None and self._holds(path, entry)

    def _holds(self, path: str, entry: Entry) -> bool:
        """Whether production's file at `path` has `entry`'s bytes (or, for a link, its target)."""
        full = self.target / path
        if entry.link is None:
            return sha256_regular(full) == entry.sha256  # never through a link, never waiting on a FIFO
        try:
            return os.readlink(full) == entry.link
        except OSError:
            return False

    def _restore(self, entry: Entry, replace: bool = True) -> None:
        """Put a stored file back: a verified copy from the store, then one rename over the path (or, for
        a removed file coming back or a put file changed since, only where nothing stands: a file made or
        changed there since is someone's)."""
        self.undo_dir.mkdir(parents=True, exist_ok=True)
        temp = self.undo_dir / f"{os.urandom(6).hex()}"
        self.store.restore(entry, temp)
        if replace:
            os.rename(temp, self.target / entry.path)
            return
        try:
            rename_noreplace(temp, self.target / entry.path)
        except FileExistsError:
            os.unlink(temp)  # someone's file stands there now: it stays

    def _put_back(self, kept: Path, path: str) -> None:
        """Put a file kept in the stage back (copied: a second undo finds it again)."""
        self.undo_dir.mkdir(parents=True, exist_ok=True)
        temp = self.undo_dir / f"{os.urandom(6).hex()}"
        shutil.copy2(kept, temp)
        os.rename(temp, self.target / path)


def store_outgoing(store: Store, live: Path, old: Entry, known: Callable[[os.stat_result], str | None]) -> None:
    """Copy production's file into the store as the backup of `old` (a take that cannot be made); refused if
    it no longer holds those bytes."""
    if store.put(live, old, known) != old:
        raise _changed_since_backup(live)


def _changed_since_backup(live: Path) -> DeployError:
    return DeployError(f"{live}: changed in production during the deploy, after its backup; it is left as it is "
                       "now and the deploy is undone: look at the change, then deploy again")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def drop_stage(stage: Path) -> None:
    """Delete an operation's stage (whatever validators or restores left in it)."""
    if os.path.lexists(stage):
        remove_tree(stage)


def _unlink_file(path: Path) -> None:
    """Remove a managed file or link; a directory standing there is not ours to remove."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def _rmdir_if_empty(path: Path) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass  # not empty (a user's file is in it), or already gone: either way it stays as it is


def _mkdir(path: Path, mode: int) -> bool:
    """Create a directory unless one is there; whether this call created it."""
    try:
        os.mkdir(path, mode)
        return True
    except FileExistsError:
        return False
