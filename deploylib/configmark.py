"""The validated mark: a deploy.yaml whose exact bytes passed this exact schema, with what they parse to.

A config is read by every command and edited far less often. Validation and parsing are pure
functions of (schema, text), so a pass is remembered in the user's cache: the next run with the
same bytes imports neither jsonschema nor PyYAML (together half of a status's start-up). The
mark's first line is a hash of the schema, the config text and the parsed data stored after it,
so any edit to either file, or to the stored data, makes it a mark of something else. It is
trusted only as far as its owner: a file of this user's, writable by nobody else, read without
following links. Anything else is ignored, and the config is parsed and validated as if no mark
existed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from .fsutil import atomic_write, open_regular

FORMAT = "2"  # in every key: a mark of another format (or parser) never passes; change it when parsing does
MAX_MARK_BYTES = 4 << 20  # a mark holds a config of at most 1 MiB, parsed; anything larger is not one


class Mark(NamedTuple):
    key: str  # key_of(schema, text, data) of what passed
    data: str  # the parsed config as JSON; "" when JSON could not hold it exactly (it is parsed each time)


def key_of(schema_text: str, text: str, data: str) -> str:
    return hashlib.sha256(f"{FORMAT}\0{schema_text}\0{text}\0{data}".encode()).hexdigest()


def location(config: Path) -> Path | None:
    """Where the mark of `config` is kept (one per config path), or None without a usable cache directory."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    name = hashlib.sha256(os.fsencode(config)).hexdigest()[:32]  # the path's bytes: it may not be UTF-8
    return Path(base) / "mcp-deploy" / "validated" / name


def recall(path: Path) -> Mark | None:
    """The mark at `path`, if it is a regular file of this user's own that no one else may write."""
    try:
        fd = open_regular(path)  # a link, a directory or a FIFO there is not a mark of ours
    except OSError:
        return None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)  # another's file, or one others may write
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            raw = f.read(MAX_MARK_BYTES + 1)
        key, _, data = raw.decode().partition("\n")
    except (OSError, UnicodeDecodeError):
        return None
    if len(key) != 64 or len(raw) > MAX_MARK_BYTES:
        return None
    return Mark(key, data)


def passed(mark: Mark | None, schema_text: str, text: str) -> bool:
    """Whether `mark` is the mark of these exact config bytes, checked against this exact schema."""
    return mark is not None and mark.key == key_of(schema_text, text, mark.data)


def remember(path: Path, schema_text: str, text: str, data: Any) -> None:
    """Mark `text` as valid, with its data where JSON gives it back exactly (a YAML date or a number as a
    key would come back changed: such a config keeps its schema pass and is parsed each time)."""
    dumped = ""
    try:
        candidate = _dumped(data, MAX_MARK_BYTES - 65)
        if candidate is not None and json.loads(candidate) == data:
            dumped = candidate
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, f"{key_of(schema_text, text, dumped)}\n{dumped}".encode(), mode=0o600)
    except OSError:
        pass  # an unwritable cache only costs validating again next time


def _dumped(data: Any, limit: int) -> str | None:
    """`data` as JSON, or None when that is longer than `limit` characters: YAML aliases (anchors in x- keys)
    expand a small config into as many copies as it names, and a mark is never read beyond MAX_MARK_BYTES;
    encoded a piece at a time so that a huge expansion is given up early, never held whole."""
    pieces: list[str] = []
    size = 0
    for piece in json.JSONEncoder(allow_nan=False).iterencode(data):
        size += len(piece)
        if size > limit:
            return None
        pieces.append(piece)
    return "".join(pieces)
