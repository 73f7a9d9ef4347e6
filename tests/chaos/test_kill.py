"""Scenario 1: SIGKILL at every state boundary, inside the copy, backup and swap, and from outside at
seeded random instants; for deploy and for rollback. The next command recovers, and the invariant holds."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, Project, bump, ok
from invariants import baseline, check

BEFORE_VERIFY_PASSED = ["CHECKING", "BACKING_UP", "STAGING", "VALIDATING", "SWAPPING", "VERIFYING"]
AFTER_VERIFY_PASSED = ["RECORDING", "COMPLETE"]
INSIDE_STEPS = ["backup:1", "backup:5", "copy:1", "copy:2"]


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


@pytest.mark.parametrize("point", ["swap:parked", "swap:moved"])
def test_fallback_swap_killed_between_its_renames_recovers(project: Project, point: str) -> None:
    env = {"MCP_DEPLOY_SWAP_FALLBACK": "1"}
    ok(project.run("deploy", env=env))
    bump(project)
    base = baseline(project)
    proc = project.run("deploy", env={**env, "MCP_DEPLOY_CRASH_AT": point})
    assert proc.returncode == -signal.SIGKILL
    check(project, base, expect="old")


@pytest.mark.parametrize("point", ["STAGING", "copy:1", "SWAPPING", "VERIFYING", "RECORDING", "ROLLING_BACK"])
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


def test_first_deploy_killed_after_the_swap_leaves_no_half_target(project: Project) -> None:
    proc = project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": "VERIFYING"})
    assert proc.returncode == -signal.SIGKILL
    assert project.target.exists()  # swapped in, not yet verified
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

    ok(project.run("deploy"))
    (project.target / "logs").mkdir()
    bump(project)
    base = baseline(project)
    # a mount point inside a stray spare tree (EBUSY when record replaces it) stands in for any I/O error
    spare = project.target.parent / ".server.deploy-spare"
    blocker = f'mkdir -p "{spare}/busy" && mount -t tmpfs tmpfs "{spare}/busy"'
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs inside the old tree")
    project.profile["verify"].append({"type": "command", "run": blocker})
    project.write_config()
    proc = ok(project.run("deploy"))
    assert "could not finish tidying up" in proc.stdout and "the next command completes it" in proc.stdout
    assert project.managed()["workflow/plan.py"] == (project.source / "workflow/plan.py").read_bytes()
    assert (project.state / "journal.json").exists()
    subprocess.run(["umount", "-l", str(spare / "busy")], check=True)
    project.profile["verify"].pop()
    project.write_config()
    assert check(project, base) == "new"
