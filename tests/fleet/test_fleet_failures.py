"""A fleet deploy losing a host, or its controller, in the middle of the commit; two at once."""

from __future__ import annotations

import re
import signal
from pathlib import Path

from .conftest import MakeFleet
from .fleetproj import FleetProject, committed, plant_user_files, user_files, wait_for

V2 = b"print('v2')\n"


def settle(proj: FleetProject, fleet: list, timeout: float = 40) -> None:
    """Every host finished on its own: no journal, no stage, no agent left running."""
    for host in fleet:
        wait_for(lambda: not proj.journal(host).exists() and not proj.leftovers(host)
                 and "deploylib" not in host.exec_local("ps -eo args").stdout, timeout, f"{host.name} to settle")


def test_network_cut_mid_commit_that_host_rolls_itself_back_and_the_fleet_follows(
        fleet: MakeFleet, tmp_path: Path) -> None:
    three = fleet(3)
    users = plant_user_files(three)
    proj = FleetProject(tmp_path, three, rollout={"confirm_timeout": 4})
    assert proj.json("deploy")[0] == 0
    old = {h.name: proj.managed(h) for h in three}
    proj.write_source({"server.py": V2})
    hold = three[1].fs / "srv" / "hold"
    hold.write_text("")
    run = proj.popen("deploy", "--json")
    try:
        wait_for(lambda: committed(proj, three[1], V2), message="host2 to commit")
        three[1].cut()
        hold.unlink()  # host2's verify passes now, but its "verified" never reaches the controller
        out, err = run.communicate(timeout=60)
        assert run.returncode == 1, err
        settle(proj, [three[0], three[2]])
        # cut off, host2 hears nothing for confirm_timeout and takes its commit back by itself
        wait_for(lambda: not proj.journal(three[1]).exists(), 30, "host2 to roll itself back")
        assert proj.managed(three[1]) == old["host2"]
    finally:
        three[1].restore()
        if run.poll() is None:
            run.kill()
    for host in three:
        assert proj.managed(host) == old[host.name]
        assert user_files(host) == users[host.name]
    settle(proj, list(three))
    assert proj.json("deploy")[0] == 0  # and the next run goes through
    for host in three:
        assert proj.managed(host) == proj.expected()


def test_controller_killed_mid_commit_every_host_ends_old_and_the_next_run_recovers(
        fleet: MakeFleet, tmp_path: Path) -> None:
    three = fleet(3)
    users = plant_user_files(three)
    proj = FleetProject(tmp_path, three, rollout={"confirm_timeout": 5})
    assert proj.json("deploy")[0] == 0
    old = {h.name: proj.managed(h) for h in three}
    proj.write_source({"server.py": V2, "workflow/extra.py": b"X = 1\n"})
    hold = three[2].fs / "srv" / "hold"
    hold.write_text("")
    run = proj.popen("deploy")
    for host in three:
        wait_for(lambda: committed(proj, host, V2), message=f"{host.name} to commit")
    run.send_signal(signal.SIGKILL)  # no goodbye: its ssh clients just see their stdin end
    run.wait(timeout=10)
    hold.unlink()
    settle(proj, list(three))
    for host in three:  # nothing was confirmed: every host is exactly old
        assert proj.managed(host) == old[host.name]
        assert user_files(host) == users[host.name]
    code, out = proj.json("deploy")
    assert code == 0, out
    for host in three:
        assert proj.managed(host) == proj.expected()


def test_two_concurrent_fleet_deploys_one_runs_the_other_names_holder_and_host(
        fleet: MakeFleet, tmp_path: Path) -> None:
    two = fleet(2)
    proj = FleetProject(tmp_path, two)
    other = FleetProject(tmp_path / "other", two)  # another controller (its own state), same hosts
    hold = two[0].fs / "srv" / "hold"
    hold.write_text("")
    first = proj.popen("deploy")
    try:
        wait_for(lambda: committed(proj, two[0], proj.expected()["server.py"]), message="host1 to commit")
        same = proj.cli("deploy")
        assert same.returncode == 3, same.stderr
        assert "lock held by pid" in same.stderr and "fleet deploy" in same.stderr
        second = other.cli("deploy")
        assert second.returncode == 3, second.stderr
        assert re.search(r"host1: .*fleet-lock: deployment lock held by pid \d+ on host1, running fleet deploy "
                         r"d-\S+ from \S+ pid \d+", second.stderr), second.stderr
        hold.unlink()
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
    finally:
        hold.unlink(missing_ok=True)
        if first.poll() is None:
            first.kill()
    for host in two:
        assert proj.managed(host) == proj.expected()
