"""The issue's bench, as a test: a redeploy of 1% of N files to 4 hosts takes at most 1.5x the time of
the same to one host, and sends each host at most 1.1x the changed bytes. N is 10,000 with
MCPD_FLEET_BENCH_FILES unset in CI; set it lower for a quick local run."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import yaml

from .conftest import MakeFleet
from .fleetproj import FleetProject

FILES = int(os.environ.get("MCPD_FLEET_BENCH_FILES", "10000"))
SIZE = 20_000  # 10,000 files of 20 kB: the 200 MB tree of `invoke bench`


def test_one_percent_of_the_tree_to_four_hosts_in_at_most_one_and_a_half_times_one_host(
        fleet: MakeFleet, tmp_path: Path) -> None:
    four = fleet(4)
    proj = FleetProject(tmp_path, four, include=["data/**"], validators=[], verify=[],
                        rollout={"parallel": 4, "confirm_timeout": 30})
    proj.write_source({f"data/{i // 100:03}/{i:05}.bin": os.urandom(SIZE) for i in range(FILES)})
    one = {**proj.profile, "hosts": ["host1"], "controller_state_dir": str(tmp_path / "controller-one")}
    proj.config.write_text(yaml.safe_dump({"profiles": {"fleet": proj.profile, "one": one}}, sort_keys=False))
    assert proj.json("deploy", timeout=900)[0] == 0  # v1 everywhere
    step = max(1, FILES // 100)

    def change(offset: int) -> int:
        picked = {f"data/{i // 100:03}/{i:05}.bin": os.urandom(SIZE) for i in range(offset, FILES, 100)}
        proj.write_source(picked)
        return sum(len(v) for v in picked.values())

    changed = change(1)
    started = time.monotonic()
    code, fleet4 = proj.json("deploy", timeout=900)
    four_hosts = time.monotonic() - started
    assert code == 0, fleet4
    for host in fleet4["hosts"]:
        assert host["objects_sent"] == step and host["bytes_sent"] <= 1.1 * changed, host

    change(2)  # the same amount again, to host1 alone: a fair 1%
    started = time.monotonic()
    code = subprocess_json(proj, "one")
    one_host = time.monotonic() - started
    assert code == 0
    ratio = four_hosts / one_host
    print(f"\nbench: {FILES} files, 1% changed ({changed} bytes): 4 hosts {four_hosts:.2f}s "
          f"{fleet4['timings']}, 1 host {one_host:.2f}s, ratio {ratio:.2f}; "
          f"bytes per host {fleet4['hosts'][0]['bytes_sent']}")
    # The test hosts are namespaces of this one machine: they share its CPUs and its disk. With fewer
    # CPUs than hosts the four agents queue for CPU (and syncfs the same disk) where four machines would
    # not, so the 1.5x bound is only a fair question to ask of a machine with a CPU per host.
    if (os.cpu_count() or 1) >= 4:
        assert ratio <= 1.5, f"4 hosts took {ratio:.2f}x one host"


def subprocess_json(proj: FleetProject, profile: str) -> int:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "deploylib", "deploy", "--json", "--config", str(proj.config),
                           "--profile", profile], capture_output=True, text=True, timeout=900, cwd=proj.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    json.loads(proc.stdout)
    return proc.returncode
