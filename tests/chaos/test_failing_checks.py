"""Scenario 6: failing validators and verify commands: undone, exit 1, the step and its output in the
message and in the history."""

from __future__ import annotations

import pytest

from conftest import Project, bump, ok, tree
from invariants import baseline, check


@pytest.mark.parametrize("where", ["validators", "verify"])
def test_failing_command_is_undone_and_reported(project: Project, where: str) -> None:
    ok(project.run("deploy"))
    before = tree(project.target)
    project.profile[where] = project.profile[where] + [
        {"type": "command", "name": "lint", "run": "echo 'checking...'; echo 'lint: E999 bad thing' >&2; exit 2"}]
    project.write_config()
    bump(project)
    base = baseline(project)
    proc = project.run("deploy", "--verbose")
    step = "validate" if where == "validators" else "verify"
    assert proc.returncode == 1
    assert f"deploy failed at {step}: " in proc.stderr
    assert "exited 2: lint: E999 bad thing" in proc.stderr  # the cause, on the one-line message
    assert "checking..." in proc.stderr  # --verbose adds the full output
    assert tree(project.target) == before and project.leftovers() == []
    last = project.history()[-1]
    assert last["event"] == "failure" and last["failed_step"] == step
    assert "lint: E999 bad thing" in last["error"] and "checking..." in last["detail"]
    project.profile[where].pop()
    project.write_config()
    check(project, base, expect="old")


def test_timeout_is_a_failure_with_a_clear_message(project: Project) -> None:
    ok(project.run("deploy"))
    project.profile["verify"] = [{"type": "command", "run": "sleep 30", "timeout": 0.5}]
    project.write_config()
    bump(project)
    proc = project.run("deploy")
    assert proc.returncode == 1 and "`sleep 30` timed out after 0.5s" in proc.stderr
