"""A fleet project: a source tree and a deploy.yaml whose profile deploys to test hosts over ssh,
the real CLI run against it, and exact views of what each host holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from . import hosts

REPO = Path(__file__).resolve().parent.parent.parent
SOURCE = {
    "server.py": b"print('serving')\n",
    "agents.json": b'{"agents": ["architect", "qa"]}\n',
    "workflow/plan.py": b"PLAN = 1\n",
    "workflow/review.py": b"REVIEW = 1\n",
    "templates/plan.json": b'{"steps": []}\n',
}
# verify fails on a host where /srv/fail-verify exists (the test puts it there), so one host can fail
# alone, and waits while /srv/hold exists, so a test can act while a host is committed, not yet confirmed
VERIFY = "test ! -e /srv/fail-verify && while [ -e /srv/hold ]; do sleep 0.05; done"


def tree(root: Path) -> dict[str, bytes | str]:
    """Every file under root (symlinks as their target), for exact comparisons."""
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


class FleetProject:
    def __init__(self, root: Path, fleet: hosts.Fleet, **profile: Any) -> None:
        self.root = root
        self.fleet = fleet
        self.source = root / "src"
        self.ctl = root / "controller"
        self.write_source(SOURCE)
        self.profile: dict[str, Any] = {
            "source": str(self.source), "target": fleet.target,
            "include": ["server.py", "agents.json", "workflow/**/*.py", "templates/*.json"],
            "validators": [{"type": "json"}, {"type": "python_syntax"}],
            "verify": [{"type": "command", "run": VERIFY, "timeout": 30}],
            "hosts": [h.name for h in fleet],
            "ssh": {"config": str(fleet.ssh_config)},
            "controller_state_dir": str(self.ctl),
            "rollout": {"confirm_timeout": 6},
        }
        self.others: dict[str, dict[str, Any]] = {}  # more profiles in the same deploy.yaml, by name
        self.write_config(**profile)

    @property
    def config(self) -> Path:
        return self.root / "deploy.yaml"

    def write_config(self, **overrides: Any) -> None:
        self.profile.update(overrides)
        self.config.write_text(yaml.safe_dump({"profiles": {"fleet": self.profile, **self.others}}, sort_keys=False))

    def add_profile(self, name: str, **overrides: Any) -> None:
        """Another profile beside `fleet`: a copy of it with overrides (its own hosts, targets, controller)."""
        self.others[name] = {**self.profile, **overrides}
        self.write_config()

    def write_source(self, files: dict[str, bytes]) -> None:
        for rel, data in files.items():
            path = self.source / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def expected(self) -> dict[str, bytes]:
        """The managed files a host must hold after a deploy of the source as it is now."""
        return {p.relative_to(self.source).as_posix(): p.read_bytes() for p in sorted(self.source.rglob("*"))
                if p.is_file()}

    def cli(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
            profile: str = "fleet") -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "deploylib", *args, "--config", str(self.config), "--profile", profile]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.root,
                              env={**os.environ, **(env or {})})

    def popen(self, *args: str) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "deploylib", *args, "--config", str(self.config), "--profile", "fleet"]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.root)

    def json(self, *args: str, **kw: Any) -> tuple[int, dict[str, Any]]:
        proc = self.cli(*args, "--json", **kw)
        try:
            return proc.returncode, json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"exit {proc.returncode}, not JSON:\n{proc.stdout}\n{proc.stderr}") from None

    # -- what a host holds --

    def managed(self, host: hosts.Host) -> dict[str, bytes | str]:
        """Production's files on a host, without VERSION and the user's files."""
        return {k: v for k, v in tree(host.root).items()
                if k != "VERSION" and not k.endswith("/") and not k.startswith("user")}

    def version(self, host: hosts.Host) -> dict[str, Any] | None:
        path = host.root / "VERSION"
        return json.loads(path.read_text()) if path.exists() else None

    def leftovers(self, host: hosts.Host) -> list[str]:
        """Stages left beside production on a host."""
        parent = host.root.parent
        return sorted(p.name for p in parent.iterdir() if ".deploy-" in p.name and p.name.split(".deploy-")[1][:2]
                      in ("d-", "r-"))

    def journal(self, host: hosts.Host) -> Path:
        return host.root.parent / f".{host.root.name}.deploy-state" / "journal.json"

    def history(self) -> list[dict[str, Any]]:
        log = self.ctl / "history.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def plant_user_files(fleet: hosts.Fleet) -> dict[str, dict[str, bytes | str]]:
    """A user's file and directory in every host's production, never to be touched."""
    before = {}
    for host in fleet:
        host.root.mkdir(parents=True, exist_ok=True)
        (host.root / "user.env").write_bytes(b"SECRET=" + host.name.encode() + b"\n")
        (host.root / "userdata").mkdir(exist_ok=True)
        (host.root / "userdata" / "db.sqlite").write_bytes(os.urandom(64))
        before[host.name] = {k: v for k, v in tree(host.root).items() if k.startswith("user")}
    return before


def user_files(host: hosts.Host) -> dict[str, bytes | str]:
    return {k: v for k, v in tree(host.root).items() if k.startswith("user")}


def wait_for(what: Callable[[], object], timeout: float = 30, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or what}")
        time.sleep(0.05)


def committed(proj: FleetProject, host: hosts.Host, marker: bytes) -> bool:
    """The host's production has the new server.py (its commit ran), whatever happens next."""
    path = host.root / "server.py"
    return path.exists() and path.read_bytes() == marker
