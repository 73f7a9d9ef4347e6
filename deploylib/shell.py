"""Run the user's shell commands (command validators, verify checks, hooks, notify commands) with a timeout.

A timeout kills the command's whole process group. Commands never write Python
bytecode (`PYTHONDONTWRITEBYTECODE=1`): a check must leave no `__pycache__` behind
in the stage or in production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

OUTPUT_TAIL = 2000  # characters of output kept for messages and history
QUIET_PYTHON = {"PYTHONDONTWRITEBYTECODE": "1"}


@dataclass
class CommandResult:
    command: str
    returncode: int | None  # None when it timed out
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        """One line: the command, how it ended, and the last line it printed (usually the cause)."""
        if self.returncode is None:
            return f"`{self.command}` timed out after {self.seconds:g}s"
        lines = [line for line in self.output.splitlines() if line.strip()]
        last = f": {lines[-1].strip()[:300]}" if lines else ""
        return f"`{self.command}` exited {self.returncode}{last}"


def run(command: str, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> CommandResult:
    started = time.monotonic()
    proc = subprocess.Popen(
        command, shell=True, cwd=cwd, env={**os.environ, **(env or {}), **QUIET_PYTHON},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so a timeout kills its children too
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        code = None
    except BaseException:  # a signal became an exception (undo follows): the command must not outlive it
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    elapsed = timeout if code is None else time.monotonic() - started
    text = out.decode(errors="replace")
    return CommandResult(command, code, text[-OUTPUT_TAIL:], round(elapsed, 3))
