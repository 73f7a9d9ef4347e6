"""The lock against real concurrent processes, and recovery after real SIGKILLs."""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, Project, bump, ok

HOLD = """
import sys, time
from pathlib import Path
from deploylib.lock import DeployLock
lock = DeployLock(Path(sys.argv[1]), "deploy")
lock.acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold_lock(project: Project, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(project.state), str(seconds)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_second_deploy_fails_at_once_naming_the_holder(project: Project) -> None:
    holder = hold_lock(project, 60)
    try:
        started = time.monotonic()
        proc = project.run("deploy")
        assert time.monotonic() - started < 10
        assert proc.returncode == 3
        assert f"pid {holder.pid} on {socket.gethostname()}, running deploy since 20" in proc.stderr
        assert "--wait" in proc.stderr
        assert not project.target.exists()
        code, status = project.json("status")
        assert status["lock"]["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel dropped the dead holder's lock: no stale lock blocks the next deploy
    ok(project.run("deploy"))


def test_wait_serialises_behind_the_holder(project: Project) -> None:
    holder = hold_lock(project, 1.5)
    proc = project.run("deploy", "--wait", "30")
    holder.wait()
    ok(proc)
    assert project.version()["version"] == "0.1.0"
    assert project.run("deploy", "--wait", "soon").returncode == 2


STATES_BEFORE_VERIFY_PASSED = ["CHECKING", "BACKING_UP", "STAGING", "VALIDATING", "SWAPPING", "VERIFYING"]
STATES_AFTER_VERIFY_PASSED = ["RECORDING", "COMPLETE"]


@pytest.mark.parametrize("state", STATES_BEFORE_VERIFY_PASSED + STATES_AFTER_VERIFY_PASSED)
def test_deploy_killed_in_each_state_is_recovered_by_status(project: Project, state: str) -> None:
    ok(project.run("deploy"))
    (project.target / "config.local.json").write_text('{"mine": true}')
    old = project.managed()
    bump(project)
    proc = project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": state})
    assert proc.returncode == -signal.SIGKILL
    assert (project.state / "journal.json").exists()
    status = ok(project.run("status"))
    assert "recovered interrupted deploy" in status.stdout
    expected_new = state in STATES_AFTER_VERIFY_PASSED
    managed = project.managed()
    if expected_new:
        assert managed["workflow/plan.py"] == (project.source / "workflow/plan.py").read_bytes()
    else:
        assert managed == old
    assert (project.target / "config.local.json").read_text() == '{"mine": true}'
    assert project.leftovers() == []
    assert not (project.state / "journal.json").exists()
    assert project.history()[-1]["event"] == "recovery"
    ok(project.run("deploy"))
    assert project.managed()["workflow/plan.py"] == (project.source / "workflow/plan.py").read_bytes()


@pytest.mark.parametrize("state", ["STAGING", "SWAPPING", "VERIFYING", "RECORDING"])
def test_rollback_killed_midway_is_recovered_by_the_next_deploy(project: Project, state: str) -> None:
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    current = project.managed()
    proc = project.run("rollback", env={"MCP_DEPLOY_CRASH_AT": state})
    assert proc.returncode == -signal.SIGKILL
    recovered = ok(project.run("deploy"))
    assert "recovered interrupted rollback" in recovered.stdout
    assert project.leftovers() == []
    # recovery then the deploy: production is the source again, exactly
    assert project.managed() == current


def test_first_deploy_killed_after_swap_leaves_no_half_target(project: Project) -> None:
    proc = project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": "VERIFYING"})
    assert proc.returncode == -signal.SIGKILL
    assert project.target.exists()  # swapped in, not verified
    ok(project.run("status"))
    assert not project.target.exists()
    assert project.leftovers() == []


def test_sigkill_from_outside_at_random_instants(project: Project) -> None:
    """A slow validator widens the window; seeded delays make the kills reproducible."""
    project.profile["validators"].append({"type": "command", "run": "sleep 0.3"})
    project.profile["verify"].append({"type": "command", "run": "sleep 0.3"})
    project.write_config()
    ok(project.run("deploy"))
    rng = random.Random(20261124)
    for i in range(6):
        old = project.managed()
        bump(project, text=f"# round {i}\n")
        new_plan = (project.source / "workflow/plan.py").read_bytes()
        cmd = [sys.executable, "-m", "invoke", "--search-root", str(REPO), "deploy", "--config", str(project.config)]
        proc = subprocess.Popen(cmd, cwd=project.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ok(project.run("status"))
        managed = project.managed()
        assert managed == old or managed["workflow/plan.py"] == new_plan, f"round {i}: half-deployed tree"
        assert project.leftovers() == []
        for line in project.log.read_text().splitlines():
            json.loads(line)
    ok(project.run("deploy"))
    assert project.managed()["workflow/plan.py"] == (project.source / "workflow/plan.py").read_bytes()


def test_fallback_swap_path_deploys_and_recovers(project: Project) -> None:
    env = {"MCP_DEPLOY_SWAP_FALLBACK": "1"}
    ok(project.run("deploy", env=env))
    bump(project)
    ok(project.run("deploy", env=env))
    assert project.managed()["workflow/plan.py"] == (project.source / "workflow/plan.py").read_bytes()
    old = project.managed()
    bump(project)
    assert project.run("deploy", env={**env, "MCP_DEPLOY_CRASH_AT": "VERIFYING"}).returncode == -signal.SIGKILL
    ok(project.run("status", env=env))
    assert project.managed() == old and project.leftovers() == []
