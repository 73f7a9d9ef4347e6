"""Fault injection for the chaos tests. Never set these variables in production.

    MCP_DEPLOY_CRASH_AT=POINT        SIGKILL this process on reaching POINT
    MCP_DEPLOY_PAUSE_AT=POINT:DIR    on reaching POINT, create DIR/reached and wait for DIR/go

POINT is a journal state (STAGING, COMMITTING, ...: fired right after the state is
journaled) or one of the per-file points below with its count, e.g. `copy:2`.
DIR is an absolute path, so POINT itself may contain ':'.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

BACKUP = "backup"  # backup:N  after the N-th file is stored
COPY = "copy"  # copy:N  after the N-th file is staged
COMMIT = "commit"  # commit:N  after the N-th change of the commit is applied
TAKE = "take"  # take:N  the N-th change swapped production's file into the stage; the store has not taken it
UNDO = "undo"  # undo:N  after the N-th change of the commit is undone

CRASH_AT = os.environ.get("MCP_DEPLOY_CRASH_AT")
PAUSE_AT = os.environ.get("MCP_DEPLOY_PAUSE_AT")
ENABLED = bool(CRASH_AT or PAUSE_AT)  # read once: the hot loops only test this flag


def _pause_spec() -> tuple[str, Path] | None:
    if not PAUSE_AT or ":/" not in PAUSE_AT:
        return None
    point, folder = PAUSE_AT.split(":/", 1)
    return point, Path("/" + folder)


PAUSE = _pause_spec()


def point(name: str, n: int | None = None) -> None:
    """Fire the fault point `name` (or `name:n`): the one place every injected fault goes through."""
    if not ENABLED:
        return
    here = name if n is None else f"{name}:{n}"
    if CRASH_AT == here:
        os.kill(os.getpid(), signal.SIGKILL)
    if PAUSE is not None and PAUSE[0] == here:
        (PAUSE[1] / "reached").touch()
        while not (PAUSE[1] / "go").exists():
            time.sleep(0.02)
