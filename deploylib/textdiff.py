"""Unified diffs of two versions of one file: pending changes (`diff`) and releases (`diff --release`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from .fsutil import open_regular
from .report import shown

MAX_DIFF_BYTES = 1024 * 1024  # larger files are listed, not diffed: a diff nobody reads costs memory


class Side(NamedTuple):
    """One version of a file: where its bytes are (None: absent on this side) and how headers name it."""

    label: str  # "production", "source", a release or snapshot id, "live"
    path: Path | None
    link: str | None = None  # a symlink's target, when the link is recorded rather than on disk (snapshots)


def _lines(side: Side) -> list[str] | None:
    """The text as lines ([] when absent, '-> target' for a link), or None when binary or too large."""
    if side.link is not None:
        return [f"-> {side.link}\n"]
    if side.path is None:
        return []
    if side.path.is_symlink():
        return [f"-> {os.readlink(side.path)}\n"]
    try:
        with open(open_regular(side.path), "rb") as f:  # never read through a link swapped in since
            data = f.read(MAX_DIFF_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_DIFF_BYTES or b"\0" in data[:8192]:  # git's test for binary
        return None
    try:
        return data.decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def unified(old: Side, new: Side, rel: str) -> str | None:
    """The unified diff of `rel` from `old` to `new`, or None when either side is binary or too large."""
    rel = shown(rel)  # the name in the headers is escaped, so each header stays one line
    a, b = _lines(old), _lines(new)
    if a is None or b is None:
        return None
    present = (old.path is not None or old.link is not None, new.path is not None or new.link is not None)
    import difflib  # here: only a diff that shows text needs it

    lines = difflib.unified_diff(a, b, f"{old.label}/{rel}" if present[0] else "/dev/null",
                                 f"{new.label}/{rel}" if present[1] else "/dev/null")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
