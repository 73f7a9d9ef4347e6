"""Content-addressed push: each host gets only the objects its store lacks, and only the manifest
changes against the release it has live."""

from __future__ import annotations

import os
from pathlib import Path

from .conftest import MakeFleet
from .fleetproj import FleetProject


def test_redeploy_sends_each_changed_byte_once_per_host_and_rollback_sends_nothing(
        fleet: MakeFleet, tmp_path: Path) -> None:
    two = fleet(2)
    proj = FleetProject(tmp_path, two, include=["data/**"], validators=[])
    proj.write_source({f"data/{i:03}.bin": os.urandom(16384) for i in range(300)})
    code, first = proj.json("deploy")
    assert code == 0, first
    v1 = {k: v for k, v in proj.expected().items() if k.startswith("data/")}
    total = 300 * 16384
    for host in first["hosts"]:
        assert host["objects_sent"] == 300 and host["object_bytes"] == total
    changed = {f"data/{i:03}.bin": os.urandom(16384) for i in (7, 150, 299)}  # 1%: 48 KiB
    proj.write_source(changed)
    code, second = proj.json("deploy")
    assert code == 0, second
    changed_bytes = sum(len(v) for v in changed.values())
    for host in second["hosts"]:
        assert host["objects_sent"] == 3 and host["object_bytes"] == changed_bytes
        # everything that went down the wire: protocol, profile, manifest changes, objects
        assert host["bytes_sent"] <= 1.1 * changed_bytes, host
    v2 = {k: v for k, v in proj.expected().items() if k.startswith("data/")}
    for host in two:
        assert proj.managed(host) == v2

    code, back = proj.json("rollback")
    assert code == 0, back
    for host in back["hosts"]:
        assert host["objects_sent"] == 0 and host["bytes_sent"] < 8192, host
    for host in two:
        assert proj.managed(host) == v1
