"""What a long-lived process (the MCP server) keeps in memory between operations, and how it is revalidated.

A one-shot command reads its state files afresh and has nothing to keep. The MCP server answers many
calls, and without this each preview and each deploy re-read the hash cache (tens of thousands of
entries) and re-listed the backup store. Nothing here is trusted without a check that costs a `stat`:

- The hash cache's sections are kept as parsed, together with the identity (device, inode, size, mtime,
  ctime) of the file they came from or were written to; when the file is not that file any more (another
  process saved it), it is read again. The cache can only ever save work: every entry in it is still
  looked up by the (device, inode, size, mtime, ctime) of the file it describes, under the racy-clean rule,
  exactly as when it is read from disk.
- The store's object listing is kept per two-hex-digit directory with that directory's inode and mtime;
  a directory whose mtime moved is listed again, and so is one whose mtime was within the racy window
  when it was listed (an object added or deleted in the same clock tick would not move it).

- Release records (`load_release`), by their bytes: the file is read as always (a fraction of a
  millisecond) and the parse is skipped when the bytes are those last parsed or written there, so a
  record is recalled the moment it is written, and no edit, however timed, is ever missed. Each caller
  gets its own copy; the few most recent records are kept (each deploy writes a new one).

Off unless `enable()` is called (the MCP server does); one-shot commands behave exactly as before.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from .fsutil import stat_identity
from .manifest import RACY_NS

ENABLED = False
_lock = threading.Lock()
_files: dict[str, tuple[tuple[int, int, int, int, int], Any]] = {}
_records: OrderedDict[str, tuple[bytes, Any]] = OrderedDict()  # path -> (bytes, parsed), most recent last
RECORDS_KEPT = 4  # the live record and the few before it: a server lives through many deploys
_indexes: dict[str, dict[str, tuple[tuple[int, int], bool, frozenset[str]]]] = {}


def enable() -> None:
    global ENABLED
    ENABLED = True


def recall(path: Path) -> Any | None:
    """What `remember` kept for `path`, if the file there is still the one it was kept for; else None."""
    if not ENABLED:
        return None
    with _lock:
        kept = _files.get(str(path))
    if kept is None:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return kept[1] if stat_identity(st) == kept[0] else None


def remember(path: Path, value: Any) -> None:
    """Keep `value` as what the file now at `path` says (call right after reading or writing it)."""
    if not ENABLED:
        return
    try:
        st = os.lstat(path)
    except OSError:
        return
    with _lock:
        _files[str(path)] = (stat_identity(st), value)


def recall_record(path: Path, data: bytes) -> Any | None:
    """What `remember_record` kept for `path`, if `data` (the file's bytes, just read) are the bytes it was
    kept with; else None."""
    if not ENABLED:
        return None
    with _lock:
        kept = _records.get(str(path))
        if kept is not None:
            _records.move_to_end(str(path))
    return kept[1] if kept is not None and kept[0] == data else None


def remember_record(path: Path, data: bytes, value: Any) -> None:
    """Keep `value` as what the bytes `data` at `path` say (call right after parsing or writing them)."""
    if not ENABLED:
        return
    with _lock:
        _records[str(path)] = (data, value)
        _records.move_to_end(str(path))
        while len(_records) > RECORDS_KEPT:
            _records.popitem(last=False)


def object_names(object_dir: Path) -> set[str]:
    """Every object name in the store's `objects/xx/` directories, listing again only what may have changed."""
    names: set[str] = set()
    if not object_dir.is_dir():
        return names
    listed_at = time.time_ns()
    with _lock:
        kept = dict(_indexes.get(str(object_dir), {}))
    fresh: dict[str, tuple[tuple[int, int], bool, frozenset[str]]] = {}
    for sub in os.scandir(object_dir):
        if not sub.is_dir():
            continue
        if not ENABLED:  # nothing is kept between calls: the names alone (a frozenset a directory beside them: 4 MB)
            names.update(os.listdir(sub.path))
            continue
        st = sub.stat()
        key = (st.st_ino, st.st_mtime_ns)
        hit = kept.get(sub.name)
        if hit is not None and hit[0] == key and hit[1]:
            fresh[sub.name] = hit
        else:
            fresh[sub.name] = (key, st.st_mtime_ns < listed_at - RACY_NS, frozenset(os.listdir(sub.path)))
        names.update(fresh[sub.name][2])
    if ENABLED:
        with _lock:
            _indexes[str(object_dir)] = fresh
    return names
