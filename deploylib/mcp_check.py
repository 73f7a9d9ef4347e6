"""The `mcp` verify check: start the deployed server the way an MCP client does and shake hands.

It launches `command args` (with `env`, in `cwd`, default the deployed tree),
runs initialize and tools/list within `timeout`, optionally requires named
tools, and shuts the server down through the SDK, which kills its whole
process group, so no process outlives the check.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from .profile import CheckSpec
from .shell import QUIET_PYTHON


def check_mcp(spec: CheckSpec, target: Path, env: dict[str, str]) -> str | None:
    """The problem (first line: what failed), or None when the handshake passed."""
    opts: dict[str, Any] = dict(spec.options)  # shape guaranteed by the packaged JSON Schema
    params = StdioServerParameters(
        command=str(opts["command"]), args=[str(a) for a in opts.get("args", [])],
        env={**env, **{str(k): str(v) for k, v in opts.get("env", {}).items()}, **QUIET_PYTHON},
        cwd=target / str(opts.get("cwd", ".")),
    )
    expected = [str(t) for t in opts.get("expect_tools", [])]
    with tempfile.TemporaryFile("w+") as errlog:
        try:
            tools = anyio.run(_handshake, params, spec.timeout, errlog)
        except TimeoutError:
            return _problem(f"`{_cmdline(params)}` did not complete the MCP handshake within {spec.timeout:g}s", errlog)
        except OSError as exc:
            return f"`{_cmdline(params)}` could not be started: {exc.strerror or exc}"
        except Exception as exc:  # the server died or spoke something other than MCP
            reason = str(exc) or exc.__class__.__name__
            return _problem(f"`{_cmdline(params)}` failed the MCP handshake ({reason})", errlog)
    missing = [name for name in expected if name not in tools]
    if missing:
        return f"`{_cmdline(params)}` lacks expected tool(s) {', '.join(missing)}; it offers {', '.join(tools) or 'none'}"
    return None


async def _handshake(params: StdioServerParameters, timeout: float, errlog: Any) -> list[str]:
    with anyio.fail_after(timeout):
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                listing = await session.list_tools()
                return [tool.name for tool in listing.tools]


def _problem(first: str, errlog: Any) -> str:
    """Add the server's last stderr line (usually the traceback's last line) to the first line."""
    errlog.seek(0)
    lines = [line for line in errlog.read().splitlines() if line.strip()]
    if not lines:
        return first
    return f"{first}: {lines[-1].strip()[:300]}\n" + "\n".join(lines[-30:])


def _cmdline(params: StdioServerParameters) -> str:
    return " ".join([params.command, *params.args])
