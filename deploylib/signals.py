"""Signals during an operation: before verify passes they undo it; after, they must wait.

SIGINT, SIGTERM and SIGHUP become `Interrupted` while steps run, so the failure
path undoes them like any other error. While undoing, and once verify has
passed (finishing is then the only direction), they are held back and only
noted. Handlers can be installed from the main thread only: in a worker thread
(the MCP server) these are no-ops and the process's own handling applies.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Iterator

from .errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def raising() -> Iterator[None]:
    """Turn the signals into `Interrupted` inside the block."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    with _handled_by(handler):
        yield


@contextmanager
def held(received: list[str]) -> Iterator[None]:
    """Hold the signals back inside the block; their names are appended to `received`."""

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)

    with _handled_by(handler):
        yield


@contextmanager
def stopping(received: list[str]) -> Iterator[None]:
    """A signal inside the block ends the block only (its name is appended to `received`) and the caller
    goes on: for work after the outcome is final (hooks, notifications), which a person may cut short
    but which must not turn into an undo or a misleading message."""
    try:
        with raising():
            yield
    except Interrupted as exc:
        received.append(exc.signal_name)
    except KeyboardInterrupt:
        received.append("SIGINT")


@contextmanager
def _handled_by(handler: signal.Handlers | object) -> Iterator[None]:
    if not _main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}  # type: ignore[arg-type]
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
