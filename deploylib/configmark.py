"""The validated mark: a deploy.yaml whose exact bytes passed this exact schema, with what they parse to.

A config is read by every command and edited far less often. Validation and parsing are pure
functions of (schema, text), so a pass is remembered in the user's cache by the hash of both:
the next run with the same bytes imports neither jsonschema nor PyYAML (together half of a
status's start-up). The mark is trusted only as far as its owner: a file of this user's,
writable by nobody else, read without following links. Anything else is ignored, and the
config is parsed and validated as if no mark existed.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any, NamedTuple

from .fsutil import atomic_write

MAX_MARK_BYTES = 4 << 20  # a mark holds a config of at most 1 MiB, parsed; anything larger is not one


class Mark(NamedTuple):
    key: str  # sha256 of the schema and the config text that passed
    data: Any  # what that text parses to; None: a mark of an older version, or data JSON cannot hold


def key_of(schema_text: str, text: str) -> str:
    return hashlib.sha256(f"{schema_text}\0{text}".encode()).hexdigest()


def location(config: Path) -> Path | None:
    """Where the mark of `config` is kept (one per config path), or None without a usable cache directory."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    name = hashlib.sha256(str(config).encode()).hexdigest()[:32]
    return Path(base) / "mcp-deploy" / "validated" / name


def recall(path: Path) -> Mark | None:
    """The mark at `path`, if it is this user's own, writable by no one else, and well formed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)  # a directory, a FIFO, another's file or one others may write: not a mark of ours
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            raw = f.read(MAX_MARK_BYTES + 1)
    except OSError:
        return None
    key, _, rest = raw.partition(b"\n")
    if len(key) != 64 or len(raw) > MAX_MARK_BYTES:
        return None
    try:
        data = json.loads(rest) if rest else None
        return Mark(key.decode("ascii"), data)
    except (ValueError, RecursionError):  # damaged: as if there were none
        return None


def remember(path: Path, key: str, data: Any) -> None:
    """Write the mark; the data only where JSON gives it back exactly (a YAML date or a number as a key
    would come back changed: such a config keeps its schema pass and is parsed each time)."""
    text = key
    try:
        dumped = json.dumps(data, allow_nan=False)
        if json.loads(dumped) == data:
            text += "\n" + dumped
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text.encode(), mode=0o600)
    except OSError:
        pass  # an unwritable cache only costs validating again next time
