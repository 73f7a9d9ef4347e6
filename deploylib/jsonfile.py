"""Parsing the JSON of MCP Deploy's own state files, which anyone with access to the disk may have edited.

`json.loads` alone accepts what no state file the tool writes contains, and
some of it turns into a crash far from the file it came from:

- a duplicate key (`{"state": "STAGING", ..., "state": "RECORDING"}`): the last one
  silently wins, so two readers of one file could disagree on what it says;
- `NaN`, `Infinity`: not JSON, and `int(Infinity)` is an OverflowError;
- 100,000 nested `[`: a RecursionError, which no reader expects;
- an integer of more than 4300 digits, bytes that are not UTF-8: ValueErrors already.

`loads_state` turns every one of these into a ValueError, which each reader
already reports as "damaged", naming its file.
"""

from __future__ import annotations

import json
from typing import Any


class DuplicateKey(ValueError):
    """The bytes parse, but say two things: a reader that trusts either one could be misled."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(f"duplicate key {key[:40]!r}")
            seen.add(key)
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads_state(data: bytes | str) -> Any:
    """Parse a state file's bytes; ValueError for anything the tool would never have written."""
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def why(exc: BaseException) -> str:
    """A short reason for a message: ours and Python's own ValueErrors say it, a decode error by its kind."""
    if type(exc) in (ValueError, DuplicateKey):
        return str(exc)[:80]
    return exc.__class__.__name__
