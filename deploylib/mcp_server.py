"""MCP Deploy as an MCP server: deploy, status, rollback, history, diff and backups as tools over stdio.

Each tool calls the same `deploylib.operations` function as the invoke task
and returns the same object `--json` prints (structured content), plus a
one-line `summary` that also leads the text content, for the conversation.
A `DeployError` becomes an MCP tool error with the same message and, as
structured content, the object `--json` prints on failure; the server itself
never goes down with a failed call. The config is re-read on every call, so
edits to deploy.yaml apply without a restart, and a server started on a
broken deploy.yaml still lists its tools and answers each call with the
config error (a client would otherwise see only "Connection closed").
"""

from __future__ import annotations

import gc
import inspect
import json
import os
import threading
import time
from typing import Annotated, Any, Callable

import anyio
import anyio.from_thread
import anyio.lowlevel
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from . import __version__, naming, operations, report, warm
from .config import tool_prefix
from .errors import DeployError, PlanMismatch
from .steps import backup, commit, finish, preflight, stage, validate, verify

PROGRESS_INTERVAL = 0.2  # seconds between file-batch progress notifications
STEPS = ("lock", preflight.NAME, backup.NAME, stage.NAME, validate.NAME, commit.NAME, verify.NAME, finish.NAME)

# Our own content (summary first), published with the output schema of a JSON object.
Reply = Annotated[CallToolResult, dict[str, Any]]
READS = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
CHANGES = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)

PlanDigest = Annotated[str | None, Field(
    description="The plan.digest of a preview from this tool. Omit it to preview (nothing changes); "
                "give it to deploy exactly that plan, refused if the source has changed since.")]
To = Annotated[str | None, Field(
    description="Snapshot id, deploy id or version to restore (see list_backups); "
                "omit it for the release before the current one.")]
Ref = Annotated[str | None, Field(
    description="A git branch, tag or commit of the source's repository: deploy exactly what git committed "
                "there, not the working tree (default: the working tree).")]
OverwriteDrift = Annotated[bool, Field(
    description="Let the deploy overwrite managed files that were edited in production by hand (the backup "
                "keeps the edited files); without it such a deploy is refused.")]
Release = Annotated[str | None, Field(
    description="A release: 'live', a snapshot id, a deploy id or a version (as `backups` lists them).")]
ListBackups = Annotated[bool, Field(description="Only list the snapshots (what `to` accepts); change nothing.")]
DryRun = Annotated[bool, Field(description="Only show what the rollback would change; change nothing.")]
Limit = Annotated[int, Field(ge=0, description="How many of the newest records to return (0 for all).")]


def reply(data: dict[str, Any], summary: str) -> CallToolResult:
    """The summary as the first text block (what a person reads), the full object as JSON after it.
    A name that is not UTF-8 is sent escaped (`caf\\xe9.json`), as the CLI prints it."""
    data = report.encodable(json.loads(json.dumps({**data, "summary": summary}, default=str)))
    summary = data["summary"]
    return CallToolResult(content=[TextContent(type="text", text=summary),
                                   TextContent(type="text", text=json.dumps(data, indent=2))],
                          structured_content=data)


def failure(exc: DeployError, text: str | None = None, **extra: Any) -> CallToolResult:
    """A tool error: the CLI's one-line message, and the object `--json` prints on failure."""
    data = report.encodable(json.loads(json.dumps({**exc.to_json(), **extra}, default=str)))
    return CallToolResult(content=[TextContent(type="text", text=report.encodable(text or exc.message))],
                          structured_content=data, is_error=True)


def build_server(config: str | os.PathLike[str] | None, profile: str | None) -> MCPServer:
    """The server for one profile. It starts whatever state deploy.yaml is in: every call reads it afresh."""
    prefix = tool_prefix(config, profile)
    naming.TOOL_PREFIX = prefix  # hints in error messages name these tools, not the command line
    server: MCPServer = MCPServer(
        name="mcp-deploy", version=__version__,
        instructions="Deploy, inspect and roll back a server tree safely. Preview with "
                     f"{prefix}deploy (no plan_digest), then call it again with the digest to deploy exactly that.",
    )

    async def answer(fn: Callable[[], Any], summarize: Callable[[Any], str]) -> CallToolResult:
        try:
            result = await anyio.to_thread.run_sync(quiet(fn))
        except DeployError as exc:
            return failure(exc)
        return reply(result.to_json(), summarize(result))

    async def status() -> Reply:
        """Production version and age, files pending, drift, lock holder and the last result."""
        return await answer(lambda: operations.status(config, profile), report.status_summary)

    async def deploy(ctx: Context, plan_digest: PlanDigest = None, ref: Ref = None,
                     overwrite_drift: OverwriteDrift = False) -> Reply:
        """Without plan_digest: preview the deployment (nothing changes). With the digest from a preview:
        deploy exactly that plan, with progress notifications; if the source has changed since, the
        refusal carries the new preview and its digest."""
        if not plan_digest:
            return await answer(lambda: operations.deploy(config, profile, dry_run=True, ref=ref),
                                report.preview_summary)
        relay = ProgressRelay(ctx)
        try:
            result = await anyio.to_thread.run_sync(quiet(
                lambda: operations.deploy(config, profile, plan_digest=plan_digest, ref=ref,
                                          overwrite_drift=overwrite_drift, on_event=relay)))
        except DeployError as exc:
            if exc.kind != PlanMismatch.__name__:
                return failure(exc)
            try:
                fresh = await anyio.to_thread.run_sync(quiet(
                    lambda: operations.deploy(config, profile, dry_run=True, ref=ref)))
            except DeployError as again:
                return failure(again)
            preview = {**fresh.to_json(), "summary": report.preview_summary(fresh)}
            return failure(exc, report.stale_plan(exc.message, fresh), preview=preview,
                           plan_digest=getattr(fresh, "plan_digest", None) or fresh.plan["digest"])
        await relay.done()
        return reply(result.to_json(), report.deploy_summary(result))

    async def rollback(ctx: Context, to: To = None, list_backups: ListBackups = False,
                       dry_run: DryRun = False, plan_digest: PlanDigest = None) -> Reply:
        """Roll production back to a snapshot (default: the release before the current one), verify it,
        and return the result, with progress notifications. list_backups=true only lists the snapshots;
        dry_run=true previews, and its plan_digest makes the rollback apply exactly that plan."""
        if list_backups:
            return await answer(lambda: operations.backups(config, profile), report.backups_summary)
        relay = ProgressRelay(ctx)
        out = await answer(lambda: operations.rollback(config, profile, to=to, dry_run=dry_run,
                                                       plan_digest=plan_digest, on_event=relay),
                           report.rollback_summary)
        if not out.is_error:
            await relay.done()
        return out

    async def backups() -> Reply:
        """The snapshots a rollback can restore, newest first, with the default rollback target marked."""
        return await answer(lambda: operations.backups(config, profile), report.backups_summary)

    async def history(limit: Limit = 20) -> Reply:
        """The deployment log: deploys, rollbacks, failures and recoveries, newest last."""
        return await answer(lambda: operations.history(config, profile, limit=limit), report.history_summary)

    async def diff(release: Release = None, from_release: Release = None, to_release: Release = None) -> Reply:
        """Without arguments: the pending changes between the source and production. With `release`: what
        that release changed against its predecessor; with from_release (and to_release, default live):
        the changes between any two releases or snapshots. Unified diffs of text files."""
        if release or from_release:
            return await answer(lambda: operations.release_diff(config, profile, release=release or None,
                                                                old=from_release or None, new=to_release or None),
                                report.release_diff_summary)
        return await answer(lambda: operations.diff(config, profile), report.diff_summary)

    tools: list[tuple[Callable[..., Any], str, ToolAnnotations]] = [
        (status, "Deployment status", READS), (deploy, "Preview or deploy", CHANGES),
        (rollback, "Roll back", CHANGES), (history, "Deployment history", READS),
        (diff, "Pending changes", READS), (backups, "Backups", READS)]
    for fn, title, hints in tools:
        server.add_tool(fn, name=prefix + fn.__name__, title=title, description=inspect.cleandoc(fn.__doc__ or ""),
                        annotations=hints, structured_output=True)
    return server


class ProgressRelay:
    """Turns pipeline events (in a worker thread) into MCP progress notifications.

    `total` is the number of steps; progress moves through each step with its files, and only ever
    grows (the protocol requires it, undo included). File batches at most every PROGRESS_INTERVAL.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.step = 0  # index in STEPS of the running step
        self.files = 0
        self.expected: int | None = None  # files the running step announced
        self.value = -1.0  # the last progress sent
        self.last = 0.0
        self.lock = threading.Lock()
        # made in the server's event loop: a fleet reports from the controller's own worker threads, which
        # anyio did not start, so they name the loop to report to
        self.token = anyio.lowlevel.current_token()

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        with self.lock:
            if kind == "step":
                self.step = STEPS.index(data["step"]) if data["step"] in STEPS else self.step
                self.files, self.expected = 0, None
                self._send(self.step, f"{data['step']} (step {self.step + 1} of {len(STEPS)})")
            elif kind == "begin":
                self.expected = data.get("files") or None
            elif kind == "file":
                self.files += int(data.get("count", 1))
                if time.monotonic() - self.last < PROGRESS_INTERVAL:
                    return
                share = self.files / self.expected if self.expected else self.files / (self.files + 1)
                of = f"/{self.expected}" if self.expected else ""
                self._send(self.step + 0.99 * min(share, 1.0), f"{data['step']}: {self.files}{of} files")
            elif kind == "undo":
                self._send(self.value, f"undoing {data['step']}")
            elif kind == "fleet":  # a fleet profile: progress per host, in the hosts' own words
                line = report.fleet_event(data)
                if line:
                    self._send(self.value, line)

    def _send(self, value: float, message: str) -> None:
        self.value = round(max(value, self.value + 0.001), 3)
        self.last = time.monotonic()
        anyio.from_thread.run(self.ctx.report_progress, self.value, len(STEPS), message, token=self.token)

    async def done(self) -> None:
        """The last notification: all steps done (also for a run that had nothing to do)."""
        await self.ctx.report_progress(len(STEPS), len(STEPS), "done")


_running = 0  # tool calls in progress (each in a worker thread)
_gc_lock = threading.Lock()


def quiet(fn: Callable[[], Any]) -> Callable[[], Any]:
    """`fn` with the cyclic GC paused while any call runs: an operation builds tens of thousands of
    objects that live until it ends, and collections during it re-scan them (and the warm caches) for
    nothing. The GC resumes when no call is running."""

    def run() -> Any:
        global _running
        with _gc_lock:
            _running += 1
            gc.disable()
        try:
            return fn()
        finally:
            with _gc_lock:
                _running -= 1
                if not _running:
                    gc.enable()

    return run


def serve(config: str | os.PathLike[str] | None, profile: str | None) -> None:
    warm.enable()  # keep the hash cache and the store's listing between calls, revalidated (see warm.py)
    server = build_server(config, profile)
    gc.freeze()  # the modules and the server: never garbage, never worth scanning again
    server.run("stdio")
