"""Scenario 1: SIGKILL at every state boundary, inside the copy, backup, commit and its undo, and from outside
at seeded random instants; for deploy and for rollback. The next command recovers, and the invariant holds."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, Project, bump, ok
from invariants import baseline, check

BEFORE_VERIFY_PASSED = ["CHECKING", "BACKING_UP", "STAGING", "VALIDATING", "COMMITTING", "VERIFYING"]
AFTER_VERIFY_PASSED = ["RECORDING", "COMPLETE"]
INSIDE_STEPS = ["backup:1", "backup:5", "copy:1", "copy:2", "commit:1", "commit:2", "commit:3"]


def deployed_with_user_files(project: Project) -> None:
    ok(project.run("deploy"))
    (project.target / "config.local.json").write_text('{"mine": true}')
    (project.target / "logs").mkdir()
    (project.target / "logs" / "server.log").write_text("line\n")
    bump(project)
    (project.source / "templates" / "new.json").write_text('{"new": 1}')


@pytest.mark.parametrize("point", BEFORE_VERIFY_PASSED + AFTER_VERIFY_PASSED + INSIDE_STEPS)
def test_deploy_killed_at_each_point_recovers(project: Project, point: str) -> None:
    deployed_with_user_files(project)
    base = baseline(project)
    proc = project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": point})
    assert proc.returncode == -signal.SIGKILL
    status = ok(project.run("status"))
    assert "recovered interrupted deploy" in status.stdout
    assert project.history()[-1]["event"] == "recovery"
    check(project, base, expect="new" if point in AFTER_VERIFY_PASSED else "old")


@pytest.mark.parametrize("point", ["undo:1", "undo:2", "undo:3", "ROLLING_BACK"])
def test_deploy_killed_while_undoing_its_commit_recovers(project: Project, point: str) -> None:
    """Verify fails, the commit is being undone, and the process dies half-way through the undo."""
    deployed_with_user_files(project)
    (project.source / "workflow" / "extra").mkdir()
    (project.source / "workflow" / "extra" / "deep.py").write_text("X = 1\n")
    (project.source / "templates" / "review.json").unlink()
    project.profile["verify"].append({"type": "command", "run": "exit 1"})
    project.write_config()
    base = baseline(project)
    proc = project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": point})
    assert proc.returncode == -signal.SIGKILL
    check(project, base, expect="old", then_deploy=False)
    assert not (project.target / "workflow" / "extra").exists()  # the directory the commit made is gone too


@pytest.mark.parametrize("point", ["STAGING", "copy:1", "COMMITTING", "commit:1", "VERIFYING", "RECORDING",
                                   "ROLLING_BACK"])
def test_rollback_killed_midway_recovers(project: Project, point: str) -> None:
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    (project.target / "config.local.json").write_text("{}")
    current = project.managed()
    env = {"MCP_DEPLOY_CRASH_AT": point}
    if point == "ROLLING_BACK":  # killed while undoing a rollback whose verify failed
        project.profile["verify"].append({"type": "command", "run": "exit 1"})
        project.write_config()
    proc = project.run("rollback", env=env)
    assert proc.returncode == -signal.SIGKILL
    status = ok(project.run("status"))
    assert "recovered interrupted rollback" in status.stdout
    assert project.leftovers() == []
    if point == "RECORDING":
        assert project.version()["operation"] == "rollback"
    else:
        assert project.managed() == current
    assert (project.target / "config.local.json").read_text() == "{}"


def test_first_deploy_killed_after_the_commit_leaves_no_half_target(project: Project) -> None:
    proc = project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": "VERIFYING"})
    assert proc.returncode == -signal.SIGKILL
    assert project.target.exists()  # committed, not yet verified
    ok(project.run("status"))
    assert not project.target.exists() and project.leftovers() == []
    ok(project.run("deploy"))


def kill_at_random(project: Project, operation: str, rng: random.Random) -> None:
    cmd = [sys.executable, "-m", "invoke", "--search-root", str(REPO), operation, "--config", str(project.config)]
    proc = subprocess.Popen(cmd, cwd=project.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(0.05, 1.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def slow_checks(project: Project) -> None:
    """Widen every window: a slow validator and a slow verify."""
    project.profile["validators"].append({"type": "command", "run": "sleep 0.15"})
    project.profile["verify"].append({"type": "command", "run": "sleep 0.15"})
    project.write_config()


def test_deploy_killed_from_outside_at_20_random_instants(project: Project) -> None:
    slow_checks(project)
    ok(project.run("deploy"))
    (project.target / "config.local.json").write_text('{"mine": true}')
    rng = random.Random(20261124)
    outcomes = set()
    for i in range(20):
        bump(project, text=f"# round {i}\n")
        base = baseline(project)
        kill_at_random(project, "deploy", rng)
        outcomes.add(check(project, base, then_deploy=(i == 19)))
    assert outcomes <= {"old", "new"}


def test_rollback_killed_from_outside_at_20_random_instants(project: Project) -> None:
    slow_checks(project)
    ok(project.run("deploy"))
    v1 = project.managed()
    bump(project)
    ok(project.run("deploy"))
    v2, v2_release = project.managed(), project.version()["release"]
    rng = random.Random(1124)
    for i in range(20):
        kill_at_random(project, "rollback", rng)
        ok(project.run("status"))
        assert project.leftovers() == []
        assert project.managed() in (v1, v2), f"round {i}: torn tree"
        if project.managed() == v1:  # the rollback got through: go forward again for the next round
            ok(project.run("rollback", "--to", v2_release))
            assert project.managed() == v2
    ok(project.run("deploy"))


def test_cleanup_failure_after_verify_keeps_the_new_version_and_is_finished_later(project: Project) -> None:
    """An I/O error while tidying up after a passed verify must not undo the deploy (recovery rolls forward)."""
    import os

    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs inside the stage")
    ok(project.run("deploy"))
    (project.target / "logs").mkdir()
    bump(project)
    base = baseline(project)
    # a mount point inside the stage (EBUSY when record deletes it) stands in for any I/O error
    busy = '"$MCP_DEPLOY_STAGE/../busy"'
    project.profile["verify"].append({"type": "command", "run": f"mkdir -p {busy} && mount -t tmpfs tmpfs {busy}"})
    project.write_config()
    proc = ok(project.run("deploy"))
    assert "could not finish tidying up" in proc.stdout and "the next command completes it" in proc.stdout
    assert project.managed()["workflow/plan.py"] == (project.source / "workflow/plan.py").read_bytes()
    assert (project.state / "journal.json").exists()
    [stage] = project.leftovers()
    subprocess.run(["umount", "-l", str(project.target.parent / stage / "busy")], check=True)
    project.profile["verify"].pop()
    project.write_config()
    assert check(project, base) == "new"
