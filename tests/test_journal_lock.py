"""The journal, the history log and the lock, on real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from deploylib import history
from deploylib.errors import CorruptState, LockHeld
from deploylib.ids import new_id, utc_now
from deploylib.journal import Journal, Record, State
from deploylib.lock import DeployLock, _holder_of, read_holder


OP = "d-20261124T061443.123456Z-3fa9c1"


def record() -> Record:
    return Record(OP, "deploy", "IDLE", "/t", f"/.t.deploy-{OP}")


def test_journal_records_each_transition_durably(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    rec = record()
    journal.advance(rec, State.CHECKING)
    journal.advance(rec, State.STAGING)
    again = journal.read()
    assert again.state == "STAGING" and again.transitions == ["CHECKING", "STAGING"]
    assert [p.name for p in tmp_path.iterdir()] == ["journal.json"]  # no temp files left
    journal.clear()
    assert not journal.exists()


def test_garbage_journal_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "journal.json").write_bytes(b"\x00\x01garbage")
    with pytest.raises(CorruptState, match="journal is damaged"):
        Journal(tmp_path).read()


@pytest.mark.parametrize("damage", [
    {"state": "SWAPPING"},  # a state this version does not know (an older release's journal)
    {"op_id": "../../etc"},  # ids end up in file names
    {"snapshot_id": "/etc/passwd"},
    {"commit": "rm -rf /"},
    {"extra": 1},
])
def test_a_journal_with_unknown_or_hostile_values_is_corrupt_state(tmp_path: Path, damage: dict[str, object]) -> None:
    journal = Journal(tmp_path)
    rec = record()
    journal.advance(rec, State.STAGING)
    data = json.loads(journal.path.read_text())
    data.update(damage)
    journal.path.write_text(json.dumps(data))
    with pytest.raises(CorruptState, match="journal is damaged .*it is kept"):
        journal.read()
    assert journal.exists()


def test_history_survives_a_torn_last_line(tmp_path: Path) -> None:
    log = tmp_path / "h.jsonl"
    ids = [new_id("d"), new_id("d")]  # history lists only records shaped as the tool writes them
    history.append(log, {"event": "deploy", "operation": "deploy", "id": ids[0], "ok": True, "finished": utc_now()})
    with open(log, "ab") as f:
        f.write(b'{"event": "depl')  # a crash mid-write
    history.append(log, {"event": "deploy", "operation": "deploy", "id": ids[1], "ok": True, "finished": utc_now()})
    records, bad = history.read(log)
    assert [r["id"] for r in records] == ids and bad == 1
    for line in log.read_text().splitlines()[:1] + log.read_text().splitlines()[2:]:
        json.loads(line)


def test_lock_is_exclusive_and_reports_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with DeployLock(path, "deploy"):
        holder = _holder_of(path)
        assert holder is not None and holder.pid == os.getpid() and holder.operation == "deploy"
        with pytest.raises(LockHeld, match=f"pid {os.getpid()} on .*running deploy since"):
            DeployLock(path, "rollback").acquire()
        with pytest.raises(LockHeld, match="after waiting 0.2s"):
            DeployLock(path, "rollback", wait=0.2).acquire()
    assert _holder_of(path) is None
    path.write_bytes(b"garbage")
    assert read_holder(path) is None
    with DeployLock(path, "prune"):  # a garbage lock file blocks nothing
        assert _holder_of(path).operation == "prune"  # type: ignore[union-attr]


def test_a_refusal_names_a_holder_that_writes_its_info_a_moment_after_taking_the_lock(tmp_path: Path) -> None:
    """The holder takes the flock, then writes who it is: a loser reading in between used to blame "an unknown
    process" (seen under load with ten deploys at once). It now gives the holder a moment to write."""
    import fcntl
    import threading

    path = tmp_path / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    info = {"pid": 4242, "host": "h", "operation": "deploy", "started": "2026-11-25T00:00:00.000Z"}
    late = threading.Timer(0.2, lambda: os.pwrite(fd, json.dumps(info).encode(), 0))
    late.start()
    with pytest.raises(LockHeld, match="held by pid 4242 on h, running deploy since"):
        DeployLock(path, "deploy").acquire()
    late.join()
    os.ftruncate(fd, 0)  # a holder that never says who it is: named as unknown, after a short wait
    with pytest.raises(LockHeld, match="held by an unknown process"):
        DeployLock(path, "deploy").acquire()
    os.close(fd)
