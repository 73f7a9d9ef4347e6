"""The fleet bench's scenario at a small size, for its behaviour only: a redeploy of 1% of the tree
sends each of 4 hosts just the changed files' objects (at most 1.1x the changed bytes on the wire,
everything included) and a rollback sends none. How long it takes is the bench's question, not the
suite's: `invoke bench --fleet` prints it as a table with PASS/FAIL (bench/README.md)."""

from __future__ import annotations

from pathlib import Path

from . import fleetbench
from .conftest import MakeFleet

FILES = 300  # 1% is 3 files
SIZE = 20_000  # the bench's file size: 10,000 of them are its 200 MB tree


def test_one_percent_to_four_hosts_sends_each_host_only_the_changed_objects_and_a_rollback_none(
        fleet: MakeFleet, tmp_path: Path) -> None:
    four = fleet(4)
    out = fleetbench.measure(tmp_path / "proj", four, files=FILES, size=SIZE, runs=2)
    assert out.changed_files == 3 and out.changed_bytes == 3 * SIZE
    assert [len(r.out["hosts"]) for r in out.four] == [4, 4] and [len(r.out["hosts"]) for r in out.one] == [1, 1]
    for r in out.four + out.one:
        for host in r.out["hosts"]:
            assert host["changed"] and host["state"] == "new", host
            assert host["objects_sent"] == out.changed_files, host
            assert host["bytes_sent"] <= 1.1 * out.changed_bytes, host  # protocol, manifest changes, objects
    assert out.rollback is not None and len(out.rollback.out["hosts"]) == 4
    for host in out.rollback.out["hosts"]:
        assert host["objects_sent"] == 0 and host["changed"], host
