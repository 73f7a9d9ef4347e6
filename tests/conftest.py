"""Fixtures: a real source tree, production directory and deploy.yaml in tmp_path, and the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploylib.layout import target_lock_path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "mcp-unified-agents"
MANAGED = ["agents.json", "pyproject.toml", "server.py", "templates/plan.json", "templates/review.json",
           "workflow/__init__.py", "workflow/plan.py", "workflow/registry.py", "workflow/review.py"]


def tree(root: Path) -> dict[str, bytes | str]:
    """Every file under root (symlinks as their target), for exact before/after comparisons."""
    out: dict[str, bytes | str] = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_bytes()
        elif path.is_dir():
            out[rel + "/"] = "dir"
    return out


@dataclass
class Project:
    """A deploy.yaml in tmp_path pointing at a copy of the example and a production directory."""

    root: Path
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> Path:
        return self.root / "dev"

    @property
    def target(self) -> Path:
        return self.root / self.profile["target"]

    @property
    def config(self) -> Path:
        return self.root / "deploy.yaml"

    @property
    def state(self) -> Path:
        return self.root / self.profile["state_dir"]

    @property
    def backups(self) -> Path:
        return self.root / self.profile["backup_dir"]

    @property
    def log(self) -> Path:
        return self.root / "history.jsonl"

    def write_config(self, **overrides: Any) -> None:
        self.profile.update(overrides)
        self.config.write_text(yaml.safe_dump({"profiles": {"default": self.profile}}, sort_keys=False))

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60,
            config: bool = True) -> subprocess.CompletedProcess[str]:
        """The real invoke CLI in a subprocess, with this project's deploy.yaml."""
        cmd = [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args]
        if config:
            cmd += ["--config", str(self.config)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.root,
                              env={**os.environ, **(env or {})})

    def json(self, *args: str, **kw: Any) -> tuple[int, dict[str, Any]]:
        proc = self.run(*args, "--json", **kw)
        return proc.returncode, json.loads(proc.stdout)

    def managed(self) -> dict[str, bytes | str]:
        files = tree(self.target)
        return {k: v for k, v in files.items() if k in MANAGED}

    def history(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def leftovers(self) -> list[str]:
        """Stage directories (or anything else hidden) left beside production; the target's lock file
        stays there on purpose (deleting a lock file lets two processes lock two different files)."""
        lock = target_lock_path(self.target).name
        return sorted(p.name for p in self.target.parent.iterdir() if p.name.startswith(".") and p.name != lock)

    def version(self) -> dict[str, Any]:
        return json.loads((self.target / "VERSION").read_text())


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test (and every CLI it runs) keeps its validated-config marks in a cache of its own,
    outside the project directory whose listing some tests assert."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.fixture
def project(tmp_path: Path) -> Project:
    shutil.copytree(EXAMPLE, tmp_path / "dev")
    shutil.rmtree(tmp_path / "dev" / "workflow" / "__pycache__", ignore_errors=True)
    proj = Project(tmp_path)
    proj.write_config(
        source="dev", target="prod/server", state_dir="state", backup_dir="backups", log="history.jsonl",
        include=["server.py", "agents.json", "pyproject.toml", "workflow/**/*.py", "templates/*.json"],
        exclude=["**/__pycache__/**"],
        validators=[{"type": "json"}, {"type": "python_syntax"}],
        verify=[{"type": "command", "run": f"{sys.executable} server.py --check", "timeout": 30}],
    )
    return proj


FIELDS = {"paths": "path", "sizes": "size", "modes": "mode", "sha256": "sha256"}  # column: entry's field


def manifest_entries(columns: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A state file's manifest (format 3 holds it as columns) as an object per file, the form a test forging
    an entry edits; `manifest_columns` turns it back. Written by hand, not by deploylib: a forgery must not
    depend on the code it attacks."""
    out: dict[str, dict[str, Any]] = {}
    for path, size, mode, sha in zip(*(columns[c] for c in FIELDS)):
        out[path] = {"path": path, "size": size, "mode": mode, "sha256": sha}
        if path in columns["links"]:
            out[path]["link"] = columns["links"][path]
    return out


def manifest_columns(files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    entries = list(files.values())
    columns: dict[str, Any] = {column: [e[field] for e in entries] for column, field in FIELDS.items()}
    columns["links"] = {e["path"]: e["link"] for e in entries if "link" in e}
    return columns


def read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """A snapshot's `<id>.files.json`, an object per file."""
    return manifest_entries(json.loads(path.read_text())["files"])


def write_manifest(path: Path, files: dict[str, dict[str, Any]]) -> None:
    path.write_text(json.dumps({"format": 3, "files": manifest_columns(files)}))


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def bump(project: Project, rel: str = "workflow/plan.py", text: str = "\n# changed\n") -> None:
    path = project.source / rel
    path.write_text(path.read_text() + text)


HOLD_LOCK = """
import sys, time
from pathlib import Path
from deploylib.lock import DeployLock
from deploylib.layout import lock_path
lock = DeployLock(lock_path(Path(sys.argv[1])), "deploy")
lock.acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold_lock(project: Project, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the deployment lock for `seconds` (returns once it holds it)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(project.state), str(seconds)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc
