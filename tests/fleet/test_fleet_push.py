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


def test_a_source_file_swapped_for_a_fifo_or_a_link_after_the_scan_stops_the_push(tmp_path: Path) -> None:
    """The controller reads each object it pushes from the source by path, after its scan: a FIFO put there
    since used to hang the push forever (a plain read waits for a writer), and a link was followed. Both
    now stop the run as a source that changed, before any host is told to commit."""
    import hashlib
    import threading
    from types import SimpleNamespace

    from deploylib.fleet.controller import Run, _Stop
    from deploylib.manifest import Entry

    data = b"print('pushed')\n"
    (tmp_path / "elsewhere.py").write_bytes(data)
    entry = Entry("server.py", len(data), 0o644, hashlib.sha256(data).hexdigest())
    run = Run.__new__(Run)  # the one method under test needs only these
    run.fleet, run.release = SimpleNamespace(source=tmp_path), object()
    run._pushed, run._pushed_bytes, run._push_lock = {}, 0, threading.Lock()
    server = tmp_path / "server.py"
    server.write_bytes(data)
    assert run._object(entry) == (data, False)
    run._pushed.clear()
    for swap in (lambda: os.mkfifo(server), lambda: server.symlink_to("elsewhere.py")):
        server.unlink()
        swap()
        outcome: list[BaseException | tuple[bytes, bool]] = []

        def push() -> None:
            try:
                outcome.append(run._object(entry))
            except BaseException as exc:  # handed to the test's thread to assert on
                outcome.append(exc)

        worker = threading.Thread(target=push, daemon=True)  # a hang must fail the test, not stop the suite
        worker.start()
        worker.join(10)
        assert outcome and isinstance(outcome[0], _Stop), outcome  # not still waiting on the FIFO
        assert f"{server}: changed while being deployed" in str(outcome[0])
