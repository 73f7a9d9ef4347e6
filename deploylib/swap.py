"""Exchange two directories atomically: after `exchange(a, b)` each path names the other's tree.

Linux uses renameat2(RENAME_EXCHANGE), macOS renamex_np(RENAME_SWAP): one
syscall, no instant at which either path is missing. Elsewhere (or on
filesystems that refuse it) three plain renames through a parking path are
used; `repair` puts a tree back where it belongs if a crash interrupts them.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from pathlib import Path

from . import faults

AT_FDCWD = -100
RENAME_EXCHANGE = 2  # linux/fs.h
RENAME_SWAP = 2  # macOS sys/stdio.h

FORCE_FALLBACK_ENV = "MCP_DEPLOY_SWAP_FALLBACK"  # tests only: exercise the portable path
_libc = ctypes.CDLL(None, use_errno=True)


def exchange(a: Path, b: Path) -> str:
    """Swap directories `a` and `b`; returns the method used ('renameat2', 'renamex_np', 'fallback')."""
    if not os.environ.get(FORCE_FALLBACK_ENV):
        if sys.platform.startswith("linux") and hasattr(_libc, "renameat2"):
            if _libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
                return "renameat2"
            _unsupported_or_raise(a, b)
        elif sys.platform == "darwin" and hasattr(_libc, "renamex_np"):
            if _libc.renamex_np(os.fsencode(a), os.fsencode(b), RENAME_SWAP) == 0:
                return "renamex_np"
            _unsupported_or_raise(a, b)
    _exchange_by_renames(a, b)
    return "fallback"


def _unsupported_or_raise(a: Path, b: Path) -> None:
    err = ctypes.get_errno()
    if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        raise OSError(err, f"cannot exchange {a} and {b}: {os.strerror(err)}")


def parking_path(a: Path) -> Path:
    return a.with_name(f".{a.name}.parked")


def _exchange_by_renames(a: Path, b: Path) -> None:
    """a -> parked, b -> a, parked -> b. Each rename is atomic; `repair` finishes an interrupted run."""
    parked = parking_path(a)
    os.rename(a, parked)
    faults.point("swap:parked")
    os.rename(b, a)
    faults.point("swap:moved")
    os.rename(parked, b)


def repair(a: Path, b: Path) -> None:
    """Finish a fallback exchange that a crash interrupted, so that both paths exist again."""
    parked = parking_path(a)
    if not parked.exists():
        return
    if not a.exists():  # crashed after the first rename: undo it
        os.rename(parked, a)
    elif not b.exists():  # crashed after the second: complete the exchange
        os.rename(parked, b)
