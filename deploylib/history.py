"""The append-only history log: one JSON object per line per deploy, rollback, failure or recovery."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from .errors import CorruptState
from .jsonfile import loads_state
from .layout import is_op_id


def append(log: Path, record: dict[str, Any]) -> None:
    """Append one line with a single write and fsync it, so a crash tears at most this line."""
    log.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # a line torn by an earlier crash would swallow ours: start on a fresh line
        if os.fstat(fd).st_size and not _ends_with_newline(log):
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _ends_with_newline(log: Path) -> bool:
    with open(log, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read(log: Path) -> tuple[list[dict[str, Any]], int]:
    """All readable records (oldest first) and how many damaged lines were skipped."""
    records: list[dict[str, Any]] = []
    bad = 0
    try:
        fd = os.open(log, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not hang a status
    except FileNotFoundError:
        return records, 0
    except OSError as exc:
        raise CorruptState(f"{log}: the history log cannot be read ({exc.strerror}); "
                           "fix it, or set log in deploy.yaml to another file") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CorruptState(f"{log}: the history log is not a regular file; "
                           "move it away, or set log in deploy.yaml to another file")
    with os.fdopen(fd, "rb") as f:
        lines = f.read().splitlines()
    for raw in lines:
        if not raw.strip():
            continue
        try:
            rec = loads_state(raw)
        except ValueError:
            bad += 1
            continue
        if _is_ours(rec):
            records.append(rec)
        else:
            bad += 1
    return records, bad


EVENTS = ("deploy", "rollback", "failure", "recovery")


def _is_ours(rec: object) -> bool:
    """A record MCP Deploy wrote: a known event, an operation id, a verdict. Anything else in the log
    (another program's lines, hand edits) is counted as a damaged line, never shown as an operation."""
    return (isinstance(rec, dict) and rec.get("event") in EVENTS and is_op_id(rec.get("id"))
            and isinstance(rec.get("ok"), bool))
