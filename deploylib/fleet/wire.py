"""The line protocol between controller and agent, and a profile as JSON. Stdlib only: both ends import it.

A message is one line of JSON; one with `"size": N` is followed by exactly N raw bytes (an object's
bytes, zlib-compressed when `"z": true`), so file contents are never base64-inflated. The agent
writes only messages to stdout; anything else it has to say goes to stderr.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import IO, Any

from ..globs import PatternSet, SyncRules
from ..layout import plain_name
from ..manifest import Entry
from ..profile import CheckSpec, Hook, Profile, Retention

PROTOCOL = 1
MAX_LINE = 64 << 20  # a manifest of 100,000 files is ~15 MiB of JSON


class ProtocolError(Exception):
    """The other end sent something that is not a message of this protocol (or hung up)."""


def send(out: IO[bytes], msg: dict[str, Any], payload: bytes | None = None) -> int:
    """Write one message (and its payload); the number of bytes written."""
    if payload is not None:
        msg = {**msg, "size": len(payload)}
    line = json.dumps(msg, separators=(",", ":")).encode() + b"\n"
    out.write(line + payload if payload is not None else line)
    out.flush()
    return len(line) + (len(payload) if payload is not None else 0)


def recv(inp: IO[bytes]) -> tuple[dict[str, Any], bytes | None] | None:
    """The next message and its payload; None at end of input."""
    line = inp.readline(MAX_LINE + 1)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise ProtocolError("truncated or oversized message")
    try:
        msg = json.loads(line)
    except ValueError:
        raise ProtocolError(f"not a message: {line[:120]!r}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
        raise ProtocolError(f"not a message: {line[:120]!r}")
    payload = None
    size = msg.get("size")
    if size is not None:
        if not isinstance(size, int) or size < 0:
            raise ProtocolError("bad payload size")
        payload = inp.read(size)
        if len(payload) != size:
            raise ProtocolError("truncated payload")
    return msg, payload


# --- manifests: sent whole once, then as changes against the release the host has --------------------

def manifest_json(manifest: dict[str, Entry]) -> dict[str, Any]:
    return {p: e.to_json() for p, e in sorted(manifest.items())}


def manifest_digest(manifest: dict[str, Entry]) -> str:
    return hashlib.sha256(json.dumps(manifest_json(manifest), separators=(",", ":")).encode()).hexdigest()


def delta(base: dict[str, Entry], new: dict[str, Entry]) -> dict[str, Any]:
    """What turns `base` into `new`: a redeploy of 1% of 10,000 files sends 100 entries, not 10,000."""
    return {"set": {p: e.to_json() for p, e in sorted(new.items()) if base.get(p) != e},
            "drop": sorted(set(base) - set(new))}


def apply_delta(base: dict[str, Entry], change: dict[str, Any]) -> dict[str, Entry]:
    out = {p: e for p, e in base.items() if p not in set(change["drop"])}
    out.update({p: Entry.from_json(e) for p, e in change["set"].items()})
    return out


# --- a host's profile --------------------------------------------------------------------------

def profile_to_json(profile: Profile) -> dict[str, Any]:
    """What the host needs of an already-validated profile. Paths are the host's (`~` expands there)."""
    rules = profile.rules
    return {
        "name": profile.name, "target": str(profile.target), "backup_dir": str(profile.backup_dir),
        "state_dir": str(profile.state_dir), "log": str(profile.log),
        "include": list(rules.include.patterns), "exclude": list(rules.exclude.patterns),
        "secrets_allowed": list(rules.secrets_allowed.patterns), "setid_allowed": list(rules.setid_allowed.patterns),
        "validators": [_check_to_json(c) for c in profile.validators],
        "verify": [_check_to_json(c) for c in profile.verify],
        "retention": {"keep_last": profile.retention.keep_last, "keep_days": profile.retention.keep_days},
        "deployed_by": profile.deployed_by, "version_file": profile.version_file,
        "hooks": {point: [{"run": h.run, "timeout": h.timeout} for h in hooks]
                  for point, hooks in profile.hooks.items()},
    }


def _check_to_json(spec: CheckSpec) -> dict[str, Any]:
    return {"type": spec.type, "name": spec.name, "files": list(spec.files), "run": spec.run,
            "timeout": spec.timeout, "options": dict(spec.options)}


def host_path(text: str) -> Path:
    """A path from the controller, as this host reads it: `~` is this host's home."""
    path = Path(os.path.expanduser(text))
    if not path.is_absolute():
        raise ValueError(f"{text!r}: a host path must be absolute or start with ~")
    return Path(os.path.normpath(path))


def profile_from_json(data: dict[str, Any]) -> Profile:
    """The host's Profile; its `source` is where pushed objects wait (the agent never reads a dev tree).
    ValueError for what the controller's config check never lets through (a version file that is a path)."""
    name = data["version_file"]
    if not plain_name(name):
        raise ValueError(f"version_file {str(name)[:80]!r} is not a plain file name")
    state_dir = host_path(data["state_dir"])
    return Profile(
        name=data["name"], config_path=state_dir / "fleet-profile.json", source=state_dir / "fleet-source",
        target=host_path(data["target"]), backup_dir=host_path(data["backup_dir"]), state_dir=state_dir,
        log=host_path(data["log"]),
        rules=SyncRules(include=PatternSet(tuple(data["include"])), exclude=PatternSet(tuple(data["exclude"])),
                        secrets_allowed=PatternSet(tuple(data["secrets_allowed"])),
                        setid_allowed=PatternSet(tuple(data["setid_allowed"]))),
        validators=tuple(_check_from_json(c) for c in data["validators"]),
        verify=tuple(_check_from_json(c) for c in data["verify"]),
        retention=Retention(**data["retention"]), deployed_by=data["deployed_by"],
        version_file=data["version_file"], respect_gitignore=False,
        hooks={point: tuple(Hook(h["run"], float(h["timeout"])) for h in hooks)
               for point, hooks in data["hooks"].items()},
    )


def _check_from_json(data: dict[str, Any]) -> CheckSpec:
    return CheckSpec(type=data["type"], name=data["name"], files=tuple(data["files"]), run=data["run"],
                     timeout=float(data["timeout"]), options=dict(data["options"]))
