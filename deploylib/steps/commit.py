"""Publish the staged release: the journaled per-file renames of `deploylib.commit`."""

from __future__ import annotations

import os

from ..commit import RELEASE_DIR, Commit, CommitPlan
from ..context import Operation
from ..errors import CorruptState
from ..journal import State
from ..layout import release_path
from ..manifest import Release, load_release
from .stage import Staged

NAME, STATE = "commit", State.COMMITTING


def run(op: Operation, staged: Staged) -> None:
    hashes = op.cache.tree(op.target)
    for path, _ in staged.commit.puts:  # validators and hooks ran since the stage put these hashes
        try:
            hashes.forget_if_touched(os.lstat(op.stage / RELEASE_DIR / path))
        except OSError:
            pass
    commit = Commit(staged.commit, op.target, op.stage, op.store, known=hashes.get)

    def changed(path: str) -> None:
        """Right after each rename: it gave the file a new ctime, and the stage's hash holds under that one
        alone (looked at later, an edit made meanwhile with its mtime put back would be vouched for)."""
        op.emit("file", {"step": NAME, "path": path, "bytes": 0})
        try:
            hashes.renew(os.lstat(op.target / path))
        except OSError:
            pass  # removed, or gone already (a server replacing its file): nothing to keep

    commit.apply(changed)


def undo(op: Operation) -> None:
    if op.record.commit is None:
        return  # the plan is journaled before the first change: without it, nothing changed
    try:
        plan = CommitPlan.from_json(op.record.commit)
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptState(f"{op.journal.path}: the journaled commit plan is damaged ({str(exc)[:120]}); "
                           "it is kept and nothing was touched; inspect the target") from None
    release = load_release(release_path(op.profile.state_dir, op.op_id))
    problem = _disagreement(plan, release, op)
    if problem:
        raise CorruptState(f"{op.journal.path}: the journaled commit plan {problem}; it is kept and nothing "
                           "was touched; inspect the target")
    undo = Commit(plan, op.target, op.stage, op.store, release.files if release else None)
    undo.rollback()
    op.kept_by_undo = undo.kept


def _disagreement(plan: CommitPlan, release: Release | None, op: Operation) -> str | None:
    """How the plan contradicts the records written before it (the backup and the release record), if it
    does: a plan is undone only as far as those records back it, never from its own word alone."""
    backed_up = [old for _, old in plan.puts if old is not None] + plan.removes
    if backed_up:
        if not op.record.snapshot_id:
            return "restores files but names no backup"
        snapshot = op.store.load(op.record.snapshot_id)
        wrong = [e.path for e in backed_up if snapshot.files.get(e.path) != e]
        if wrong:
            return f"restores {wrong[0]} differently from backup {snapshot.id}"
    added = [path for path, old in plan.puts if old is None and path != plan.version_file]
    made = [d for d, _ in plan.mkdirs if d]
    if (added or made) and release is None:
        return "adds files but the release record is missing"
    if release is not None:
        foreign = [p for p in added if p not in release.files] + [d for d in made if d not in release.dirs]
        if foreign:
            return f"names {foreign[0]}, which the release record does not"
    return None
