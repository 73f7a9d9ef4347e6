"""What one profile of deploy.yaml resolves to, and `clip` for quoting users' values: stdlib only.

`config` builds these from deploy.yaml (with PyYAML and jsonschema); the fleet agent that runs on a
remote host gets them as JSON from the controller and must not need either (`fleet.wire`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .globs import SyncRules
from .layout import VERSION_FILE

DEFAULT_TIMEOUT = 60.0
MAX_ECHO = 200  # characters of any one user value quoted in a message


@dataclass(frozen=True)
class CheckSpec:
    """One validator or verify check as written in deploy.yaml, paths resolved."""

    type: str
    name: str
    files: tuple[str, ...] = ()
    schema: Path | None = None
    run: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    options: Mapping[str, object] = field(default_factory=dict)


HOOK_POINTS = ("before_commit", "after_commit", "after_rollback", "on_failure")
NOTIFY_EVENTS = ("success", "failure", "rollback")
DEFAULT_NOTIFY_TIMEOUT = 10.0


@dataclass(frozen=True)
class Hook:
    """One command of a hook point (`hooks:` in deploy.yaml)."""

    run: str
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class Notifier:
    """One `notify:` entry: a webhook (`url`, with `headers`) or a command (`run`), and the events it wants."""

    type: str  # webhook | command
    on: tuple[str, ...] = NOTIFY_EVENTS
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    run: str | None = None
    timeout: float = DEFAULT_NOTIFY_TIMEOUT


@dataclass(frozen=True)
class Retention:
    keep_last: int = 10
    keep_days: float | None = None


@dataclass(frozen=True)
class Profile:
    """Everything one deployment needs to know, with absolute paths."""

    name: str
    config_path: Path
    source: Path
    target: Path
    backup_dir: Path
    state_dir: Path
    log: Path
    rules: SyncRules
    validators: tuple[CheckSpec, ...] = ()
    verify: tuple[CheckSpec, ...] = ()
    retention: Retention = Retention()
    deployed_by: str = ""
    tool_prefix: str = ""  # MCP tool names: <prefix>deploy, <prefix>status, ... (default: "<profile>_")
    version_file: str = VERSION_FILE  # written into production's top directory by every deploy
    respect_gitignore: bool | None = None  # None: when the source is in a git work tree
    hooks: Mapping[str, tuple[Hook, ...]] = field(default_factory=dict)  # by point; absent = none
    notify: tuple[Notifier, ...] = ()


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """A user's value as quoted in a message: control characters escaped (so it stays one line)
    and at most `limit` characters (so a huge value cannot flood the terminal or a CI log)."""
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text)} characters)"
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return text
