"""Scenario 2: concurrent deploys. Exactly one runs; the others fail at once naming it, or queue with --wait."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

from conftest import REPO, Project, hold_lock, ok
from invariants import baseline, check

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




def _start(project: Project, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "invoke", "--search-root", str(REPO), "deploy", "--config", str(project.config), *args]
    return subprocess.Popen(cmd, cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ten_deploys_at_once_exactly_one_runs(project: Project) -> None:
    # hold the lock long enough that all ten have started, even on a loaded machine
    project.profile["validators"].append({"type": "command", "run": "sleep 3"})
    project.write_config()
    ok(project.run("deploy"))
    (project.source / "templates" / "race.json").write_text("{}")
    base = baseline(project)
    procs = [_start(project) for _ in range(10)]
    results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    winners = [r for r in results if r[0] == 0]
    losers = [r for r in results if r[0] == 3]
    assert len(winners) == 1 and len(losers) == 9, [r[0] for r in results]
    for _, _, err in losers:
        assert "deployment lock held by pid" in err and "running deploy since" in err
    assert [r["event"] for r in project.history()] == ["deploy", "deploy"]
    check(project, base, expect="new")


def test_ten_deploys_with_wait_serialise_consistently(project: Project) -> None:
    procs = []
    for i in range(10):
        (project.source / "templates" / f"t{i}.json").write_text(f'{{"n": {i}}}')
        procs.append(_start(project, "--wait", "120"))
    codes = [p.wait(timeout=180) for p in procs]
    assert codes == [0] * 10
    deploys = [r for r in project.history() if r["event"] == "deploy"]
    assert 1 <= len(deploys) <= 10  # later ones may find nothing left to deploy
    assert all(r["ok"] for r in project.history())
    for i in range(10):
        assert (project.target / "templates" / f"t{i}.json").read_text() == f'{{"n": {i}}}'
    assert project.leftovers() == []
    code, status = project.json("status")
    assert status["pending"]["counts"] == {"added": 0, "changed": 0, "removed": 0, "unchanged": 19}
