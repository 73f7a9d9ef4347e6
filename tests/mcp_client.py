"""A real MCP client session over stdio against `mcp-deploy mcp` in a subprocess."""

from __future__ import annotations

import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import CallToolResult

SCRIPT = os.path.join(os.path.dirname(sys.executable), "mcp-deploy")


@asynccontextmanager
async def mcp_session(config: Path, *extra: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=SCRIPT, args=["mcp", "--config", str(config), *extra],
                                   cwd=str(config.parent), env=dict(os.environ))
    with anyio.fail_after(60):
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


async def call_result(session: ClientSession, name: str, progress: list[Any] | None = None,
                      **arguments: Any) -> CallToolResult:
    """The whole result; `progress` collects (value, total, message) of each progress notification."""

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        if progress is not None:
            progress.append((value, total, message))

    return await session.call_tool(name, arguments, progress_callback=on_progress)


async def call(session: ClientSession, name: str, progress: list[Any] | None = None,
               **arguments: Any) -> tuple[bool, Any]:
    """(is_error, structured result or error text)."""
    result = await call_result(session, name, progress, **arguments)
    if result.is_error:
        return True, "".join(getattr(c, "text", "") for c in result.content)
    return False, result.structured_content
