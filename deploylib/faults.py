"""Fault injection for the chaos tests. Never set these variables in production.

    MCP_DEPLOY_CRASH_AT=POINT        SIGKILL this process on reaching POINT
    MCP_DEPLOY_PAUSE_AT=POINT:DIR    on reaching POINT, create DIR/reached and wait for DIR/go

POINT is a journal state (STAGING, SWAPPING, ...: right after the state is
journaled), `backup:N` / `copy:N` (after the N-th file backed up / staged), or
`swap:parked` / `swap:moved` (between the renames of the fallback swap), or `spare:taken` (the
spare tree just renamed to be the stage, not yet refreshed).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

CRASH_AT = os.environ.get("MCP_DEPLOY_CRASH_AT")
PAUSE_AT = os.environ.get("MCP_DEPLOY_PAUSE_AT")
ENABLED = bool(CRASH_AT or PAUSE_AT)  # read once: the hot loops only test this flag


def point(name: str) -> None:
    if not ENABLED:
        return
    if CRASH_AT == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if PAUSE_AT and PAUSE_AT.split(":", 1)[0] == name:
        folder = Path(PAUSE_AT.split(":", 1)[1])
        (folder / "reached").touch()
        while not (folder / "go").exists():
            time.sleep(0.02)
