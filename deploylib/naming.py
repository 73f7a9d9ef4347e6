"""The command the user ran, for messages that tell them what to run next.

The same tasks run as `invoke TASK` in this repo, as `mcp-deploy TASK` once
installed, and as MCP tools (`<prefix>deploy`, ...) from an AI client; a hint
naming another front end would not run. `cli.main()` sets PROGRAM to
"mcp-deploy"; the MCP server sets TOOL_PREFIX; the repo's tasks.py keeps "invoke".
"""

from __future__ import annotations

PROGRAM = "invoke"
TOOL_PREFIX: str | None = None  # set by the MCP server: hints then name its tools

# hint -> (command-line arguments, the MCP tool that does the same, and how it is called)
HINTS = {
    "backups": ("backups", "rollback", "with list_backups=true"),
    "preview": ("deploy --dry-run", "deploy", "without plan_digest"),
    "preview-rollback": ("rollback --dry-run", "rollback", "with dry_run=true"),
}


def command(args: str) -> str:
    """`command("--list")` -> "mcp-deploy --list" or "invoke --list": for the command line only."""
    return f"{PROGRAM} {args}"


def hint(name: str) -> str:
    """`hint("backups")` -> "invoke backups", "mcp-deploy backups" or "the ua_self_rollback tool with
    list_backups=true": for messages any front end may show."""
    cli, tool, how = HINTS[name]
    if TOOL_PREFIX is not None:
        return f"the {TOOL_PREFIX}{tool} tool {how}"
    return command(cli)
