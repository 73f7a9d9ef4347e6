"""Hooks (deploy.yaml `hooks:`): real shell commands at the pipeline's fixed points, through the real CLI.

A recorder script (in tmp_path, outside production) appends one JSON line per run: the hook's cwd, its
MCP_DEPLOY_* environment, and what it could read there, so each test checks what a hook really saw.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from conftest import MANAGED, REPO, Project, bump, ok, tree
from test_mcp_verify import survivors

RECORDER = """
import json, os, sys
from pathlib import Path
listing = os.environ.get("MCP_DEPLOY_CHANGED_FILES", "")
plan = Path("workflow/plan.py")
seen = {
    "cwd": os.getcwd(),
    "env": {k: v for k, v in os.environ.items() if k.startswith("MCP_DEPLOY_")},
    "plan_py": plan.read_text() if plan.exists() else None,
    "listed": Path(listing).read_text().splitlines() if listing.startswith("/") else None,
}
with open(sys.argv[1], "a") as log:
    log.write(json.dumps(seen) + "\\n")
print("recorded", os.environ["MCP_DEPLOY_HOOK"])
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
"""


class Recorder:
    """`command(code)` is a hook that records what it saw and exits `code`; `runs()` reads the records."""

    def __init__(self, root: Path) -> None:
        self.script = root / "record.py"
        self.script.write_text(RECORDER)
        self.log = root / "hooks.jsonl"

    def command(self, code: int = 0) -> str:
        return f"{sys.executable} {self.script} {self.log} {code}"

    def runs(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def recorder(project: Project) -> Recorder:
    return Recorder(project.root)


def test_after_commit_runs_in_production_and_learns_the_operation(project: Project) -> None:
    rec = recorder(project)
    ok(project.run("deploy"))
    project.write_config(hooks={"after_commit": [{"run": rec.command(), "timeout": 20}]})
    bump(project)
    code, result = project.json("deploy")
    assert code == 0 and result["ok"] and result["changed"]
    [run] = rec.runs()
    assert run["cwd"] == str(project.target)
    assert run["plan_py"] == (project.source / "workflow/plan.py").read_text()  # the new release is live
    assert run["env"] == {
        "MCP_DEPLOY_HOOK": "after_commit",
        "MCP_DEPLOY_OPERATION": "deploy",
        "MCP_DEPLOY_ID": result["deploy_id"],
        "MCP_DEPLOY_VERSION": result["version"],
        "MCP_DEPLOY_PREVIOUS_VERSION": result["previous_version"],
        "MCP_DEPLOY_PROFILE": "default",
        "MCP_DEPLOY_TARGET": str(project.target),
        "MCP_DEPLOY_SOURCE": str(project.source),
        "MCP_DEPLOY_CONFIG_DIR": str(project.root),
        "MCP_DEPLOY_CHANGED_FILES": "workflow/plan.py",
    }
    [hook] = result["hooks"]
    assert hook["hook"] == "after_commit" and hook["ok"] and hook["exit"] == 0
    assert hook["output"] == "recorded after_commit\n"
    assert project.history()[-1]["hooks"][0]["output"] == "recorded after_commit\n"
    verbose = ok(project.run("deploy", "--verbose"))  # nothing to deploy: no hook runs
    assert len(rec.runs()) == 1 and "hook" not in verbose.stdout


def test_verbose_shows_each_hook_and_its_output(project: Project) -> None:
    rec = recorder(project)
    project.write_config(hooks={"after_commit": [{"run": rec.command()}, {"run": "echo second; echo line 2"}]})
    proc = ok(project.run("deploy", "--verbose"))
    lines = proc.stdout.splitlines()
    assert f"hook after_commit `{rec.command()}`: ok" in proc.stdout
    assert "    recorded after_commit" in lines
    assert lines[lines.index("    second") + 1] == "    line 2"
    quiet = project.run("deploy")
    assert "hook" not in quiet.stdout


def test_a_failing_before_commit_hook_undoes_everything(project: Project) -> None:
    rec = recorder(project)
    ok(project.run("deploy"))
    (project.target / "config.local.json").write_text('{"mine": true}')
    before = tree(project.target)
    project.write_config(hooks={"before_commit": [{"run": rec.command()}, {"run": rec.command(4)},
                                                  {"run": rec.command()}],
                                "after_commit": [{"run": rec.command()}],
                                "on_failure": [{"run": rec.command()}]})
    bump(project)
    proc = project.run("deploy")
    assert proc.returncode == 1, proc.stderr
    assert (f"error: deploy failed at before_commit: hook `{rec.command(4)}` exited 4: recorded before_commit "
            "(undone; production is as before)") in proc.stderr
    assert tree(project.target) == before
    assert project.leftovers() == []
    first, second, on_failure = rec.runs()  # the list stopped at its failure; after_commit never ran
    stage = project.target.parent / f".server.deploy-{first['env']['MCP_DEPLOY_ID']}" / "release"
    assert first["cwd"] == second["cwd"] == str(stage)
    assert first["env"]["MCP_DEPLOY_STAGE"] == str(stage)
    assert first["plan_py"] == (project.source / "workflow/plan.py").read_text()  # the staged new release
    assert on_failure["env"]["MCP_DEPLOY_HOOK"] == "on_failure"
    last = project.history()[-1]
    assert last["event"] == "failure" and last["failed_step"] == "before_commit"


def test_an_after_commit_failure_is_reported_and_the_release_stays(project: Project) -> None:
    rec = recorder(project)
    project.write_config(hooks={"after_commit": [{"run": rec.command(1)}, {"run": rec.command()}]})
    proc = ok(project.run("deploy"))
    for rel in MANAGED:
        assert (project.target / rel).read_bytes() == (project.source / rel).read_bytes()
    assert (f"note: after_commit hook `{rec.command(1)}` exited 1: recorded after_commit; the release is live "
            "and stays") in proc.stdout
    assert proc.stdout.rstrip().endswith("Success.")
    assert len(rec.runs()) == 1  # the list stops at its first failure
    bump(project)
    code, result = project.json("deploy")
    assert code == 0 and result["ok"] and result["version"] == project.version()["version"]
    assert [h["ok"] for h in result["hooks"]] == [False]
    assert project.history()[-1]["ok"] is True


def test_on_failure_runs_after_the_undo_with_the_error(project: Project) -> None:
    rec = recorder(project)
    ok(project.run("deploy"))
    old_plan = (project.target / "workflow/plan.py").read_text()
    project.write_config(verify=[{"type": "command", "name": "smoke", "run": "echo broken; exit 1"}],
                         hooks={"after_commit": [{"run": rec.command()}], "on_failure": [{"run": rec.command()}]})
    bump(project)
    proc = project.run("deploy")
    assert proc.returncode == 1
    [run] = rec.runs()
    assert run["env"]["MCP_DEPLOY_HOOK"] == "on_failure" and run["cwd"] == str(project.target)
    assert run["plan_py"] == old_plan  # it ran after the undo: production was the old release again
    assert run["env"]["MCP_DEPLOY_FAILED_STEP"] == "verify"
    assert run["env"]["MCP_DEPLOY_ERROR"].startswith("deploy failed at verify: verify smoke: `echo broken; exit 1`")
    assert project.history()[-1]["hooks"][0]["hook"] == "on_failure"


def test_a_failing_on_failure_hook_changes_nothing_but_the_detail(project: Project) -> None:
    project.write_config(verify=[{"type": "command", "run": "exit 1"}],
                         hooks={"on_failure": [{"run": "echo pager down; exit 9"}]})
    proc = project.run("deploy", "--verbose")
    assert proc.returncode == 1
    assert "error: deploy failed at verify: verify command: `exit 1` exited 1" in proc.stderr
    assert "note: on_failure hook `echo pager down; exit 9` exited 9: pager down" in proc.stderr
    assert not (project.target / "server.py").exists()


def test_a_rollback_runs_after_commit_then_after_rollback(project: Project) -> None:
    rec = recorder(project)
    ok(project.run("deploy"))
    first = project.version()["version"]
    (project.source / "pyproject.toml").write_text(
        (project.source / "pyproject.toml").read_text().replace('version = "0.1.0"', 'version = "0.2.0"'))
    ok(project.run("deploy"))
    project.write_config(hooks={"after_commit": [{"run": rec.command()}], "after_rollback": [{"run": rec.command()}]})
    code, result = project.json("rollback")
    assert code == 0 and result["version"] == first
    runs = rec.runs()
    assert [r["env"]["MCP_DEPLOY_HOOK"] for r in runs] == ["after_commit", "after_rollback"]
    assert {r["env"]["MCP_DEPLOY_OPERATION"] for r in runs} == {"rollback"}
    assert runs[0]["env"]["MCP_DEPLOY_VERSION"] == "0.1.0"
    assert runs[0]["env"]["MCP_DEPLOY_PREVIOUS_VERSION"] == "0.2.0"
    assert runs[0]["env"]["MCP_DEPLOY_CHANGED_FILES"] == "pyproject.toml"
    bump(project)
    ok(project.run("deploy"))
    assert len(rec.runs()) == 3  # a deploy runs after_commit only


def test_a_hanging_before_commit_hook_is_killed_with_its_children(project: Project) -> None:
    marker = f"hook-marker-{uuid.uuid4()}"
    hang = f"{sys.executable} -c 'import time; time.sleep(600)' {marker} & sleep 600"
    project.write_config(hooks={"before_commit": [{"run": hang, "timeout": 1}]})
    started = time.monotonic()
    proc = project.run("deploy")
    assert proc.returncode == 1
    assert time.monotonic() - started < 20
    assert f"deploy failed at before_commit: hook `{hang}` timed out after 1s" in proc.stderr
    assert not project.target.exists() and project.leftovers() == []
    time.sleep(0.2)
    assert survivors(marker) == []


def test_a_long_list_of_changed_files_is_passed_as_a_file(project: Project) -> None:
    rec = recorder(project)
    data = project.source / "data"
    data.mkdir()
    names = [f"data/{'x' * 60}-{i:05}.txt" for i in range(1200)]  # ~80 KiB of names: too long to pass inline
    for name in names:
        (project.source / name).write_text(name)
    project.write_config(include=project.profile["include"] + ["data/*.txt"],
                         hooks={"after_commit": [{"run": rec.command()}]})
    ok(project.run("deploy", timeout=120))
    [run] = rec.runs()
    listing = run["env"]["MCP_DEPLOY_CHANGED_FILES"]
    assert listing.startswith("/") and run["listed"] == sorted(names + MANAGED)
    assert not os.path.exists(listing)  # removed once the hooks ran


def test_a_signal_during_an_after_commit_hook_stops_the_hook_not_the_release(project: Project) -> None:
    marker = f"hook-marker-{uuid.uuid4()}"
    pidfile = project.root / "hook.pid"
    hang = f"echo $$ > {pidfile}; {sys.executable} -c 'import time; time.sleep(600)' {marker}"
    project.write_config(hooks={"after_commit": [{"run": hang, "timeout": 300}]})
    cmd = [sys.executable, "-m", "invoke", "--search-root", str(REPO), "deploy", "--json",
           "--config", str(project.config)]
    deploy = subprocess.Popen(cmd, cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not pidfile.exists() or not survivors(marker):
        assert time.monotonic() < deadline and deploy.poll() is None
        time.sleep(0.05)
    deploy.send_signal(signal.SIGTERM)
    out, err = deploy.communicate(timeout=60)
    assert deploy.returncode == 0, err
    result = json.loads(out)
    assert result["ok"] and result["changed"]
    assert result["hooks"][0]["problem"] == f"`{hang}` was stopped by SIGTERM"
    assert any(n.startswith(f"after_commit hook `{hang}` was stopped by SIGTERM") for n in result["notes"])
    for rel in MANAGED:
        assert (project.target / rel).read_bytes() == (project.source / rel).read_bytes()
    assert project.history()[-1]["ok"] is True
    time.sleep(0.2)
    assert survivors(marker) == []


def test_the_bundled_restart_hook_names_the_servers_still_running_old_code(project: Project) -> None:
    """The repo's own deploy.yaml runs examples/hooks/restart-server.sh after every commit."""
    repo_config = (REPO / "deploy.yaml").read_text()
    assert "examples/hooks/restart-server.sh" in repo_config
    script = REPO / "examples" / "hooks" / "restart-server.sh"
    project.write_config(hooks={"after_commit": [{"run": f"sh {script}"}]})
    code, result = project.json("deploy")
    assert code == 0
    assert result["hooks"][0]["output"].startswith(f"no running process uses {project.target}")
    bump(project)
    marker = f"server-marker-{uuid.uuid4()}"
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker], cwd=project.target)
    try:
        code, result = project.json("deploy")
        assert code == 0
        output = result["hooks"][0]["output"]
        assert f"pid {server.pid} " in output and "still runs the release before" in output
        assert "Claude Desktop: quit it completely" in output and "Claude Code: run /mcp" in output
        assert server.poll() is None  # a client's child is the client's to restart: the hook never kills it
    finally:
        server.kill()
        server.wait()


def test_the_bundled_restart_hook_restarts_a_systemd_user_unit(project: Project, tmp_path: Path) -> None:
    """MCP_SERVER_UNIT names a `systemd --user` unit: restarted, then the hook fails (reported, the release
    stays) unless the unit comes back active. No user systemd manager runs in this container, so a
    stand-in `systemctl` on PATH records its arguments and answers `is-active` as told."""
    script = REPO / "examples" / "hooks" / "restart-server.sh"
    bindir, calls = tmp_path / "bin", tmp_path / "systemctl-calls"
    bindir.mkdir()
    (bindir / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n'
                                      f'[ "$2" = is-active ] && exit "$(cat {tmp_path / "active-rc"})"\nexit 0\n')
    (bindir / "systemctl").chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "MCP_SERVER_UNIT": "unified-agents.service"}
    project.write_config(hooks={"after_commit": [{"run": f"sh {script}"}]})
    (tmp_path / "active-rc").write_text("0")
    code, result = project.json("deploy", env=env)
    assert code == 0
    version = json.loads((project.target / "VERSION").read_text())["version"]
    assert result["hooks"][0]["output"] == f"restarted unified-agents.service: it now runs {version}\n"
    assert calls.read_text().splitlines() == ["--user restart unified-agents.service",
                                              "--user is-active --quiet unified-agents.service"]
    bump(project)
    (tmp_path / "active-rc").write_text("3")  # the unit failed to come back
    code, result = project.json("deploy", env=env)
    assert code == 0 and result["ok"]  # the release is live: an after_commit failure is reported, not undone
    assert result["hooks"][0]["problem"] == f"`sh {script}` exited 3"
    for rel in MANAGED:
        assert (project.target / rel).read_bytes() == (project.source / rel).read_bytes()
