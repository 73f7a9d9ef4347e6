"""The journal: an operation's state, written and fsynced before each transition.

If the process dies, the next command that takes the lock finds the journal
and knows exactly how far the operation got, so it can finish or undo it
(`recovery.py`). The commit plan is journaled with the move to COMMITTING,
before the first file of production changes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from . import faults
from .commit import CommitPlan
from .ids import utc_now
from .errors import CorruptState
from .fsutil import atomic_write, fsync_dir, read_state
from .jsonfile import DuplicateKey, loads_state, why
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


_FIELD_LIST = fields(Record)
_FIELDS = {f.name for f in _FIELD_LIST}


class DamagedJournal(CorruptState):
    """The journal's bytes do not parse: recovery falls back to what the stage beside production holds."""


class Journal:
    def __init__(self, state_dir: Path) -> None:
        self.path = journal_path(state_dir)

    def exists(self) -> bool:
        return self.path.exists() or self.path.is_symlink()

    def write(self, record: Record) -> None:
        """Compact JSON from the fields as they are: `asdict` deep-copied the commit plan and `indent` took
        json's pure-Python encoder, 2.3 s per write for a plan of 100,000 files (0.16 s this way), and an
        operation writes its journal about ten times."""
        atomic_write(self.path, json.dumps({f.name: getattr(record, f.name) for f in _FIELD_LIST}).encode())

    def advance(self, record: Record, state: State) -> None:
        """Make the move to `state` durable before any of its work starts."""
        record.state = state.value
        record.transitions.append(state.value)
        self.write(record)
        faults.point(state.value)

    def read(self) -> Record:
        """The journaled record, checked for shape: a damaged one is CorruptState, never trusted."""
        try:
            data = loads_state(read_state(self.path))
        except DuplicateKey as exc:  # it parses, but says two things: neither may be acted on
            raise CorruptState(f"{self.path}: journal is damaged ({exc}); {KEPT}") from None
        except (OSError, ValueError) as exc:
            raise DamagedJournal(f"{self.path}: journal is damaged ({why(exc)}); {KEPT}") from None
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

    def set_aside(self) -> Path:
        """Keep a damaged journal as evidence under a name no command reads: journal.json.damaged-<time>."""
        aside = self.path.with_name(f"{self.path.name}{DAMAGED_SUFFIX}{utc_now().replace(':', '')}")
        os.replace(self.path, aside)
        fsync_dir(self.path.parent)
        return aside


KEPT = ("it is kept as it is and nothing was changed; inspect the target, "
        "then move the journal aside to continue")
DAMAGED_SUFFIX = ".damaged-"  # journal.json.damaged-<time>: a damaged journal kept as evidence
# a journal is written first on the move to CHECKING: IDLE is never journaled
STATES = {s.value for s in State} - {State.IDLE.value}
# the states a step fails in (what failed_state records before the move to ROLLING_BACK)
STEP_STATES = [State.CHECKING.value, State.BACKING_UP.value, State.STAGING.value, State.VALIDATING.value,
               State.COMMITTING.value, State.VERIFYING.value]


def _problem(r: Record) -> str | None:
    if not is_op_id(r.op_id) or r.operation not in ("deploy", "rollback"):
        return "unknown operation"
    if not isinstance(r.state, str) or r.state not in STATES:
        return f"unknown state {str(r.state)[:40]!r}"
    if r.failed_state is not None and r.failed_state not in STEP_STATES:
        return f"unknown failed_state {str(r.failed_state)[:40]!r}"
    if not isinstance(r.target, str) or not isinstance(r.stage, str):
        return "bad paths"
    if r.previous_id is not None and not is_op_id(r.previous_id):
        return "bad previous release id"
    if r.snapshot_id is not None and not is_op_id(r.snapshot_id):
        return "bad snapshot id"
    if r.error is not None and not isinstance(r.error, str):
        return "bad error"
    if not isinstance(r.transitions, list) or not all(isinstance(t, str) and t in STATES for t in r.transitions):
        return "bad transitions"
    if r.commit is not None:
        try:
            if not isinstance(r.commit, dict):
                raise ValueError("not a mapping")
            CommitPlan.from_json(r.commit)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return f"bad commit plan: {str(exc)[:80]}"
    return None
