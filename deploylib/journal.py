"""The journal: an operation's state, written and fsynced before each transition.

If the process dies, the next command that takes the lock finds the journal
and knows exactly how far the operation got, so it can finish or undo it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from . import faults
from .errors import CorruptState
from .fsutil import atomic_write

JOURNAL_NAME = "journal.json"


class State(str, Enum):
    IDLE = "IDLE"
    CHECKING = "CHECKING"
    BACKING_UP = "BACKING_UP"
    STAGING = "STAGING"
    VALIDATING = "VALIDATING"
    SWAPPING = "SWAPPING"
    VERIFYING = "VERIFYING"
    RECORDING = "RECORDING"
    COMPLETE = "COMPLETE"
    ROLLING_BACK = "ROLLING_BACK"


@dataclass
class Record:
    """What recovery needs to know about an operation in flight: ids, paths and the state reached."""

    op_id: str
    operation: str  # deploy | rollback
    state: str
    target: str
    swap_path: str
    backup_dir: str
    log: str
    target_existed: bool
    snapshot_id: str | None = None
    failed_state: str | None = None  # the state in which the failure happened, while ROLLING_BACK
    error: str | None = None
    transitions: list[str] = field(default_factory=list)


class Journal:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / JOURNAL_NAME

    def exists(self) -> bool:
        return self.path.exists()

    def write(self, record: Record) -> None:
        atomic_write(self.path, json.dumps(asdict(record), indent=1).encode())

    def advance(self, record: Record, state: State) -> None:
        """Make the move to `state` durable before any of its work starts."""
        record.state = state.value
        record.transitions.append(state.value)
        self.write(record)
        faults.point(state.value)

    def read(self) -> Record:
        try:
            return Record(**json.loads(self.path.read_bytes()))
        except (ValueError, TypeError) as exc:
            raise CorruptState(
                f"{self.path}: journal is damaged ({exc.__class__.__name__}); "
                "inspect the target, then move the journal aside to continue"
            ) from None

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
