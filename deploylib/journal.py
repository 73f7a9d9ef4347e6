"""The journal: an operation's state, written and fsynced before each transition.

If the process dies, the next command that takes the lock finds the journal
and knows exactly how far the operation got, so it can finish or undo it
(`recovery.py`). The commit plan is journaled with the move to COMMITTING,
before the first file of production changes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from . import faults
from .errors import CorruptState
from .fsutil import atomic_write, read_state
from .layout import is_op_id, journal_path


class State(str, Enum):
    IDLE = "IDLE"
    CHECKING = "CHECKING"
    BACKING_UP = "BACKING_UP"
    STAGING = "STAGING"
    VALIDATING = "VALIDATING"
    COMMITTING = "COMMITTING"
    VERIFYING = "VERIFYING"
    RECORDING = "RECORDING"  # verify passed: from here on the operation only goes forward
    COMPLETE = "COMPLETE"
    ROLLING_BACK = "ROLLING_BACK"


@dataclass
class Record:
    """What recovery needs to know about an operation in flight."""

    op_id: str
    operation: str  # deploy | rollback
    state: str
    target: str
    stage: str
    previous_id: str | None = None  # the release being replaced (its files are managed too)
    snapshot_id: str | None = None  # the backup taken of what is replaced
    commit: dict[str, Any] | None = None  # the commit plan (commit.CommitPlan.to_json)
    failed_state: str | None = None  # the state in which the failure happened, while ROLLING_BACK
    error: str | None = None
    transitions: list[str] = field(default_factory=list)


_FIELDS = {f.name for f in fields(Record)}


class DamagedJournal(CorruptState):
    """The journal's bytes do not parse: recovery falls back to what the stage beside production holds."""


class Journal:
    def __init__(self, state_dir: Path) -> None:
        self.path = journal_path(state_dir)

    def exists(self) -> bool:
        return self.path.exists() or self.path.is_symlink()

    def write(self, record: Record) -> None:
        atomic_write(self.path, json.dumps(asdict(record), indent=1).encode())

    def advance(self, record: Record, state: State) -> None:
        """Make the move to `state` durable before any of its work starts."""
        record.state = state.value
        record.transitions.append(state.value)
        self.write(record)
        faults.point(state.value)

    def read(self) -> Record:
        """The journaled record, checked for shape: a damaged one is CorruptState, never trusted."""
        try:
            data = json.loads(read_state(self.path))
        except (OSError, ValueError) as exc:
            raise DamagedJournal(f"{self.path}: journal is damaged ({exc.__class__.__name__}); {KEPT}") from None
        try:
            if not isinstance(data, dict) or set(data) - _FIELDS:
                raise ValueError("unexpected fields")
            record = Record(**data)
        except (ValueError, TypeError) as exc:
            raise CorruptState(f"{self.path}: journal is damaged ({exc}); {KEPT}") from None
        problem = _problem(record)
        if problem:
            raise CorruptState(f"{self.path}: journal is damaged ({problem}); {KEPT}")
        return record

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


KEPT = ("it is kept as it is and nothing was changed; inspect the target, "
        "then move the journal aside to continue")
STATES = {s.value for s in State}


def _problem(r: Record) -> str | None:
    if not is_op_id(r.op_id) or r.operation not in ("deploy", "rollback"):
        return "unknown operation"
    if r.state not in STATES or (r.failed_state is not None and r.failed_state not in STATES):
        return f"unknown state {str(r.state)[:40]!r}"
    if not isinstance(r.target, str) or not isinstance(r.stage, str):
        return "bad paths"
    if r.previous_id is not None and not is_op_id(r.previous_id):
        return "bad previous release id"
    if r.snapshot_id is not None and not is_op_id(r.snapshot_id):
        return "bad snapshot id"
    if r.commit is not None and not isinstance(r.commit, dict):
        return "bad commit plan"
    return None
