"""Whole-tree operations on production and its stage: hard-link replicas and late-file carry-over."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import Callable, Iterator


def walk_all(root: Path) -> Iterator[tuple[str, os.DirEntry[str], bool]]:
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
                stack.append((Path(child.path), childrel))


def link_tree(src: Path, dst: Path, skip: set[str]) -> list[tuple[Path, int]]:
    """Replicate `src` at `dst` with hard links (no data copied), leaving out the paths in `skip`.

    Directories are created writable; the returned (dir, mode) pairs are applied
    by the caller once the stage is complete, so read-only directories stay read-only.
    """
    dst.mkdir(mode=0o700)
    modes = [(dst, stat.S_IMODE(os.stat(src).st_mode))]
    owner = _owner_fixer()
    owner(dst, os.stat(src))
    for rel, entry, is_dir in walk_all(src):
        if rel in skip:
            continue
        target = dst / rel
        st = entry.stat(follow_symlinks=False)
        if is_dir:
            target.mkdir(mode=0o700)
            owner(target, st)
            modes.append((target, stat.S_IMODE(st.st_mode)))
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(entry.path), target)
        else:
            try:
                os.link(entry.path, target, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                    raise
                shutil.copy2(entry.path, target, follow_symlinks=False)
    return modes


def _owner_fixer() -> Callable[[Path, os.stat_result], None]:
    """As root, new directories take the owner of the ones they replicate; otherwise nothing to do."""
    if os.geteuid() != 0:
        return lambda path, st: None
    return lambda path, st: os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)


def apply_modes(modes: list[tuple[Path, int]]) -> None:
    for path, mode in reversed(modes):  # children first, so a read-only parent is set last
        os.chmod(path, mode)


def symlinked_parent(root: Path, rel: str) -> str | None:
    """The first parent directory of `rel` under `root` that is a symlink (writing there would leave the tree)."""
    parts = rel.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        if (root / sub).is_symlink():
            return sub
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


def carry_late_files(old: Path, new: Path, is_managed: Callable[[str], bool]) -> list[str]:
    """Move unmanaged files that exist only in `old` (or were replaced there) into `new`.

    The stage linked every unmanaged file of production; anything a running
    server wrote since then is a different inode in `old`, and would be lost
    with the old tree. Managed files are never moved: the new tree owns them.
    """
    moved: list[str] = []
    if not old.is_dir() or not new.is_dir():
        return moved
    for rel, entry, is_dir in walk_all(old):
        if is_dir or is_managed(rel):
            continue
        st = entry.stat(follow_symlinks=False)
        dest = new / rel
        try:
            dst = os.lstat(dest)
        except FileNotFoundError:
            dst = None
        except NotADirectoryError:
            continue
        if dst is not None and (stat.S_ISDIR(dst.st_mode) or (dst.st_ino, dst.st_dev) == (st.st_ino, st.st_dev)):
            continue
        try:
            ensure_parent(new, rel)
            os.replace(entry.path, dest)
        except OSError:
            continue  # a path the new tree uses differently (file vs directory): leave it in the old tree
        moved.append(rel)
    return moved
