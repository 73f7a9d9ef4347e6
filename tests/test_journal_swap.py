"""The journal, the atomic exchange and its crash repair, the history log and the lock, on real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from deploylib import history
from deploylib.errors import CorruptState, LockHeld
from deploylib.journal import Journal, Record, State
from deploylib.lock import DeployLock, current_holder, read_holder
from deploylib.swap import exchange, parking_path, repair


def record() -> Record:
    return Record("d-1", "deploy", "IDLE", "/t", "/.t.deploy-d-1", "/b", "/log", True)


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


def make_trees(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_text("A")
    (b / "f").write_text("B")
    return a, b


@pytest.mark.parametrize("fallback", [False, True])
def test_exchange_swaps_two_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fallback: bool) -> None:
    if fallback:
        monkeypatch.setenv("MCP_DEPLOY_SWAP_FALLBACK", "1")
    a, b = make_trees(tmp_path)
    method = exchange(a, b)
    assert method == ("fallback" if fallback else "renameat2")
    assert (a / "f").read_text() == "B" and (b / "f").read_text() == "A"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_repair_after_a_crash_between_fallback_renames(tmp_path: Path) -> None:
    a, b = make_trees(tmp_path)
    os.rename(a, parking_path(a))  # killed after the first rename
    repair(a, b)
    assert (a / "f").read_text() == "A" and (b / "f").read_text() == "B"
    os.rename(a, parking_path(a))
    os.rename(b, a)  # killed after the second rename
    repair(a, b)
    assert (a / "f").read_text() == "B" and (b / "f").read_text() == "A"
    assert not parking_path(a).exists()


def test_history_survives_a_torn_last_line(tmp_path: Path) -> None:
    log = tmp_path / "h.jsonl"
    history.append(log, {"event": "deploy", "id": 1})
    with open(log, "ab") as f:
        f.write(b'{"event": "depl')  # a crash mid-write
    history.append(log, {"event": "deploy", "id": 2})
    records, bad = history.read(log)
    assert [r["id"] for r in records] == [1, 2] and bad == 1
    for line in log.read_text().splitlines()[:1] + log.read_text().splitlines()[2:]:
        json.loads(line)


def test_lock_is_exclusive_and_reports_its_holder(tmp_path: Path) -> None:
    with DeployLock(tmp_path, "deploy"):
        holder = current_holder(tmp_path)
        assert holder is not None and holder.pid == os.getpid() and holder.operation == "deploy"
        with pytest.raises(LockHeld, match=f"pid {os.getpid()} on .*running deploy since"):
            DeployLock(tmp_path, "rollback").acquire()
        with pytest.raises(LockHeld, match="after waiting 0.2s"):
            DeployLock(tmp_path, "rollback", wait=0.2).acquire()
    assert current_holder(tmp_path) is None
    (tmp_path / "lock").write_bytes(b"garbage")
    assert read_holder(tmp_path / "lock") is None
    with DeployLock(tmp_path, "prune"):  # a garbage lock file blocks nothing
        assert current_holder(tmp_path).operation == "prune"  # type: ignore[union-attr]
