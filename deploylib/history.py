"""The append-only history log: one JSON object per line per deploy, rollback, failure or recovery."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from .errors import CorruptState
from .ids import parse_time
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
    f = _open(log)
    if f is None:
        return records, 0
    with f:
        lines = f.read().splitlines()
    for raw in lines:
        if not raw.strip():
            continue
        rec = _record(raw)
        if rec is None:
            bad += 1
        else:
            records.append(rec)
    return records, bad


BLOCK = 64 * 1024  # read backwards this much at a time


def last(log: Path) -> dict[str, Any] | None:
    """The newest readable record, `read(log)[0][-1]`, reading the log backwards a block at a time: status
    asks for it on every run, and a log of years of deploys (5 KB a line with its file lists) is megabytes."""
    f = _open(log)
    if f is None:
        return None
    with f:
        end = f.seek(0, os.SEEK_END)
        carried = b""  # the start of a line whose beginning lies in the block before
        while end > 0:
            start = max(0, end - BLOCK)
            f.seek(start)
            lines = (f.read(end - start) + carried).splitlines()  # as `read` splits them
            end = start
            carried = lines.pop(0) if end > 0 else b""
            for raw in reversed(lines):
                rec = _record(raw) if raw.strip() else None
                if rec is not None:
                    return rec
    return None


def _open(log: Path) -> BinaryIO | None:
    """The log opened for reading, None when there is none; CorruptState for one that cannot be read."""
    try:
        fd = os.open(log, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not hang a status
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CorruptState(f"{log}: the history log cannot be read ({exc.strerror}); "
                           "fix it, or set log in deploy.yaml to another file") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CorruptState(f"{log}: the history log is not a regular file; "
                           "move it away, or set log in deploy.yaml to another file")
    return os.fdopen(fd, "rb")


def _record(raw: bytes) -> dict[str, Any] | None:
    """The record a line holds, None unless it is one MCP Deploy wrote (see `_is_ours`)."""
    try:
        rec = loads_state(raw)
    except ValueError:
        return None
    return rec if _is_ours(rec) else None


EVENTS = ("deploy", "rollback", "failure", "refused", "recovery",  # "refused": a stale --plan, nothing ran
          "fleet-deploy", "fleet-rollback")  # a fleet's controller: one record, per-host outcomes in `hosts`
_OUTCOME = {"deploy": True, "rollback": True, "recovery": True, "failure": False, "refused": False,
            "fleet-deploy": True, "fleet-rollback": True}
OPERATIONS = ("deploy", "rollback", "fleet-deploy", "fleet-rollback")
_TEXT = ("version", "release", "git_commit", "error", "failed_step", "action", "state", "profile", "snapshot_id",
         "restored_from", "previous_id", "expected_digest", "plan_digest", "outcome")


def _is_ours(rec: object) -> bool:
    """A record MCP Deploy wrote: a known event with the verdict it has, an operation id, and every field
    `history` and `--stats` read of the type the tool writes. Anything else in the log (another program's
    lines, hand edits) is counted as a damaged line, never shown as an operation nor fed to the metrics."""
    if not (isinstance(rec, dict) and rec.get("event") in EVENTS and is_op_id(rec.get("id"))
            and rec.get("ok") is _OUTCOME[rec["event"]] and rec.get("operation") in OPERATIONS):
        return False
    if rec["event"] != "recovery" and not isinstance(rec.get("finished"), str):
        return False
    try:
        for key in ("started", "finished"):
            if rec.get(key) is not None:
                parse_time(rec[key])
    except (TypeError, ValueError, AttributeError):
        return False
    return (all(rec.get(key) is None or isinstance(rec[key], str) for key in _TEXT)
            and _numbers(rec.get("steps"), float) and _numbers(rec.get("counts"), int)
            and (rec.get("duration") is None or _number(rec["duration"], float))
            and (rec.get("hosts") is None or (isinstance(rec["hosts"], dict)
                                              and all(isinstance(h, dict) for h in rec["hosts"].values()))))


def _numbers(value: object, kind: type) -> bool:
    """None, or a mapping of names to numbers (`steps`: seconds; `counts`: files)."""
    return value is None or (isinstance(value, dict) and all(_number(v, kind) for v in value.values()))


def _number(value: object, kind: type) -> bool:
    allowed = (int, float) if kind is float else (int,)
    return isinstance(value, allowed) and not isinstance(value, bool) and value >= 0
