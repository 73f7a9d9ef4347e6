"""Make the new tree final: carry late files, keep the old tree as the spare, log, apply retention."""

from __future__ import annotations

from ..context import Context
from ..errors import DeployError
from ..history import append
from ..ids import iso, utc_now
from ..journal import State
from ..retention import prune
from ..trees import carry_late_files, keep_as_spare
from ..version import deploy_id_of
from .preflight import release_path
from . import Step


class Record(Step):
    name = "record"
    state = State.RECORDING

    def run(self, ctx: Context) -> None:
        # verify passed: the new tree is production now, whatever goes wrong from here is only tidying up
        try:
            finish(ctx)
        except OSError as exc:
            ctx.keep_journal = True
            ctx.note(f"could not finish tidying up ({exc.strerror}: {exc.filename}); the next command completes it")
        try:
            append(ctx.profile.log, history_record(ctx, ok=True))
        except OSError as exc:
            ctx.note(f"{ctx.profile.log}: could not append to the history ({exc.strerror})")
        try:
            report = prune(ctx.profile, ctx.store, ctx.version_info, collect_always=False)
            if report.removed:
                ctx.note(f"retention removed {len(report.removed)} old snapshot(s)")
        except DeployError as exc:
            ctx.note(f"retention skipped: {exc.message}")


def finish(ctx: Context) -> None:
    """Idempotent: also how recovery completes an operation killed after verify passed."""
    old = ctx.swap_path
    if old.exists() and deploy_id_of(old) != ctx.op_id:
        if ctx.managed_known:
            moved = carry_late_files(old, ctx.target, ctx.is_managed, ctx.replica)
            if moved:
                ctx.note(f"carried {len(moved)} late file(s) into the new tree: {', '.join(moved[:5])}")
        keep_as_spare(old, ctx.spare_path)
    releases = release_path(ctx, ctx.op_id).parent
    if releases.is_dir():
        for path in releases.glob("*.json"):
            if path.stem != ctx.op_id:
                path.unlink()  # only the live tree's manifest is ever needed


def history_record(ctx: Context, ok: bool, **extra: object) -> dict[str, object]:
    plan = ctx.plan
    info = ctx.version_info or {}
    return {
        "event": ctx.record.operation if ok else "failure",
        "operation": ctx.record.operation,
        "id": ctx.op_id,
        "ok": ok,
        "profile": ctx.profile.name,
        "started": iso(ctx.started),
        "finished": utc_now(),
        "duration": round(sum(ctx.timings.values()), 4),
        "version": info.get("version"),
        "previous_id": (ctx.previous or {}).get("deploy_id"),
        "snapshot_id": ctx.record.snapshot_id,
        "restored_from": info.get("restored_from"),
        "counts": plan.summary()["counts"] if plan else None,
        "files_updated": info.get("files_updated", []),
        "steps": ctx.timings,
        **extra,
    }
