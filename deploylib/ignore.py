"""Files that are never part of a release: tool and editor debris (built in), and what git ignores.

`include: ["**"]` must not sweep a repository's `.git/objects`, a virtualenv or an editor's
swap file into production, so those are never managed, whatever the globs say, and the walk
does not even enter such directories. Git's own ignore rules are git's: they are asked of
`git check-ignore`, once per scan, never reimplemented here.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError, PreflightFailed

# Globs (see globs.py) of what no deploy ever manages.
NEVER_MANAGED = (
    "**/.git", "**/.git/", "**/.hg/", "**/.svn/",  # version control (.git is a file in worktrees, submodules)
    "**/.venv/", "**/__pycache__/", "**/node_modules/",  # environments, bytecode, packages
    "**/.DS_Store",  # macOS Finder
    "**/.pytest_cache/", "**/.mypy_cache/", "**/.ruff_cache/", "**/.tox/", "**/.nox/",  # test and lint caches
    "**/.coverage", "**/.coverage.*", "**/htmlcov/",  # coverage data (and its parallel-mode files), reports
    "**/.*.sw[a-p]", "**/*~", "**/.#*", "**/#*#",  # vim swap files, emacs backups, locks and autosaves
)
VENV_MARKER = "pyvenv.cfg"  # every virtualenv has one at its top (PEP 405), whatever its name


def in_work_tree(root: Path) -> bool:
    """Whether `root` lies inside a git work tree (and git is there to say so)."""
    from .version import outside_git

    if outside_git(root):
        return False
    import subprocess  # here: a tree outside git never needs it

    try:
        out = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=root, capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "true"


def use_gitignore(root: Path, setting: bool | None, config: Path) -> bool:
    """respect_gitignore: unset means "when the source is a git work tree"; true outside one is a mistake."""
    if setting is False:
        return False
    inside = in_work_tree(root)
    if setting and not inside:
        raise ConfigError(f"{config}: respect_gitignore is true but the source {root} is not in a git work tree "
                          "(or git is not installed); set respect_gitignore: false or deploy from a checkout")
    return inside


def git_ignored(root: Path, paths: list[str]) -> set[str]:
    """Which of `paths` (relative to `root`) git ignores, in one `git check-ignore` call.

    Tracked files are never reported (git does not ignore what it tracks), as in `git status`.
    """
    if not paths:
        return set()
    import subprocess

    data = b"".join(os.fsencode(p) + b"\0" for p in paths)
    try:
        out = subprocess.run(["git", "check-ignore", "--stdin", "-z"], cwd=root, input=data, capture_output=True,
                             timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PreflightFailed(f"{root}: `git check-ignore` could not run ({exc}); fix git, or set "
                              "respect_gitignore: false in deploy.yaml") from None
    if out.returncode not in (0, 1):  # 1: nothing ignored
        why = out.stderr.decode(errors="replace").strip().splitlines()
        raise PreflightFailed(f"{root}: `git check-ignore` failed ({why[-1] if why else f'exit {out.returncode}'}); "
                              "fix the repository, or set respect_gitignore: false in deploy.yaml")
    return {os.fsdecode(p) for p in out.stdout.split(b"\0") if p}
