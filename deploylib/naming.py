"""The command the user typed, for messages that tell them what to run next.

The same tasks run as `invoke TASK` in this repo and as `mcp-deploy TASK` once
installed; a hint naming the other one would not run. `cli.main()` switches
`PROGRAM` to "mcp-deploy"; everything else (the repo's tasks.py) keeps "invoke".
"""

from __future__ import annotations

PROGRAM = "invoke"


def command(args: str) -> str:
    """`command("backups")` -> "mcp-deploy backups" or "invoke backups", as the user ran it."""
    return f"{PROGRAM} {args}"
