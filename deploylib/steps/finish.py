"""After verify passed: make the release final, then the housekeeping that may fail without harm.

`finish` is the point of no return (journaled as RECORDING): it drops the stage
and the records of older releases, and is idempotent, because recovery calls it
for an operation killed after verify passed. Housekeeping (history, retention,
who to restart) runs after the journal is closed; failing or being interrupted
there leaves the release live and merely unrecorded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..commit import drop_stage
from ..context import Operation
from ..errors import DeployError
from ..history import append
from ..journal import State
from ..layout import is_op_id, releases_dir
from ..retention import prune

NAME, STATE = "record", State.RECORDING


def finish(op: Operation) -> None:
    drop_stage(op.stage)
    records = releases_dir(op.profile.state_dir)
    if records.is_dir():
        for path in records.glob("*.json"):
            if path.stem != op.op_id and is_op_id(path.stem):
                path.unlink()  # only the live release's record is ever needed


def housekeeping(op: Operation, history_record: dict[str, Any], version_info: dict[str, Any]) -> None:
    """Log the operation, apply retention, and name the processes that still run the old code."""
    try:
        append(op.profile.log, history_record)
    except OSError as exc:
        op.note(f"{op.profile.log}: could not append to the history ({exc.strerror})")
    try:
        report = prune(op.profile, op.store, version_info, collect_always=False)
        if report.removed:
            op.note(f"retention removed {len(report.removed)} old snapshot(s)")
    except (DeployError, OSError) as exc:
        op.note(f"retention skipped: {getattr(exc, 'message', None) or exc}")
    for note in processes_using(op.target):
        op.note(note)


def processes_using(target: Path) -> list[str]:
    """Running processes whose cwd, executable or arguments lie in the target (Linux /proc)."""
    proc = Path("/proc")
    if not proc.is_dir() or not target.exists():
        return []
    prefix = str(target.resolve())
    notes = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        paths = [cwd] + [a.decode(errors="replace") for a in argv]
        if any(p == prefix or p.startswith(prefix + "/") for p in paths):
            name = os.path.basename(argv[0].decode(errors="replace")) if argv and argv[0] else "?"
            notes.append(f"process {entry.name} ({name}) uses {target} and still runs the old code: "
                         "restart it to load the new release")
    return notes


def undo(op: Operation) -> None:
    """Never called: once verify has passed the operation only goes forward."""
