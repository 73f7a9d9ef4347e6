"""History you can trust: failure records time the failing step, a stale --plan is a refusal (not a
failure), and rollback previews name their snapshot and can be applied exactly with --plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Project, bump, ok, tree


def _snapshot_ids(project: Project) -> set[str]:
    _, listing = project.json("backups")
    return {s["id"] for s in listing["snapshots"]}


def test_failure_record_counts_the_seconds_spent_in_the_failing_verify(project: Project) -> None:
    ok(project.run("deploy"))
    kept = _snapshot_ids(project)
    before = tree(project.target)
    project.write_config(verify=[{"type": "command", "run": "sleep 30", "timeout": 1.5}])
    bump(project)
    proc = project.run("deploy")
    assert proc.returncode == 1 and "timed out after 1.5s" in proc.stderr
    assert tree(project.target) == before
    last = project.history()[-1]
    assert last["event"] == "failure" and last["failed_step"] == "verify"
    assert 1.5 <= last["steps"]["verify"] < 10  # the timeout's time, not 0 and not missing
    assert "undo" in last["steps"]
    assert last["duration"] >= last["steps"]["verify"] + last["steps"]["preflight"]
    # the backup this deploy took was dropped by its undo: the record must not point at it
    assert last["snapshot_id"] is None
    assert _snapshot_ids(project) == kept


def test_stale_plan_is_a_refused_event_outside_the_success_rate(project: Project) -> None:
    ok(project.run("deploy"))
    bump(project)
    _, preview = project.json("deploy", "--dry-run")
    stale = preview["plan"]["digest"]
    bump(project, text="\n# and again\n")
    _, fresh_preview = project.json("deploy", "--dry-run")
    fresh = fresh_preview["plan"]["digest"]
    before = tree(project.target)
    proc = project.run("deploy", "--plan", stale)
    assert proc.returncode == 6
    assert f"expected {stale}, now {fresh}" in proc.stderr
    assert tree(project.target) == before
    last = project.history()[-1]
    assert (last["event"], last["ok"], last["operation"]) == ("refused", False, "deploy")
    assert (last["expected_digest"], last["plan_digest"]) == (stale, fresh)
    _, stats = project.json("history", "--stats")
    s = stats["stats"]
    assert (s["operations"], s["succeeded"], s["failed"], s["refused"]) == (1, 1, 0, 1)
    assert s["success_rate"] == 1.0 and s["unrecovered_failure_since"] is None
    assert "1 refused because the plan changed" in ok(project.run("history", "--stats")).stdout
    listing = ok(project.run("history")).stdout.splitlines()[-1]
    assert "refused" in listing and "FAILED" not in listing


def test_rollback_dry_run_names_the_snapshot_and_plan_applies_exactly_it(project: Project) -> None:
    ok(project.run("deploy"))
    first = project.version()
    v1 = project.managed()
    bump(project)
    ok(project.run("deploy"))
    _, listing = project.json("backups")
    (snap,) = [s for s in listing["snapshots"] if s["release"] == first["release"]]
    proc = ok(project.run("rollback", "--dry-run"))
    assert f"Would restore snapshot {snap['id']} (0.1.0)." in proc.stdout
    _, preview = project.json("rollback", "--dry-run")
    assert preview["restored_from"] == snap["id"] and snap["id"] in preview["message"]
    assert preview["plan"]["changed"] == ["workflow/plan.py"]
    digest = preview["plan"]["digest"]
    assert f"--to {snap['id']} --plan {digest}" in proc.stdout
    code, done = project.json("rollback", "--plan", digest)
    assert code == 0 and done["changed"] and done["restored_from"] == snap["id"]
    assert project.managed() == v1
    assert project.history()[-1]["event"] == "rollback"


def test_rollback_with_a_stale_plan_is_refused_and_changes_nothing(project: Project) -> None:
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    _, preview = project.json("rollback", "--dry-run")
    stale = preview["plan"]["digest"]
    bump(project, "agents.json", "\n")
    ok(project.run("deploy"))  # the default rollback target moved on: the previewed plan is gone
    _, now = project.json("rollback", "--dry-run")
    before = tree(project.target)
    proc = project.run("rollback", "--plan", stale)
    assert proc.returncode == 6
    assert f"expected {stale}, now {now['plan']['digest']}" in proc.stderr
    assert "rollback --dry-run" in proc.stderr and "Traceback" not in proc.stderr
    assert tree(project.target) == before
    last = project.history()[-1]
    assert (last["event"], last["operation"]) == ("refused", "rollback")


def test_rollback_with_an_empty_plan_is_a_usage_error(project: Project) -> None:
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    before, records = tree(project.target), len(project.history())
    proc = project.run("rollback", "--plan", " ")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --plan: expected the plan digest printed by `invoke rollback --dry-run`, got an empty value"]
    assert tree(project.target) == before and len(project.history()) == records


@pytest.mark.parametrize("block", [1, 7, 64, 4096, 65536])
def test_the_newest_record_read_backwards_is_the_one_reading_it_all_gives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    """`status` reads the log from its end (a log of years is megabytes): the newest readable record at any
    block size, past a torn last line, blank lines, another program's lines, CRs, a line longer than a block."""
    import json

    from deploylib import history

    monkeypatch.setattr(history, "BLOCK", block)
    log = tmp_path / "history.jsonl"

    def ours(n: int, **extra: object) -> bytes:
        rec = {"event": "deploy", "id": f"d-20261125T10000{n}.000000Z-abcdef", "ok": True, "operation": "deploy",
               "started": "2026-11-25T10:00:00.000Z", "finished": "2026-11-25T10:00:01.000Z", **extra}
        return json.dumps(rec).encode()

    cases = [
        b"",
        b"\n\n",
        ours(1) + b"\n",
        ours(1) + b"\n" + ours(2, files_updated=["x" * 300] * 40) + b"\n",
        ours(1) + b"\n" + ours(2) + b"\n" + b'{"event": "deploy", "id": "d-torn',
        ours(1) + b"\n" + ours(2) + b"\n\n" + b'{"someone": "else"}\n' + b"not json\n",
        ours(1) + b"\r\n" + ours(2) + b"\rgarbage\r\n",
        b"garbage\r" + ours(3) + b"\n" + b'{"event": "deploy"}\n',
        b"not json\n" * 3,
    ]
    for data in cases:
        log.write_bytes(data)
        records, _ = history.read(log)
        assert history.last(log) == (records[-1] if records else None), data[-80:]
    assert history.last(tmp_path / "missing.jsonl") is None
