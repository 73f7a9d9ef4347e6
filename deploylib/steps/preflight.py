"""Survey production and the source, plan the change, and refuse early if it cannot succeed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..context import Context
from ..errors import PlanMismatch, PreflightFailed
from ..fsutil import nearest_existing
from ..journal import State
from ..manifest import load_manifest, scan
from ..plan import diff
from ..trees import file_parent, symlinked_parent
from ..version import read_version
from . import Step

SPACE_MARGIN = 1.10  # 10% over the estimate ...
SPACE_SLACK = 8 * 1024 * 1024  # ... plus 8 MiB for directories, VERSION and metadata


def survey(ctx: Context) -> None:
    """Fill ctx.previous, .deployed, .desired, .production and .plan without changing anything."""
    prev, problem = read_version(ctx.target)
    if problem:
        ctx.note(problem)
    ctx.previous = prev
    ctx.deployed = {}
    if prev:
        ctx.deployed = load_manifest(release_path(ctx, prev["deploy_id"])) or {}
        if not ctx.deployed:
            ctx.note("no record of the files the current release deployed; files dropped from the source "
                     "will be left in production")
    ctx.cache.on_hash = lambda path, size: ctx.emit("file", {"step": "hash", "path": path, "bytes": size})
    wanted = ctx.source.desired(ctx)
    ctx.desired = wanted.entries
    ctx.production = scan(ctx.target, ctx.profile.rules, ctx.cache, also=frozenset(ctx.deployed)).entries
    ctx.plan = diff(ctx.desired, ctx.production, set(ctx.deployed))
    ctx.plan.withheld = wanted.withheld
    ctx.source.verify_available(ctx.plan)
    if wanted.withheld:
        ctx.note(f"withheld {len(wanted.withheld)} secret-looking file(s) from the sync set: "
                 f"{', '.join(wanted.withheld[:5])} (lift with unsafe_allow_secrets only if you must)")


def release_path(ctx: Context, deploy_id: str) -> Path:
    return ctx.profile.state_dir / "releases" / f"{deploy_id}.json"


class Preflight(Step):
    name = "preflight"
    state = State.CHECKING

    def run(self, ctx: Context) -> None:
        ctx.record.target_existed = ctx.target.exists()
        survey(ctx)
        assert ctx.plan is not None
        if ctx.expected_digest and ctx.plan.digest != ctx.expected_digest:
            raise PlanMismatch(
                f"{ctx.target}: plan changed since it was previewed (expected {ctx.expected_digest}, "
                f"now {ctx.plan.digest}); preview again with --dry-run and deploy the new digest"
            )
        if ctx.plan.empty:
            what = "deploy" if ctx.record.operation == "deploy" else "roll back"
            ctx.stop_reason = f"nothing to {what}: production already matches"
            return
        check_no_secrets(ctx)
        check_no_symlinked_parents(ctx)
        check_writable(ctx)
        check_space(ctx)
        for note in processes_using(ctx.target):
            ctx.note(note)


def check_no_secrets(ctx: Context) -> None:
    leaked = [p for p in ctx.desired if ctx.profile.rules.is_secret(p)]
    if leaked:
        raise PreflightFailed(f"{ctx.profile.source}: secret-looking files in the sync set: {', '.join(leaked[:5])}")


def check_no_symlinked_parents(ctx: Context) -> None:
    """A file must never be written through a symlinked directory in production (it would land outside),
    nor below something that is a file there."""
    assert ctx.plan is not None
    removed = {e.path for e in ctx.plan.removed}
    for entry in ctx.plan.added + ctx.plan.changed:
        link = symlinked_parent(ctx.target, entry.path)
        if link is not None:
            raise PreflightFailed(
                f"{ctx.target / link}: is a symlink in production, and {entry.path} would be written through it; "
                "replace the link with a real directory (MCP Deploy never writes outside the target)"
            )
        blocker = file_parent(ctx.target, entry.path)
        if blocker is not None and blocker not in removed:
            raise PreflightFailed(
                f"{ctx.target / blocker}: is a file in production, but the source has {entry.path} below it; "
                "move that file away (it is not managed, so MCP Deploy will not replace it)"
            )


def check_writable(ctx: Context) -> None:
    where = ctx.target if ctx.target.exists() else nearest_existing(ctx.target)
    parent = nearest_existing(ctx.target.parent)
    for path in {where, parent}:
        if not os.access(path, os.W_OK | os.X_OK):
            raise PreflightFailed(
                f"{path}: not writable by this user (uid {os.geteuid()}); "
                "fix its permissions or deploy as its owner"
            )


def check_space(ctx: Context) -> None:
    """The stage costs the bytes copied; the backup, the production files not yet stored."""
    assert ctx.plan is not None
    stage_bytes = ctx.plan.bytes_to_copy
    backup_bytes = sum(e.size for e in ctx.production.values()
                       if e.link is None and not ctx.store.has(e.sha256))
    target_fs = nearest_existing(ctx.target.parent)
    backup_fs = nearest_existing(ctx.store.root)
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
                f"have {_mib(free)}; free some space or prune backups (`invoke prune`)"
            )


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"


def processes_using(target: Path) -> list[str]:
    """Notes on running processes whose cwd, executable or arguments lie in the target (Linux /proc)."""
    proc = Path("/proc")
    if not proc.is_dir() or not target.exists():
        return []
    prefix = str(target.resolve())
    notes = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        paths = [cwd] + [a.decode(errors="replace") for a in argv]
        if any(p == prefix or p.startswith(prefix + "/") for p in paths):
            name = os.path.basename(argv[0].decode(errors="replace")) if argv and argv[0] else "?"
            notes.append(f"process {entry.name} ({name}) uses {target}; it keeps the old code until restarted")
    return notes
