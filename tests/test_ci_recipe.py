"""The CI recipe in examples/ci runs: its `run:` steps, verbatim, against a real tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO, Project

RECIPE = REPO / "examples" / "ci" / "github-actions.yml"


def steps() -> dict[str, str]:
    workflow = yaml.safe_load(RECIPE.read_text())
    return {s["name"]: s["run"] for s in workflow["jobs"]["deploy"]["steps"] if "run" in s}


def run_step(project: Project, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-c", command], cwd=project.root, capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "MCP_DEPLOY_CONFIG"})


def test_recipe_previews_on_pull_requests_and_deploys_on_main(project: Project) -> None:
    commands = steps()
    assert commands["Install MCP Deploy"] == "python3 -m venv .venv && .venv/bin/pip install -q ./.mcp-deploy"
    # the install step, done: this test's environment is that venv
    os.symlink(Path(sys.executable).parent.parent, project.root / ".venv")

    preview = run_step(project, commands["Preview (pull requests)"])
    assert preview.returncode == 0, preview.stderr
    plan = json.loads((project.root / "plan.json").read_text())
    assert plan["dry_run"] is True and plan["plan"]["counts"]["added"] == 9
    assert not project.target.exists()

    deploy = run_step(project, commands["Deploy (main)"])
    assert deploy.returncode == 0, deploy.stderr
    result = json.loads((project.root / "result.json").read_text())
    assert result["ok"] is True and result["changed"] is True and project.version()["version"] == "0.1.0"

    key = 'KEY = "AKIA' + "Q" * 16 + '"\n'  # built at run time: this file holds no key
    server = project.source / "server.py"
    clean = server.read_text()
    server.write_text(clean + key)  # a pull request that commits a key: its preview fails, not the merge's deploy
    refused = run_step(project, commands["Preview (pull requests)"])
    assert refused.returncode == 1 and "the deploy would be refused: " in refused.stderr
    assert "server.py:" in refused.stderr and "AWS" in refused.stderr
    server.write_text(clean)

    (project.source / "agents.json").write_text("{broken")  # a bad merge: the job must fail, production stays
    failed = run_step(project, commands["Deploy (main)"])
    assert failed.returncode == 1
    result = json.loads((project.root / "result.json").read_text())
    assert result["ok"] is False and result["step"] == "validate"
    assert project.version()["version"] == "0.1.0"
