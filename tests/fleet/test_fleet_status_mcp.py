"""A fleet's status table, its preview and plan digest, history, and the MCP tools on a fleet profile."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from .conftest import MakeFleet
from .fleetproj import FleetProject

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mcp_client import call, mcp_session  # noqa: E402


def test_status_shows_every_host_release_pending_and_drift_in_one_table(fleet: MakeFleet, tmp_path: Path) -> None:
    three = fleet(3)
    proj = FleetProject(tmp_path, three)
    code, out = proj.json("deploy")
    assert code == 0
    (three[1].root / "server.py").write_bytes(b"print('hand edit')\n")  # drift on host2
    proj.write_source({"workflow/plan.py": b"PLAN = 2\n"})
    proc = proj.cli("status")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["host", "release", "version", "deployed", "pending", "drift", "lock"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert set(rows) == {"host1", "host2", "host3"}
    assert all(row[1] == out["fleet_id"] for row in rows.values())
    assert rows["host1"][-3:] == ["1", "0", "-"] and rows["host2"][-3:] == ["2", "1", "-"]
    assert "! host2: server.py edited in production" in proc.stdout
    code, status = proj.json("status")
    assert code == 0 and [h["drift"] for h in status["hosts"]] == [[], ["server.py"], []]

    code, preview = proj.json("deploy", "--dry-run")
    assert code == 0 and preview["plan_digest"]
    assert [h["pending"]["changed"] for h in preview["hosts"]] == [["workflow/plan.py"],
                                                                   ["server.py", "workflow/plan.py"],
                                                                   ["workflow/plan.py"]]
    proj.write_source({"workflow/plan.py": b"PLAN = 3\n"})  # the source moved since the preview
    code, stale = proj.json("deploy", "--plan", preview["plan_digest"], "--overwrite-drift")
    assert code == 6 and stale["error_type"] == "PlanMismatch" and stale["outcome"] == "old"
    assert all(proj.managed(h)["workflow/plan.py"] == b"PLAN = 1\n" for h in three)
    code, fresh = proj.json("deploy", "--dry-run")
    code, done = proj.json("deploy", "--plan", fresh["plan_digest"], "--overwrite-drift")
    assert code == 0, done
    assert all(proj.managed(h) == proj.expected() for h in three)
    history = proj.history()
    assert [r["exit_code"] for r in history] == [0, 6, 0]
    assert history[-1]["hosts"]["host2"]["state"] == "new"
    code, shown = proj.json("history")  # the controller's records, through the CLI, as the log holds them
    assert code == 0 and shown["records"] == history and shown["damaged_lines"] == 0
    lines = proj.cli("history").stdout.splitlines()
    assert len(lines) == 3 and "fleet-deploy" in lines[0] and "fleet-deploy" in lines[2]
    assert "failure" in lines[1] and "FAILED, fleet ended old (exit 6)" in lines[1]
    code, stats = proj.json("history", "--stats")
    assert code == 0 and stats["damaged_lines"] == 0


def test_mcp_tools_take_a_fleet_profile_preview_per_host_and_progress_per_host(
        fleet: MakeFleet, tmp_path: Path) -> None:
    two = fleet(2)
    proj = FleetProject(tmp_path, two)

    async def session() -> None:
        async with mcp_session(proj.config, "--profile", "fleet") as s:
            is_error, preview = await call(s, "fleet_deploy")
            assert not is_error, preview
            assert [h["host"] for h in preview["hosts"]] == ["host1", "host2"]
            assert all(h["pending"]["counts"]["added"] == 5 for h in preview["hosts"])
            assert f"plan_digest={preview['plan_digest']}" in preview["summary"]
            progress: list = []
            is_error, done = await call(s, "fleet_deploy", progress, plan_digest=preview["plan_digest"])
            assert not is_error, done
            assert done["outcome"] == "new" and "Deployed" in done["summary"]
            messages = [m for _, _, m in progress]
            assert any(m.startswith("[host1]") for m in messages) and any(m.startswith("[host2]") for m in messages)
            is_error, status = await call(s, "fleet_status")
            assert not is_error and "2 hosts" in status["summary"]

    anyio.run(session)
    assert all(proj.managed(h) == proj.expected() for h in two)
