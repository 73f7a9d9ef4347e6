"""Whole-tree operations on production and its stage: hard-link replicas and late-file carry-over.

Paths are plain strings in the loops here: on a 10,000-file tree pathlib's
object churn costs more than the system calls themselves.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Callable, Iterator

from . import faults
from .fsutil import remove_tree

COARSE_CLOCK_NS = 2_000_000_000  # directories touched this recently are always rescanned (1 s mtime filesystems)


def walk_all(root: str) -> Iterator[tuple[str, os.DirEntry[str], bool]]:
    """Yield (relpath, entry, is_dir) for everything under `root`, parents before children, no link following."""
    stack = [(root, "")]
    while stack:
        directory, rel = stack.pop()
        with os.scandir(directory) as it:
            children = sorted(it, key=lambda d: d.name)
        for child in children:
            childrel = f"{rel}/{child.name}" if rel else child.name
            is_dir = child.is_dir(follow_symlinks=False)
            yield childrel, child, is_dir
            if is_dir:
                stack.append((child.path, childrel))


class Replica:
    """What building a replica learned: directory modes to apply last, and directory mtimes for the late-file carry."""

    def __init__(self) -> None:
        self.modes: list[tuple[str, int]] = []
        self.dir_mtimes: dict[str, int] = {}
        self.taken_ns = time.time_ns()
        self._owner = _owner_fixer()

    def directory(self, rel: str, path: str, st: os.stat_result) -> None:
        """Note a replica directory made for the source directory `st` describes: its owner now, its mode last."""
        self._owner(path, st)
        self.modes.append((path, stat.S_IMODE(st.st_mode)))
        self.dir_mtimes[rel] = st.st_mtime_ns

    def apply_modes(self) -> None:
        for path, mode in reversed(self.modes):  # children first, so a read-only parent is set last
            if os.path.isdir(path) and not os.path.islink(path):  # a directory the new release replaced is not
                os.chmod(path, mode)


def replicate(src: Path, dst: Path, skip: set[str], spare: Path) -> Replica:
    """A hard-link replica of `src` at `dst`: refreshed from the spare tree (the tree the last swap
    replaced, kept for this) when there is one, else built from nothing."""
    try:
        usable = stat.S_ISDIR(os.lstat(spare).st_mode)
    except FileNotFoundError:
        usable = False
    if usable:
        os.rename(spare, dst)
        faults.point("spare:taken")
        return refresh_tree(src, dst, skip)
    return link_tree(src, dst, skip)


def keep_as_spare(old: Path, spare: Path) -> None:
    """Keep the tree a swap replaced as the next stage's starting point, instead of deleting it."""
    if spare.exists() or spare.is_symlink():
        remove_tree(spare)
    os.rename(old, spare)


def link_tree(src: Path, dst: Path, skip: set[str]) -> Replica:
    """Replicate `src` at `dst` with hard links (no data copied), leaving out the paths in `skip`.

    Directories are created writable; `Replica.apply_modes` restores their modes
    once the stage is complete, so read-only directories stay read-only.
    """
    replica = Replica()
    source, dest = str(src), str(dst)
    os.mkdir(dest, 0o700)
    replica.directory("", dest, os.stat(source))
    for rel, entry, is_dir in walk_all(source):
        if rel in skip:
            continue
        target = os.path.join(dest, rel)
        st = entry.stat(follow_symlinks=False)
        if is_dir:
            os.mkdir(target, 0o700)
            replica.directory(rel, target, st)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(entry.path), target)
        else:
            _link_or_copy(entry.path, target)
    return replica


def refresh_tree(src: Path, dst: Path, skip: set[str]) -> Replica:
    """Turn `dst`, an older replica of `src` (the spare tree), into what link_tree(src, dst, skip) builds.

    Reads both trees a directory at a time and touches only what differs: an entry missing, extra, of
    another type, a file that is not the same inode, a symlink with another target. Files are told
    apart by the inode number readdir returns, so only directories are stat'ed; after a deploy that
    changed 1% of the files, that is 1% of the writes of a fresh replica and no 10,000 unlinks later.
    """
    replica = Replica()
    pending = [("", str(src), str(dst))]
    while pending:
        rel, source, dest = pending.pop()
        st, old = os.lstat(source), os.lstat(dest)
        if stat.S_IMODE(old.st_mode) & 0o700 != 0o700:
            os.chmod(dest, 0o700)  # we are about to add and remove entries here
        replica.directory(rel, dest, st)
        same_fs = st.st_dev == old.st_dev  # else inode numbers cannot be compared
        with os.scandir(dest) as it:
            have = {d.name: d for d in it}
        with os.scandir(source) as it:
            children = sorted(it, key=lambda d: d.name)
        for child in children:
            childrel = f"{rel}/{child.name}" if rel else child.name
            if childrel in skip:
                continue
            target = os.path.join(dest, child.name)
            prev = have.pop(child.name, None)
            if child.is_dir(follow_symlinks=False):
                if prev is None or not prev.is_dir(follow_symlinks=False):
                    _remove(target, prev)
                    os.mkdir(target, 0o700)
                pending.append((childrel, child.path, target))
            elif child.is_symlink():
                link = os.readlink(child.path)
                if prev is None or not prev.is_symlink() or os.readlink(target) != link:
                    _remove(target, prev)
                    os.symlink(link, target)
            elif not (prev is not None and same_fs and prev.is_file(follow_symlinks=False)
                      and prev.inode() == child.inode()):
                _remove(target, prev)
                _link_or_copy(child.path, target)
        for prev in have.values():  # not in `src` (or skipped)
            _remove(prev.path, prev)
    return replica


def _remove(path: str, entry: os.DirEntry[str] | None) -> None:
    """Remove the entry at `path` (a directory with everything below it, read-only parts too)."""
    if entry is None:
        return
    if entry.is_dir(follow_symlinks=False):
        remove_tree(Path(path))
    else:
        os.unlink(path)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
            raise
        shutil.copy2(src, dst, follow_symlinks=False)


def _owner_fixer() -> Callable[[str, os.stat_result], None]:
    """As root, new directories take the owner of the ones they replicate; otherwise nothing to do."""
    if os.geteuid() != 0:
        return lambda path, st: None
    return lambda path, st: os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)


def symlinked_parent(root: Path, rel: str) -> str | None:
    """The first parent directory of `rel` under `root` that is a symlink (writing there would leave the tree)."""
    parts = rel.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        if os.path.islink(os.path.join(root, sub)):
            return sub
    return None


def file_parent(root: Path, rel: str) -> str | None:
    """The first parent of `rel` under `root` that exists as something other than a directory."""
    parts = rel.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        sub = os.path.join(root, *parts[:i])
        if os.path.lexists(sub) and not os.path.isdir(sub):
            return "/".join(parts[:i])
    return None


def ensure_parent(root: Path, rel: str) -> Path:
    """Create the missing directories for `root/rel` and return that path; never through a symlink."""
    link = symlinked_parent(root, rel)
    if link is not None:
        raise NotADirectoryError(errno.ENOTDIR, "a parent directory is a symlink; refusing to write through it",
                                 str(root / link))
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def remove_empty_parents(root: Path, rel: str) -> None:
    parent = (root / rel).parent
    while parent != root:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent


def carry_late_files(old: Path, new: Path, is_managed: Callable[[str], bool],
                     replica: Replica | None = None) -> list[str]:
    """Move unmanaged files that exist only in `old` (or were replaced there) into `new`.

    The stage linked every unmanaged file of production; anything a running
    server wrote since then is a different inode in `old`, and would be lost
    with the old tree. Managed files are never moved: the new tree owns them.
    With the `replica` of the staging, only directories whose mtime moved since
    (an entry was added, removed or renamed there) are read again.
    """
    moved: list[str] = []
    if not old.is_dir() or not new.is_dir():
        return moved
    for rel, entry in _candidates(str(old), replica):
        if is_managed(rel):
            continue
        st = entry.stat(follow_symlinks=False)
        dest = os.path.join(new, rel)
        try:
            dst = os.lstat(dest)
        except FileNotFoundError:
            dst = None
        except NotADirectoryError:
            continue
        if dst is not None and (stat.S_ISDIR(dst.st_mode) or (dst.st_ino, dst.st_dev) == (st.st_ino, st.st_dev)):
            continue
        try:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.replace(entry.path, dest)
        except OSError:
            continue  # a path the new tree uses differently (file vs directory): leave it in the old tree
        moved.append(rel)
    return moved


def _candidates(old: str, replica: Replica | None) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Non-directory entries of `old` that may be new: all of them, or those in changed directories."""
    if replica is None:
        for rel, entry, is_dir in walk_all(old):
            if not is_dir:
                yield rel, entry
        return
    for rel, mtime in replica.dir_mtimes.items():
        path = os.path.join(old, rel) if rel else old
        try:
            now = os.stat(path).st_mtime_ns
        except OSError:
            continue
        if now == mtime and replica.taken_ns - mtime > COARSE_CLOCK_NS:
            continue
        with os.scandir(path) as it:
            children = list(it)
        for child in children:
            childrel = f"{rel}/{child.name}" if rel else child.name
            if not child.is_dir(follow_symlinks=False):
                yield childrel, child
            elif childrel not in replica.dir_mtimes:  # a directory created after staging: all of it is new
                for sub, entry, is_dir in walk_all(child.path):
                    if not is_dir:
                        yield f"{childrel}/{sub}", entry
