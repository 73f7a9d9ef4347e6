"""MCP Deploy as an MCP server: deploy, status, rollback, history and diff as tools over stdio.

Each tool calls the same `deploylib.operations` function as the invoke task
and returns the same object `--json` prints, plus a one-line `summary` for
the conversation. A `DeployError` becomes an MCP tool error with the same
message; the server itself never goes down with a failed call. The config is
re-read on every call, so edits to deploy.yaml apply without a restart.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

import anyio
import anyio.from_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from . import __version__, naming, operations, report
from .config import load_profile
from .errors import DeployError, PlanMismatch
from .report import deploy_summary, preview_summary

PROGRESS_INTERVAL = 0.2  # seconds between file-batch progress notifications


def build_server(config: str | os.PathLike[str] | None, profile: str | None) -> MCPServer:
    """The server for one profile; fails fast (ConfigError) if the config cannot be loaded at all."""
    prefix = load_profile(config, profile).tool_prefix
    naming.TOOL_PREFIX = prefix  # hints in error messages name these tools, not the command line
    server: MCPServer = MCPServer(
        name="mcp-deploy", version=__version__,
        instructions="Deploy, inspect and roll back a server tree safely. Preview with "
                     f"{prefix}deploy (no plan_digest), then call it again with the digest to deploy exactly that.",
    )

    async def call(fn: Callable[[], Any]) -> Any:
        try:
            return await anyio.to_thread.run_sync(fn)
        except DeployError as exc:
            raise ToolError(exc.message) from None

    async def status() -> dict[str, Any]:
        """Production version and age, files pending, drift, lock holder and the last result."""
        result = await call(lambda: operations.status(config, profile))
        return result.to_json()

    async def deploy(ctx: Context, plan_digest: str | None = None, ref: str | None = None) -> dict[str, Any]:
        """Without plan_digest: preview the deployment (nothing changes). With the digest from a preview:
        deploy exactly that plan (refused if the source changed since), with progress notifications.
        `ref` (a git branch, tag or commit) deploys exactly what git committed there, not the working tree."""
        if not plan_digest:
            preview = await call(lambda: operations.deploy(config, profile, dry_run=True, ref=ref))
            return {**preview.to_json(), "summary": preview_summary(preview)}
        relay = ProgressRelay(ctx)
        try:
            result = await anyio.to_thread.run_sync(
                lambda: operations.deploy(config, profile, plan_digest=plan_digest, ref=ref, on_event=relay))
        except DeployError as exc:
            if exc.kind != PlanMismatch.__name__:
                raise ToolError(exc.message) from None
            fresh = await call(lambda: operations.deploy(config, profile, dry_run=True, ref=ref))
            raise ToolError(f"{exc.message}. New preview: {preview_summary(fresh)}") from None
        return {**result.to_json(), "summary": deploy_summary(result)}

    async def rollback(ctx: Context, to: str | None = None, list_backups: bool = False,
                       dry_run: bool = False) -> dict[str, Any]:
        """Roll production back to a snapshot (default: the release before the current one).
        list_backups=true only lists the snapshots; `to` takes a snapshot id, deploy id or version."""
        if list_backups:
            listing = await call(lambda: operations.backups(config, profile))
            return {**listing.to_json(), "summary": report.backups_summary(listing)}
        relay = ProgressRelay(ctx)
        result = await call(lambda: operations.rollback(config, profile, to=to, dry_run=dry_run, on_event=relay))
        return {**result.to_json(), "summary": report.rollback_summary(result)}

    async def history(limit: int = 20) -> dict[str, Any]:
        """The deployment log: deploys, rollbacks, failures and recoveries, newest last."""
        result = await call(lambda: operations.history(config, profile, limit=limit))
        return {**result.to_json(), "summary": report.history_summary(result)}

    async def diff() -> dict[str, Any]:
        """The pending changes between the source and production, with unified diffs of text files."""
        result = await call(lambda: operations.diff(config, profile))
        return {**result.to_json(), "summary": report.diff_summary(result)}

    for fn in (status, deploy, rollback, history, diff):
        server.add_tool(fn, name=prefix + fn.__name__, description=fn.__doc__, structured_output=True)
    return server


class ProgressRelay:
    """Turns pipeline events (in a worker thread) into MCP progress notifications: every step, and
    file batches at most every PROGRESS_INTERVAL seconds."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.count = 0
        self.files = 0
        self.last = 0.0
        self.lock = threading.Lock()

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        with self.lock:
            if kind == "step":
                message = f"{data['step']} ({data['state']})"
            elif kind == "file":
                self.files += 1
                if time.monotonic() - self.last < PROGRESS_INTERVAL:
                    return
                message = f"{data['step']}: {self.files} file(s)"
            elif kind == "undo":
                message = f"undoing {data['step']}"
            else:
                return
            self.count += 1
            self.last = time.monotonic()
            anyio.from_thread.run(self.ctx.report_progress, self.count, None, message)


def serve(config: str | os.PathLike[str] | None, profile: str | None) -> None:
    build_server(config, profile).run("stdio")
