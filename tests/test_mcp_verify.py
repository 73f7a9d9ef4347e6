"""The `mcp` verify check: a real handshake with the deployed server; failures roll the deploy back."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import EXAMPLE as REPO_EXAMPLE
from conftest import Project, ok, tree

HANGS_WITH_A_CHILD = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", *sys.argv[1:]])
time.sleep(600)
"""


def survivors(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line carries the marker."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "cmdline").read_bytes():
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(proc.name))
        except OSError:
            continue
    return found


def use_mcp_check(project: Project, marker: str, expect: list[str], timeout: float = 20) -> None:
    project.write_config(
        validators=[{"type": "json"}],  # no python_syntax: let verify meet the broken server
        verify=[{"type": "mcp", "name": "handshake", "command": sys.executable, "args": ["server.py", marker],
                 "expect_tools": expect, "timeout": timeout}],
    )


def test_a_good_server_passes_the_handshake(project: Project) -> None:
    marker = f"--marker={uuid.uuid4()}"
    use_mcp_check(project, marker, ["architect", "qa", "backend"])
    proc = ok(project.run("deploy", "--json"))
    assert '"name": "handshake"' in proc.stdout and '"ok": true' in proc.stdout
    time.sleep(0.2)
    assert survivors(marker) == []


BROKEN = {
    "syntax error": ("server.py", "def main(:\n", "failed the MCP handshake", "SyntaxError"),
    "exits at once": ("server.py", "import sys\nsys.exit(3)\n", "failed the MCP handshake", ""),
    "never answers": ("server.py", HANGS_WITH_A_CHILD, "did not complete the MCP handshake within 2s", ""),
    "missing tool": ("agents.json", None, "lacks expected tool(s) deployer", "it offers architect, qa, backend"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_server_fails_verify_and_is_rolled_back(project: Project, case: str) -> None:
    marker = f"--marker={uuid.uuid4()}"
    use_mcp_check(project, marker, ["architect"], timeout=2)
    ok(project.run("deploy"))
    (project.target / "config.local.json").write_text('{"mine": 1}')
    before = tree(project.target)
    rel, text, message, detail = BROKEN[case]
    expect = ["architect", "deployer"] if case == "missing tool" else ["architect"]
    use_mcp_check(project, marker, expect, timeout=2)
    if text is None:
        (project.source / rel).write_text((project.source / rel).read_text() + "\n")
    else:
        (project.source / rel).write_text(text)
    started = time.monotonic()
    proc = project.run("deploy", "--verbose")
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - started < 30
    assert "deploy failed at verify: verify handshake:" in proc.stderr and message in proc.stderr
    assert detail in proc.stderr
    assert tree(project.target) == before
    assert project.leftovers() == []
    time.sleep(0.3)
    assert survivors(marker) == [], f"{case}: processes left behind"


def test_a_missing_command_fails_verify_cleanly(project: Project) -> None:
    ok(project.run("deploy"))
    project.write_config(verify=[{"type": "mcp", "command": "no-such-mcp-server-binary"}])
    (project.source / "templates" / "plan.json").write_text('{"title": "Plan 2"}')
    proc = project.run("deploy")
    assert proc.returncode == 1
    assert "`no-such-mcp-server-binary` could not be started" in proc.stderr
    assert "Traceback" not in proc.stderr


class Watch:
    """Reads a production file every 5 ms in a thread, noting when it holds the given bytes: how long a
    broken build is live, as a reader of production sees it."""

    def __init__(self, path: Path, content: bytes) -> None:
        self.path, self.content = path, content
        self.seen: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                if self.path.read_bytes() == self.content:
                    self.seen.append(time.monotonic())
            except OSError:
                pass
            time.sleep(0.005)

    def live_seconds(self) -> float:
        self.stop.set()
        self.thread.join()
        return self.seen[-1] - self.seen[0] if self.seen else 0.0


def use_staged_mcp_check(project: Project, marker: str, timeout: float, stage: bool) -> None:
    project.write_config(
        validators=[{"type": "json"}],
        verify=[{"type": "mcp", "name": "handshake", "command": sys.executable, "args": ["server.py", marker],
                 "expect_tools": ["architect"], "timeout": timeout, "stage": stage}],
    )


def test_a_staged_check_runs_before_the_commit_and_verify_confirms(project: Project) -> None:
    use_staged_mcp_check(project, f"--marker={uuid.uuid4()}", 20, stage=True)
    code, result = project.json("deploy")
    assert code == 0
    handshakes = [c for c in result["checks"] if c["name"] == "handshake"]
    assert [(c.get("stage", False), c["ok"]) for c in handshakes] == [(True, True), (False, True)]


@pytest.mark.parametrize("case", ["syntax error", "never answers"])
def test_a_staged_check_keeps_a_broken_server_from_ever_going_live(project: Project, case: str) -> None:
    marker = f"--marker={uuid.uuid4()}"
    use_staged_mcp_check(project, marker, 2, stage=True)
    ok(project.run("deploy"))
    (project.target / "config.local.json").write_text('{"mine": 1}')
    before = tree(project.target)
    broken = BROKEN[case][1].encode()
    (project.source / "server.py").write_bytes(broken)
    watch = Watch(project.target / "server.py", broken)
    proc = project.run("deploy", "--verbose")
    assert watch.live_seconds() == 0 and watch.seen == []  # not for an instant
    assert proc.returncode == 1
    assert "deploy failed at validate: staged verify handshake: " in proc.stderr
    assert BROKEN[case][2] in proc.stderr
    assert tree(project.target) == before and project.leftovers() == []
    assert project.history()[-1]["failed_step"] == "validate"
    time.sleep(0.3)
    assert survivors(marker) == []


def test_without_stage_a_hanging_build_is_live_for_the_verify_timeout(project: Project) -> None:
    """The number the README gives: checked after the commit only, a server that hangs is what production
    holds from the commit until the undo, a little over the check's timeout."""
    marker = f"--marker={uuid.uuid4()}"
    use_staged_mcp_check(project, marker, 2, stage=False)
    ok(project.run("deploy"))
    broken = HANGS_WITH_A_CHILD.encode()
    (project.source / "server.py").write_bytes(broken)
    watch = Watch(project.target / "server.py", broken)
    proc = project.run("deploy")
    live = watch.live_seconds()
    assert proc.returncode == 1 and "deploy failed at verify: verify handshake" in proc.stderr
    assert 2 <= live < 10, live
    assert (project.target / "server.py").read_bytes() == (REPO_EXAMPLE / "server.py").read_bytes()
