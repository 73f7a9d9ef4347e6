"""The real MCP Inspector CLI (from npm) against `mcp-deploy mcp`: the README's launch lines work as written,
and what a developer checking the server sees (tools, annotations, summary first, errors on a broken config)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, Project
from mcp_client import SCRIPT

NODE_DIR = REPO / ".ci" / "node"  # ignored by git; .ci/run installs the Inspector here
BINARY = NODE_DIR / "node_modules" / ".bin" / "mcp-inspector"
PINNED = re.search(r"@modelcontextprotocol/inspector@[0-9.]+", (REPO / ".ci" / "run").read_text())


@pytest.fixture(scope="session")
def inspector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Inspector .ci/run installed, else installed the same way now (npm cache in a tmp dir)."""
    assert PINNED, ".ci/run must pin the Inspector it installs"
    if not BINARY.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm not found: install Node.js >= 20 (.ci/run does) to run the MCP Inspector tests")
        cache = tmp_path_factory.mktemp("npm-cache")
        subprocess.run([npm, "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--cache", str(cache),
                        PINNED.group()], check=True, capture_output=True, timeout=600)
    return BINARY


def inspect(inspector: Path, args: list[str], cwd: Path) -> dict[str, Any]:
    proc = subprocess.run([str(inspector), "--cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def readme_lines() -> list[str]:
    return [line for line in (REPO / "README.md").read_text().splitlines()
            if line.startswith("npx @modelcontextprotocol/inspector")]


def test_readme_launch_lines_run_as_written(inspector: Path) -> None:
    lines = readme_lines()
    assert len(lines) == 2 and PINNED
    answers = []
    for line in lines:
        npx, package, *args = shlex.split(line)
        assert (npx, package) == ("npx", PINNED.group())  # README shows the version the tests drive
        assert "--config" not in args  # the Inspector would take it as its own
        answers.append(inspect(inspector, args[1:], REPO))  # after "--cli"; .venv/bin/mcp-deploy, ./deploy.yaml
    tools = {t["name"]: t for t in answers[0]["tools"]}
    assert sorted(tools) == [f"ua_self_{t}" for t in ("backups", "deploy", "diff", "history", "rollback",
                                                       "status")]
    assert tools["ua_self_status"]["annotations"]["readOnlyHint"] is True
    assert tools["ua_self_deploy"]["annotations"]["destructiveHint"] is True
    assert "description" in tools["ua_self_deploy"]["inputSchema"]["properties"]["plan_digest"]
    status = answers[1]
    assert status["content"][0]["text"] == status["structuredContent"]["summary"]


def test_broken_config_is_answered_not_a_closed_connection(inspector: Path, project: Project) -> None:
    project.config.write_text("profiles:\n  default: {source: dev}\n")
    server = [SCRIPT, "mcp", "-c", str(project.config)]
    listing = inspect(inspector, [*server, "--method", "tools/list"], project.root)
    assert "default_status" in [t["name"] for t in listing["tools"]]
    answer = inspect(inspector, [*server, "--method", "tools/call", "--tool-name", "default_status"], project.root)
    assert answer["isError"] is True
    [text] = [c["text"] for c in answer["content"]]
    assert text.startswith(f"{project.config}:2: profiles.default: ") and "is required" in text
    assert answer["structuredContent"]["error_type"] == "ConfigError"
