"""The VERSION file written into each deployed tree, and where a version number comes from."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from .fsutil import atomic_write

from .layout import VERSION_FILE  # noqa: E402  (re-exported: the name lives in layout)


def read_version(tree: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(VERSION data, None), or (None, why it is unusable); (None, None) when there is none."""
    path = tree / VERSION_FILE
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, f"{path}: VERSION is damaged ({exc.__class__.__name__}); the next deploy rewrites it"
    if not isinstance(data, dict) or "deploy_id" not in data:
        return None, f"{path}: VERSION is not an MCP Deploy VERSION file; the next deploy rewrites it"
    return data, None


def deploy_id_of(tree: Path) -> str | None:
    data, _ = read_version(tree)
    return data.get("deploy_id") if data else None


def write_version(tree: Path, data: dict[str, Any]) -> None:
    atomic_write(tree / VERSION_FILE, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def source_version(source: Path) -> str | None:
    """The version the source declares: pyproject.toml, else `git describe`, else None."""
    pyproject = source / "pyproject.toml"
    if pyproject.is_file():
        try:
            meta = tomllib.loads(pyproject.read_text())
            version = meta.get("project", {}).get("version") or meta.get("tool", {}).get("poetry", {}).get("version")
            if version:
                return str(version)
        except (OSError, ValueError):
            pass
    return _git(source, "describe", "--tags", "--always", "--dirty")


def git_state(source: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the source's git checkout, or (None, None) outside git."""
    commit = _git(source, "rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git(source, "status", "--porcelain", "--untracked-files=no", "--", ".")
    return commit, bool(status)


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None
