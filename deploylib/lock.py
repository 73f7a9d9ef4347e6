"""The deployment lock: flock(2) on a file in the state directory.

The kernel drops a flock when its holder dies, so a killed deploy can never
leave a stale lock behind; the file itself only carries who holds it.
Plain fcntl beats the `filelock` package here because we need the holder's
identity inside the locked file, which filelock does not offer.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import LockHeld, PreflightFailed
from .ids import utc_now

LOCK_NAME = "lock"


@dataclass(frozen=True)
class Holder:
    pid: int | str
    host: str
    operation: str
    started: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, running {self.operation} since {self.started}"


class DeployLock:
    """Exclusive lock with holder info; use as a context manager or acquire()/release()."""

    def __init__(self, state_dir: Path, operation: str, wait: float = 0.0) -> None:
        self.path = state_dir / LOCK_NAME
        self.operation = operation
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise PreflightFailed(f"{exc.filename or self.path}: cannot create the lock ({exc.strerror}); "
                                  "fix its permissions or set state_dir in deploy.yaml") from None
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = read_holder(self.path)
                    os.close(fd)
                    who = holder.describe() if holder else "an unknown process"
                    waited = f" after waiting {self.wait:g}s" if self.wait else ""
                    raise LockHeld(
                        f"{self.path}: deployment lock held by {who}{waited}; "
                        "wait for it to finish or pass --wait SECONDS"
                    ) from None
                time.sleep(0.05)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "operation": self.operation, "started": utc_now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> "DeployLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(path: Path) -> Holder | None:
    """Who holds (or last held) the lock; None when the file is missing, empty or garbage."""
    try:
        data = json.loads(path.read_bytes())
        return Holder(data["pid"], data["host"], data["operation"], data["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def current_holder(state_dir: Path) -> Holder | None:
    """The live holder of the lock, without taking it or creating anything; None when free."""
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return read_holder(path) or Holder("?", "?", "unknown", "?")
    finally:
        os.close(fd)  # also drops the shared lock if we got it
