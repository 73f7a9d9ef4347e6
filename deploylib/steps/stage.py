"""Build the new release's files beside production, on its filesystem, and plan their commit.

The stage holds what changes (fresh copies, each checked against the plan) and
the new VERSION; validators read unchanged files where they are, and only a
`command` validator, which needs one directory, gets them copied in as well.
Nothing in production is touched here.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import faults
from ..commit import (RELEASE_DIR, CommitPlan, drop_stage, plan_commit, save_plan, save_previous_version,
                      store_outgoing)
from ..context import Operation, Survey
from ..fsutil import read_regular, remove_tree, sync_filesystem
from ..journal import State
from ..layout import release_path
from ..manifest import Entry, Release, save_release
from ..sources import stampable
from ..version import write_version
from .backup import Backup
from .preflight import SPOOL_DIR

NAME, STATE = "stage", State.STAGING


class ReleaseView:
    """The new release as validators see it: staged files from the stage, the others from production."""

    def __init__(self, release_dir: Path, target: Path, staged: set[str], unchanged: list[Entry],
                 files: list[str], staged_links: dict[str, str] | None = None) -> None:
        self.files = files  # the release's managed files, what validators select from
        self.release_dir = release_dir
        self.target = target
        self.staged = staged
        self.unchanged = unchanged
        self._whole = False
        self._links = {e.path for e in unchanged if e.link is not None}  # managed links: read through, as ever
        self._staged_links = staged_links or {}

    def path(self, rel: str) -> Path:
        return (self.release_dir if rel in self.staged else self.target) / rel

    def read(self, rel: str) -> bytes:
        """A release file's bytes for a validator: a staged one (the stage is the tool's own) as any file; an
        unchanged one where it is in production, never through a link swapped in for it since preflight
        (what it points to is not the release), nor waiting on a FIFO."""
        for _ in range(40):  # a chain of them, followed as the kernel would (ELOOP past 40)
            if rel not in self._staged_links:
                break
            rel = _resolved(rel, self._staged_links[rel])  # the stage holds only what changes: in the release
        if rel in self.staged:
            return read_regular(self.release_dir / rel, follow=True)
        return read_regular(self.target / rel, follow=rel in self._links)

    def directory(self) -> Path:
        """The whole release in one directory (copies, never links: a command must not reach production)."""
        if not self._whole:
            for entry in self.unchanged:
                dest = self.release_dir / entry.path
                dest.parent.mkdir(parents=True, exist_ok=True)
                if entry.link is not None:
                    os.symlink(entry.link, dest)
                else:
                    shutil.copyfile(self.target / entry.path, dest, follow_symlinks=False)
                    os.chmod(dest, stat.S_IMODE(entry.mode))
            self._whole = True
        return self.release_dir


def _resolved(rel: str, link: str) -> str:
    """The release path a staged link at `rel` names (preflight refused any that leaves the tree)."""
    where = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
    if link.startswith("/") or where == ".." or where.startswith("../"):
        raise FileNotFoundError(errno.ENOENT, "a link leaving the release", rel)
    return where


@dataclass
class Staged:
    version_info: dict[str, Any]
    view: ReleaseView
    commit: CommitPlan


def run(op: Operation, survey: Survey, backup: Backup) -> Staged:
    plan = survey.plan
    release_dir = op.stage / RELEASE_DIR
    op.stage.parent.mkdir(parents=True, exist_ok=True)  # a first deploy may need the target's parents
    try:
        os.mkdir(op.stage, 0o700)
    except FileExistsError:  # this operation's preflight made it to spool into: its id is new
        if os.path.islink(op.stage) or not os.path.isdir(op.stage) or getattr(op.source, "spool_dir", None) is None:
            raise
    os.mkdir(release_dir, 0o700)
    incoming = plan.added + plan.changed
    what = "copy" if op.name == "deploy" else "restore"
    op.emit("begin", {"step": NAME, "what": what, "files": len(incoming), "bytes": sum(e.size for e in incoming)})
    hashes = op.cache.tree(op.target)  # staged files keep their inode when committed: their hashes stay known
    for n, entry in enumerate(incoming, 1):
        dest = release_dir / entry.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        stamped = op.source.fetch(entry, dest)
        if entry.link is None:
            st = os.lstat(dest)
            if stamped is not None and st.st_mtime_ns == stamped and stampable(stamped, st.st_ctime_ns):
                # it shows the source's time, far enough before its own last change (the stamping, then the
                # chmod) that a later write cannot leave it as it is: see `stampable`
                hashes.put_own(st, entry.sha256)
            else:
                hashes.put(st, entry.sha256)
        op.emit("file", {"step": NAME, "path": entry.path, "bytes": entry.size})
        faults.point(faults.COPY, n)
    if os.path.lexists(op.stage / SPOOL_DIR):
        remove_tree(op.stage / SPOOL_DIR)  # spooled files the plan did not need (unchanged after all)
    version_info = op.source.version_info(op, survey, backup.snapshot)
    name = op.profile.version_file
    write_version(release_dir, version_info, name)
    kept_version = save_previous_version(op.target, op.stage, name)
    puts = [(e.path, backup.old(e.path)) for e in incoming] + [(name, None)]
    removes = [backup.old(e.path) or e for e in plan.removed]
    takes = _takes(op, backup, release_dir)
    commit, owned = plan_commit(op.target, puts, removes, survey.release.dirs, survey.desired, kept_version,
                                name, takes)
    save_release(release_path(op.profile.state_dir, op.op_id), Release(survey.desired, owned, name))
    sync_filesystem(op.stage)  # nothing the commit publishes may still be only in memory
    save_plan(commit, op.stage)
    op.record.commit = commit.to_json()
    op.journal.write(op.record)  # the plan is on disk before the commit starts
    staged = {e.path for e in incoming} | {name}
    unchanged = [e for p, e in survey.desired.items() if p not in staged]
    links = {e.path: e.link for e in incoming if e.link is not None}
    view = ReleaseView(release_dir, op.target, staged, unchanged, sorted(survey.desired), links)
    return Staged(version_info, view, commit)


def _takes(op: Operation, backup: Backup, release_dir: Path) -> dict[str, list[int]]:
    """The commit's takes: path -> [device, staged file's inode, production file's inode], the identities its
    undo tells apart by. A staged file on another filesystem than production's cannot be swapped with it:
    that outgoing version is copied into the store now, as the backup would have."""
    takes, copied = {}, False
    for path, (device, inode) in backup.takes.items():
        st = os.lstat(release_dir / path)
        if st.st_dev == device:
            takes[path] = [device, st.st_ino, inode]
            continue
        old = backup.old(path)
        assert old is not None
        store_outgoing(op.store, op.target / path, old, op.cache.tree(op.target).get)
        copied = True
    if copied:
        sync_filesystem(op.store.object_dir)
    return takes


def undo(op: Operation) -> None:
    drop_stage(op.stage)
    release_path(op.profile.state_dir, op.op_id).unlink(missing_ok=True)
