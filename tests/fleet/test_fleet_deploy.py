"""Fleet deploys over real SSH to real test hosts: all or nothing."""

from __future__ import annotations

from pathlib import Path

from .conftest import MakeFleet
from .fleetproj import FleetProject, plant_user_files, user_files


def test_two_hosts_deploy_all_or_nothing_and_redeploy_says_nothing_to_do(fleet: MakeFleet, tmp_path: Path) -> None:
    two = fleet(2)
    users = plant_user_files(two)
    proj = FleetProject(tmp_path, two)
    code, out = proj.json("deploy")
    assert code == 0, out
    assert out["outcome"] == "new" and [h["state"] for h in out["hosts"]] == ["new", "new"]
    release = {h["release"] for h in out["hosts"]}
    assert release == {out["fleet_id"]}  # one release id across the fleet
    for host in two:
        assert proj.managed(host) == proj.expected()
        assert user_files(host) == users[host.name]
        version = proj.version(host)
        assert version is not None and version["deploy_id"] == out["fleet_id"]
        assert proj.leftovers(host) == [] and not proj.journal(host).exists()

    code, again = proj.json("deploy")
    assert code == 0 and again["outcome"] == "new"
    assert [h["changed"] for h in again["hosts"]] == [False, False]
    assert "already" in again["message"] or "Nothing" in again["message"]
    record = proj.history()[0]
    assert record["operation"] == "fleet-deploy" and record["ok"] and set(record["hosts"]) == {"host1", "host2"}


def deployed(proj: FleetProject, two_or_more: list) -> dict[str, dict[str, bytes | str]]:
    return {h.name: proj.managed(h) for h in two_or_more}


def test_one_host_failing_verify_rolls_the_whole_fleet_back(fleet: MakeFleet, tmp_path: Path) -> None:
    three = fleet(3)
    users = plant_user_files(three)
    proj = FleetProject(tmp_path, three, rollout={"batch": 1, "confirm_timeout": 6})
    assert proj.json("deploy")[0] == 0
    old = deployed(proj, list(three))
    old_versions = {h.name: proj.version(h) for h in three}
    proj.write_source({"server.py": b"print('v2')\n", "workflow/new.py": b"NEW = 2\n"})
    (three[1].fs / "srv" / "fail-verify").write_text("")  # host2's verify fails
    code, out = proj.json("deploy")
    assert code == 1, out
    assert out["outcome"] == "old" and out["error_type"] == "FleetFailed"
    states = {h["host"]: (h["state"], h["phase"]) for h in out["hosts"]}
    assert states["host1"] == ("old", "rolled back")  # committed and verified, then taken back
    assert states["host2"][0] == "old" and "verify" in (out["hosts"][1]["error"] or "")
    assert states["host3"] == ("old", "aborted")  # never committed
    for host in three:
        assert proj.managed(host) == old[host.name]
        assert proj.version(host) == old_versions[host.name]
        assert user_files(host) == users[host.name]
        assert proj.leftovers(host) == [] and not proj.journal(host).exists()
    record = proj.history()[-1]
    assert record["ok"] is False and record["outcome"] == "old" and record["exit_code"] == 1
    assert record["hosts"]["host1"]["phase"] == "rolled back"


def test_isolate_keeps_the_verified_hosts_and_says_the_fleet_is_mixed(fleet: MakeFleet, tmp_path: Path) -> None:
    three = fleet(3)
    proj = FleetProject(tmp_path, three, on_host_failure="isolate", rollout={"max_failures": 1, "confirm_timeout": 6})
    assert proj.json("deploy")[0] == 0
    old = deployed(proj, list(three))
    proj.write_source({"server.py": b"print('v2')\n"})
    (three[1].fs / "srv" / "fail-verify").write_text("")
    code, out = proj.json("deploy")
    assert code == 8, out
    assert out["outcome"] == "mixed"
    assert [h["state"] for h in out["hosts"]] == ["new", "old", "new"]
    assert proj.managed(three[0]) == proj.expected() == proj.managed(three[2])
    assert proj.managed(three[1]) == old["host2"]


def test_an_unreachable_host_changes_nothing_anywhere(fleet: MakeFleet, tmp_path: Path) -> None:
    three = fleet(3)
    proj = FleetProject(tmp_path, three)
    assert proj.json("deploy")[0] == 0
    old = deployed(proj, list(three))
    proj.write_source({"server.py": b"print('v2')\n"})
    three[2].cut()
    try:
        code, out = proj.json("deploy")
        preview_code, preview = proj.json("deploy", "--dry-run")  # a CI check on the preview must fail too
        status_code, status = proj.json("status")  # the table: a row saying so
    finally:
        three[2].restore()
    assert code == 9, out
    assert "host3" in out["error"] and "ssh" in out["error"]
    assert out["outcome"] == "old"
    assert preview_code == 9 and preview["error"].startswith("host3: ") and "no plan for the fleet" in preview["error"]
    assert status_code == 0 and status["hosts"][2]["error"] and status["plan_digest"] is None
    for host in three:
        assert proj.managed(host) == old[host.name]
        assert proj.leftovers(host) == [] and not proj.journal(host).exists()


def test_a_host_without_python3_is_a_clear_error_and_nothing_changes(fleet: MakeFleet, tmp_path: Path) -> None:
    two = fleet(2, without_python=("host2",))
    proj = FleetProject(tmp_path, two)
    proc = proj.cli("deploy")
    assert proc.returncode == 9, proc.stderr
    assert "host2: python3 not found on the host" in proc.stderr and "Python >= 3.11" in proc.stderr
    assert "Traceback" not in proc.stderr
    for host in two:
        assert proj.managed(host) == {} and proj.version(host) is None


def test_four_hosts_canary_then_batches_of_half(fleet: MakeFleet, tmp_path: Path) -> None:
    four = fleet(4)
    users = plant_user_files(four)
    proj = FleetProject(tmp_path, four, rollout={"canary": 1, "batch": "50%", "parallel": 4, "confirm_timeout": 6})
    proc = proj.cli("deploy")
    assert proc.returncode == 0, proc.stderr
    assert "host1" in proc.stdout and "Deployed" in proc.stdout
    order = [line for line in proc.stderr.splitlines() if "committed" in line or "] commit" in line]
    assert order and order[0].startswith("[host1]")  # the canary commits first
    for host in four:
        assert proj.managed(host) == proj.expected()
        assert user_files(host) == users[host.name]
