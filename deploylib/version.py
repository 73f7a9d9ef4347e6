"""The VERSION file written into each deployed tree, and where a version number comes from."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .fsutil import atomic_write, read_state
from .ids import parse_time
from .jsonfile import loads_state, why
from .layout import VERSION_FILE, is_op_id  # VERSION_FILE re-exported: the name lives in layout


def read_version(tree: Path, name: str = VERSION_FILE) -> tuple[dict[str, Any] | None, str | None]:
    """(VERSION data, None), or (None, why it is unusable); (None, None) when there is none."""
    path = tree / name
    try:
        data = loads_state(read_state(path))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, f"{path}: VERSION is damaged ({why(exc)}); the next deploy rewrites it"
    if not isinstance(data, dict) or "deploy_id" not in data:
        return None, f"{path}: VERSION is not an MCP Deploy VERSION file; the next deploy rewrites it"
    if not _well_formed(data):
        return None, f"{path}: VERSION is damaged (a field has the wrong type); the next deploy rewrites it"
    return data, None


def _well_formed(data: dict[str, Any]) -> bool:
    """The fields other code relies on have the types the tool writes (ids, times, strings)."""
    try:
        if data.get("deployed") is not None:
            parse_time(data["deployed"])
    except (TypeError, ValueError, AttributeError):
        return False
    return (is_op_id(data["deploy_id"]) and all(data.get(key) is None or isinstance(data[key], str)
                                                 for key in ("version", "operation", "profile", "release", "git_commit")))


def write_version(tree: Path, data: dict[str, Any], name: str = VERSION_FILE) -> None:
    atomic_write(tree / name, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def source_version(source: Path, git_dir: Path | None = None, commit: str = "HEAD") -> str | None:
    """The version the source declares: pyproject.toml, else `git describe`, else None.

    `git_dir` and `commit` describe an exported commit (deploy --ref) rather than the checkout at `source`.
    """
    pyproject = source / "pyproject.toml"
    if pyproject.is_file():
        import tomllib  # only a source with a pyproject.toml needs the TOML parser

        try:
            meta = tomllib.loads(pyproject.read_text())
            version = meta.get("project", {}).get("version") or meta.get("tool", {}).get("poetry", {}).get("version")
            if version:
                return str(version)
        except (OSError, ValueError):
            pass
    if git_dir is not None:
        return _git(git_dir, "describe", "--tags", "--always", commit)
    if outside_git(source):
        return None
    return _git(source, "describe", "--tags", "--always", "--dirty")


def outside_git(path: Path) -> bool:
    """True when no git repository can contain `path`: no `.git` (and no bare repository) in it or any of
    its parents, and no GIT_DIR / GIT_WORK_TREE in the environment. Lets a deploy from a plain directory
    skip the git subprocesses that could only fail (a few milliseconds each)."""
    if os.environ.get("GIT_DIR") or os.environ.get("GIT_WORK_TREE"):
        return False
    for directory in (path, *path.parents):
        if os.path.lexists(directory / ".git") or (os.path.isfile(directory / "HEAD")
                                                   and os.path.isdir(directory / "objects")):
            return False
    return True


def git_state(source: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the source's git checkout, or (None, None) outside git."""
    if outside_git(source):
        return None, None
    commit = _git(source, "rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git(source, "status", "--porcelain", "--untracked-files=no", "--", ".")
    return commit, bool(status)


def _git(cwd: Path, *args: str) -> str | None:
    import subprocess  # here: a source outside git never asks

    try:
        # GIT_OPTIONAL_LOCKS=0: `git status` must not refresh (write) the user's index under them
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10,
                             env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None
