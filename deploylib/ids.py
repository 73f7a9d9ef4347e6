"""Operation ids: sortable by time and unique even for two operations in the same millisecond."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone


def new_id(prefix: str) -> str:
    """e.g. d-20261124T061443.123456Z-3fa9c1 (microseconds plus 24 random bits)."""
    now = datetime.fromtimestamp(time.time(), timezone.utc)
    return f"{prefix}-{now:%Y%m%dT%H%M%S.%fZ}-{os.urandom(3).hex()}"


def utc_now() -> str:
    return iso(time.time())


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
