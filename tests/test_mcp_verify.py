"""The `mcp` verify check: a real handshake with the deployed server; failures roll the deploy back."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest

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
