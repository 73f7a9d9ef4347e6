"""Survey production and the source, plan the change, and refuse early if it cannot be done safely.

Every refusal here happens before anything is written: the user's files, a
directory that is not ours, another filesystem, too little space.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

from ..context import Operation, Survey
from ..errors import PlanMismatch, PreflightFailed
from ..commit import drop_stage
from ..fsutil import nearest_existing
from ..journal import State
from ..layout import is_op_id, release_path, releases_dir
from ..manifest import Release, load_release, scan_paths, shared, special_kind
from ..naming import hint
from ..plan import Plan, diff, drifted
from ..profile import clip
from ..secrets import scan_file
from ..version import read_version

NAME, STATE = "preflight", State.CHECKING
SPACE_MARGIN = 1.10  # 10% over the estimate ...
SPACE_SLACK = 8 * 1024 * 1024  # ... plus 8 MiB for directories, VERSION and metadata
SHOWN = 5  # paths named in one message
SPOOL_DIR = "spool"  # in the stage: large source files copied while preflight hashed them


def survey(op: Operation) -> Survey:
    """What is in production, what the release there manages, and the plan; changes nothing."""
    previous, problem = read_version(op.target, op.profile.version_file)
    if problem:
        op.note(problem)
    found = _live_release(op, previous)
    if found is None and (previous or problem):
        op.note("no record of the files the current release deployed: files it deployed count as yours "
                "(a deploy that would overwrite one refuses; files dropped from the source stay)")
    release = found or Release({})
    op.cache.on_hash = lambda path, size: op.emit("file", {"step": "hash", "path": path, "bytes": size})
    wanted = op.source.desired(op, previous)
    release.files = shared(release.files, wanted.entries)  # before production's: one manifest in full at a time
    managed = dict.fromkeys([*release.files, *wanted.entries])  # in their (sorted) order: quick to sort again
    production = shared(scan_paths(op.target, managed, op.cache), wanted.entries)
    plan = diff(wanted.entries, production, release.files)  # its keys: no set of 100,000 paths beside it
    plan.withheld = wanted.withheld
    plan.drift = drifted(release.files, production)
    op.source.verify_available(plan)
    if wanted.withheld:
        op.note(f"withheld {len(wanted.withheld)} secret-looking file(s) from the sync set: "
                f"{', '.join(wanted.withheld[:SHOWN])} (lift with unsafe_allow_secrets only if you must)")
    if wanted.skipped:
        more = f", and {len(wanted.skipped) - SHOWN} more" if len(wanted.skipped) > SHOWN else ""
        op.note(f"skipped {len(wanted.skipped)} file(s) that are not regular files or symlinks: "
                f"{', '.join(f'{path} ({kind})' for path, kind in wanted.skipped[:SHOWN])}{more}")
    return Survey(previous, release, wanted.entries, production, plan)


def _live_release(op: Operation, previous: dict[str, Any] | None) -> Release | None:
    """The record of what production's release manages: the one its VERSION names, else the only one kept
    (a damaged VERSION must not turn every deployed file into a stranger's)."""
    records = releases_dir(op.profile.state_dir)
    if previous is not None:
        deploy_id = previous["deploy_id"]
        return load_release(release_path(op.profile.state_dir, deploy_id)) if is_op_id(deploy_id) else None
    kept = sorted(p for p in records.glob("*.json") if is_op_id(p.stem)) if records.is_dir() else []
    return load_release(kept[0]) if len(kept) == 1 else None


def run(op: Operation) -> Survey:
    if hasattr(op.source, "spool_dir"):
        op.source.spool_dir = op.stage / SPOOL_DIR
    try:
        found = _checked(op)
    except BaseException:
        drop_stage(op.stage)  # the spool, if any: preflight leaves nothing behind
        raise
    if found.plan.empty:
        drop_stage(op.stage)
    return found


def _checked(op: Operation) -> Survey:
    found = survey(op)
    if op.expected_digest is not None and found.plan.digest != op.expected_digest:
        preview, again = ("preview", "deploy") if op.name == "deploy" else ("preview-rollback", "roll back with")
        raise PlanMismatch(
            f"{op.target}: plan changed since it was previewed (expected {clip(op.expected_digest, 64)}, "
            f"now {found.plan.digest}); preview again ({hint(preview)}) and {again} the new digest",
            expected=op.expected_digest, found=found.plan.digest)
    refuse_if_unsafe(op, found)
    return found


def refuse_if_unsafe(op: Operation, found: Survey) -> None:
    """Every reason to refuse this plan (PreflightFailed); reads, never writes: a dry run asks it too.
    An empty plan changes nothing, so there is nothing to refuse."""
    if found.plan.empty:
        return
    check_version_file(op, found)
    if not getattr(op.source, "checked_upstream", False):  # a fleet's controller scanned these bytes already
        check_no_secrets(op, found)
    check_no_user_files(op, found)
    check_paths(op, found)
    check_drift(op, found)  # after the paths: a linked directory is the cause, not its files' absence
    check_no_special_files(op, found)
    check_space(op, found)


def undo(op: Operation) -> None:
    """Preflight changes nothing in production; it may have spooled copies into the stage."""
    drop_stage(op.stage)


def check_version_file(op: Operation, found: Survey) -> None:
    """The release's own file would be overwritten by the VERSION that records it: never silently."""
    name = op.profile.version_file
    if name in found.desired:
        raise PreflightFailed(f"{op.profile.source / name}: the release has a file of the name MCP Deploy gives "
                              f"its version file (version_file: {name}); exclude or rename it, or set "
                              f"version_file to another name in {op.profile.config_path}")


def check_version_file_is_ours(op: Operation, found: Survey) -> None:
    """The version file is overwritten by every operation and kept only for the undo, never backed up:
    a file of that name MCP Deploy did not write is never adopted, whatever --adopt says."""
    name = op.profile.version_file
    path = op.target / name
    if not os.path.lexists(path):
        return
    recorded = bool(found.release.files) and found.release.version_file == name
    regular = stat.S_ISREG(os.lstat(path).st_mode)
    if regular and (found.previous is not None or recorded):
        return  # ours: a VERSION this tool wrote (damaged or not, the record says so)
    raise PreflightFailed(f"{path}: production has a {'file' if regular else 'directory or link'} of the name "
                          f"MCP Deploy writes its version file to (version_file: {name}), and MCP Deploy did "
                          "not write it; move it away, or set version_file to another name")


def check_no_secrets(op: Operation, found: Survey) -> None:
    """No secret by name among the files this operation writes into production, and none inside a file a
    deploy brings there (private-key blocks, well-known token formats). A rollback restores what was
    already live, so its contents are not scanned again; their names are, against today's rules."""
    written = (*found.plan.added, *found.plan.changed)
    screened = getattr(op.source, "names_screened", False)  # its scan admitted no secret-looking name
    leaked = [] if screened else [e.path for e in written if op.profile.rules.is_secret(e.path)]
    if leaked:
        raise PreflightFailed(f"{op.profile.source}: secret-looking files in the sync set: "
                              f"{', '.join(leaked[:SHOWN])}")
    if op.name != "deploy":
        return
    allowed = op.profile.rules.secrets_allowed
    findings = [finding
                for entry in written
                if entry.link is None and not allowed.matches(entry.path)
                for finding in scan_file(op.profile.source / entry.path, entry.path)]
    if findings:
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        raise PreflightFailed(f"{op.profile.source}/{findings[0].describe()}{more}; remove it, or list the file "
                              "under unsafe_allow_secrets if it must ship")


def overwritten_drift(plan: Plan) -> list[str]:
    """Hand-edited managed files this plan would overwrite, remove or recreate."""
    touched = {e.path for e in plan.added + plan.changed + plan.removed}
    return [path for path in plan.drift if path in touched]


def check_drift(op: Operation, found: Survey) -> None:
    """A hand edit in production is never overwritten silently: --overwrite-drift says it may be
    (the backup keeps the edited files). A rollback restores a snapshot on purpose: it only notes them."""
    edited = overwritten_drift(found.plan)
    if not edited:
        return
    if op.name != "deploy" or op.overwrite_drift:
        op.note(f"overwriting {len(edited)} file(s) edited in production: {', '.join(edited[:SHOWN])}; "
                "the backup of this operation keeps the edited versions")
        return
    raise PreflightFailed(
        f"{op.target}: {len(edited)} managed file(s) were edited in production since they were deployed: "
        f"{', '.join(edited[:SHOWN])}; the deploy would overwrite them: copy the edits into the source, or pass "
        f"--overwrite-drift (the backup keeps the edited files; see `{hint('backups')}`)")


def check_no_user_files(op: Operation, found: Survey) -> None:
    """Managed means deployed by this tool, never 'matches a glob': a file in production at a path the new
    release uses, that the release there did not deploy, is the user's. Only --adopt hands it over."""
    foreign = [p for p in found.desired if p in found.production and p not in found.release.files]
    if op.name == "deploy":
        foreign = [p for p in foreign if not op.adopt.matches(p)]
    check_version_file_is_ours(op, found)
    if not foreign:
        return
    if op.name == "rollback":
        raise PreflightFailed(
            f"{op.target}: the rollback would overwrite {len(foreign)} file(s) that MCP Deploy did not deploy: "
            f"{', '.join(foreign[:SHOWN])}; a rollback adopts nothing: move them away first")
    lost = " (no record of what the release in production deployed was found)" \
        if found.previous is not None and not found.release.files else ""
    raise PreflightFailed(
        f"{op.target}: the deploy would overwrite {len(foreign)} file(s) that MCP Deploy did not deploy{lost}: "
        f"{', '.join(foreign[:SHOWN])}; they may be yours: move them away, or pass --adopt PATH "
        "(a glob; repeatable; --adopt '**' for all) to let the deploy take them over (the backup keeps them)")


def check_paths(op: Operation, found: Survey) -> None:
    """Every directory the commit writes in must be a real directory of production, writable, and on the
    stage's filesystem: else a rename would land outside the tree, fail half-way, or move a user's mount."""
    plan, target = found.plan, op.target
    removed = {e.path for e in plan.removed}
    stage_dev = os.stat(nearest_existing(target.parent)).st_dev
    seen: dict[str, str | None] = {}
    for entry in plan.added + plan.changed + plan.removed:
        blocker = _parent_problem(target, entry.path, removed, seen)
        if blocker:
            raise PreflightFailed(blocker)
    for entry in plan.added + plan.changed:
        _check_not_a_directory(target, entry.path, found)
    parents = {e.path.rpartition("/")[0] for e in plan.added + plan.changed + plan.removed}  # one per directory
    writable_dirs = sorted({nearest_existing(target / parent) for parent in parents}
                           | {_nearest_dir(target, op.profile.version_file), nearest_existing(target.parent)},
                           key=lambda p: (len(p.parts), str(p)))
    for directory in writable_dirs:
        if os.stat(directory).st_dev != stage_dev:
            raise PreflightFailed(
                f"{directory}: is on another filesystem than {target.parent} (a mount point); MCP Deploy "
                "publishes by renaming within one filesystem and never moves a mount: deploy those files "
                "with a profile whose target is inside the mount")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise PreflightFailed(
                f"{directory}: not writable by this user (uid {os.geteuid()}); make it writable "
                "(chmod u+w) or deploy as its owner")


def check_no_special_files(op: Operation, found: Survey) -> None:
    """A FIFO, socket or device in production where the release puts a file: the tool never makes one,
    so it is the user's, and the commit's rename would destroy it (it cannot be backed up either).
    Production's scan sees only files and links, so these paths are planned as added; look there."""
    base = str(op.target)
    for entry in found.plan.added:
        path = f"{base}/{entry.path}"
        try:
            kind = special_kind(os.lstat(path).st_mode)
        except OSError:
            continue
        if kind is not None:
            raise PreflightFailed(f"{path}: is a {kind} in production where the release puts a file; MCP Deploy "
                                  "did not make it and replaces only files it deployed: move it away")


def _parent_problem(target: Path, rel: str, removed: set[str], seen: dict[str, str | None]) -> str | None:
    """Why a file cannot be written at `rel`: a parent that is a symlink, or a file that is not going away."""
    parts = rel.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        if sub not in seen:
            seen[sub] = _describe_parent(target, sub, rel, removed)
        if seen[sub]:
            return seen[sub]
    return None


def _describe_parent(target: Path, sub: str, rel: str, removed: set[str]) -> str | None:
    try:
        st = os.lstat(target / sub)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return (f"{target / sub}: is a symlink in production, and {rel} would be written through it; replace the "
                "link with a real directory (MCP Deploy never writes outside the target)")
    if not stat.S_ISDIR(st.st_mode) and sub not in removed:
        return (f"{target / sub}: is a file in production, but the source has {rel} below it; move that file "
                "away (it is not managed, so MCP Deploy will not replace it)")
    return None


def _check_not_a_directory(target: Path, rel: str, found: Survey) -> None:
    """A file may replace a directory only if this tool made it and everything in it is going away."""
    try:
        if not stat.S_ISDIR(os.lstat(f"{target}/{rel}").st_mode):  # a link to a directory is not one
            return
    except OSError:
        return
    path = target / rel
    if rel in found.release.dirs:
        kept = _first_not_going(target, path, {e.path for e in found.plan.removed} | set(found.release.dirs))
        if kept is None:
            return
    raise PreflightFailed(f"{path}: is a directory in production with files MCP Deploy did not deploy, and the "
                          f"new release has a file {rel} there; move the directory away first")


def _first_not_going(target: Path, path: Path, going: set[str]) -> str | None:
    """The first entry below `path` that the commit will not remove, if any."""
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            sub = os.path.relpath(os.path.join(root, name), target)
            if sub not in going:
                return sub
    return None


def _nearest_dir(target: Path, rel: str) -> Path:
    """The deepest existing directory on the way to `rel`: where the commit's rename or mkdir happens."""
    return nearest_existing((target / rel).parent)


def check_space(op: Operation, found: Survey) -> None:
    """The stage costs the bytes copied; the backup, the production files not yet stored."""
    spooled = getattr(op.source, "spooled", {})  # already copied into the stage by the survey
    stage_bytes = sum(e.size for e in found.plan.added + found.plan.changed if e.path not in spooled)
    backup_bytes = sum(e.size for e in found.production.values()
                       if e.link is None and not op.store.has(e.sha256))
    target_fs = nearest_existing(op.target.parent)
    backup_fs = nearest_existing(op.store.root)
    needs = {target_fs: stage_bytes}
    if os.stat(backup_fs).st_dev == os.stat(target_fs).st_dev:
        needs[target_fs] += backup_bytes
    else:
        needs[backup_fs] = backup_bytes
    for path, need in needs.items():
        want = int(need * SPACE_MARGIN) + SPACE_SLACK
        free = shutil.disk_usage(path).free
        if free < want:
            raise PreflightFailed(
                f"{path}: not enough free disk space: need {_mib(want)} (stage and backup plus margin), "
                f"have {_mib(free)}; free some space or prune backups"
            )


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"
