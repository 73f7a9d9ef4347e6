"""The deployment locks: flock(2) on three files, always taken in the same order.

    state_dir/lock                   the journal and the release records
    <parent>/.<target>.deploy-lock   the target itself, whichever config names it
    backup_dir/lock                  the store, which several targets may share

The kernel drops a flock when its holder dies, so a killed deploy can never
leave a stale lock behind; the files only carry who holds them. A lock file is
opened without following symlinks and must be a regular file of the deployer's:
a planted link must never make the lock truncate someone else's file.
Plain fcntl beats the `filelock` package here because we need the holder's
identity inside the locked file, which filelock does not offer.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CorruptState, LockHeld, PreflightFailed
from .ids import utc_now
from .jsonfile import loads_state
from .layout import lock_path, store_lock_path, target_lock_path
from .store import store_for

if TYPE_CHECKING:
    from .profile import Profile


@dataclass(frozen=True)
class Holder:
    pid: int | str
    host: str
    operation: str
    started: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, running {self.operation} since {self.started}"


class DeployLock:
    """One exclusive lock file with holder info; use as a context manager or acquire()/release()."""

    def __init__(self, path: Path, operation: str, wait: float = 0.0, *, private_dir: bool = False) -> None:
        self.path = path
        self.operation = operation
        self.wait = wait
        self.private_dir = private_dir  # the state dir: created 0700, it holds what recovery trusts
        self._fd: int | None = None

    def acquire(self, deadline: float | None = None) -> None:
        fd = self._open()
        deadline = time.monotonic() + self.wait if deadline is None else deadline
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder_soon(self.path)
                    os.close(fd)
                    who = holder.describe() if holder else "an unknown process"
                    waited = f" after waiting {self.wait:g}s" if self.wait else ""
                    raise LockHeld(
                        f"{self.path}: deployment lock held by {who}{waited}; "
                        "wait for it to finish or pass --wait SECONDS"
                    ) from None
                time.sleep(0.05)
        info = {"pid": os.getpid(), "host": os.uname().nodename, "operation": self.operation, "started": utc_now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def _open(self) -> int:
        """The lock file, created if missing; never through a symlink, never someone else's file."""
        try:
            if self.private_dir and not self.path.parent.exists():
                self.path.parent.parent.mkdir(parents=True, exist_ok=True)
                self.path.parent.mkdir(mode=0o700, exist_ok=True)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.private_dir:
                problem = _not_private(self.path.parent)
                if problem:
                    raise CorruptState(
                        f"{self.path.parent}: the state_dir is {problem}: whoever can write there can rewrite the "
                        "release records that tell MCP Deploy's files from yours (and have a deploy remove yours); "
                        f"make it uid {os.geteuid()}'s own and writable by no one else (chmod go-w), or set "
                        "state_dir elsewhere (nothing was changed)")
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if os.path.islink(self.path):
                raise CorruptState(f"{self.path}: is a symlink where MCP Deploy keeps its lock; "
                                   "remove the link (nothing was changed)") from None
            raise PreflightFailed(f"{exc.filename or self.path}: cannot create the lock ({exc.strerror}); "
                                  "fix its permissions or set state_dir in deploy.yaml") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            os.close(fd)
            what = "not a regular file" if not stat.S_ISREG(info.st_mode) else f"owned by uid {info.st_uid}"
            raise CorruptState(f"{self.path}: {what}, so it is not MCP Deploy's lock file of this user "
                               f"(uid {os.geteuid()}); remove it (nothing was changed)")
        return fd

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


def _not_private(directory: Path) -> str | None:
    """Why another user could write in `directory` (owned by them, or group/other-writable), else None."""
    info = os.stat(directory)
    if info.st_uid != os.geteuid():
        return f"owned by uid {info.st_uid}"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by other users (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def _holder_soon(path: Path, patience: float = 0.5) -> Holder | None:
    """The holder's info for a refusal: a process that has just taken the lock writes it a moment later
    (on a busy machine, long enough for a loser to read an empty file and blame "an unknown process")."""
    deadline = time.monotonic() + patience
    while True:
        holder = read_holder(path)
        if holder is not None or time.monotonic() >= deadline:
            return holder
        time.sleep(0.02)


def read_holder(path: Path) -> Holder | None:
    """Who holds (or last held) the lock; None when the file is missing, empty or garbage."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            data = loads_state(f.read(4096))
        return Holder(data["pid"], data["host"], data["operation"], data["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def profile_locks(profile: Profile, operation: str, wait: float = 0.0) -> list[DeployLock]:
    """The state, target and store locks of a profile, in the one order every operation takes them."""
    return [DeployLock(lock_path(profile.state_dir), operation, wait, private_dir=True),
            DeployLock(target_lock_path(profile.target), operation, wait),
            DeployLock(store_lock_path(profile.backup_dir), operation, wait)]


class Locked:
    """All of a profile's locks, under one deadline; released in reverse order."""

    def __init__(self, profile: Profile, operation: str, wait: float = 0.0) -> None:
        self.profile = profile
        self.locks = profile_locks(profile, operation, wait)
        self.wait = wait
        self._stack = ExitStack()

    def __enter__(self) -> "Locked":
        deadline = time.monotonic() + self.wait
        store_for(self.profile).claim()  # marked as a store before any file of ours is written there
        with ExitStack() as stack:
            for lock in self.locks:
                lock.acquire(deadline)
                stack.callback(lock.release)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def current_holder(profile: Profile) -> Holder | None:
    """The live holder of any of the profile's locks, without taking one or creating anything; None when free."""
    for lock in profile_locks(profile, "status"):
        holder = _holder_of(lock.path)
        if holder is not None:
            return holder
    return None


def _holder_of(path: Path) -> Holder | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return read_holder(path) or Holder("?", "?", "unknown", "?")
    finally:
        os.close(fd)  # also drops the shared lock if we got it
