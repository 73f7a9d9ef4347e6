"""Hostile state, continued: journals and state files edited to lie, to say two things, or to be unreadable.

Recovery acts on what the journal says, so a journal that does not describe an operation that really
died on this target must never be acted on: exit 5, the journal kept, nothing touched. A journal whose
bytes do not parse is recovered from the stage (or there is nothing to recover) and kept aside as
evidence, never deleted. Every state file read back is parsed by one helper that refuses duplicate keys,
NaN/Infinity and absurd nesting, so each reader's own "damaged" message names the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import Project, bump, ok, tree
from deploylib.ids import new_id
from deploylib.layout import release_path, releases_dir, stage_path, target_lock_path


def journal(project: Project) -> Path:
    return project.state / "journal.json"


def crashed(project: Project, at: str = "VERIFYING") -> dict[str, Any]:
    """Two releases deployed, then a third killed at `at`: the journal and stage it leaves."""
    ok(project.run("deploy"))
    bump(project, text="# second\n")
    ok(project.run("deploy"))
    bump(project)
    assert project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": at}).returncode == -9
    data: dict[str, Any] = json.loads(journal(project).read_text())
    return data


def untouched(project: Project) -> dict[str, object]:
    """Everything recovery could touch: production, the stages beside it, the state dir, the store."""
    lock_files = ("lock", target_lock_path(project.target).name)  # each command writes its pid there
    return {name: {k: v for k, v in tree(root).items() if k not in lock_files}
            for name, root in (("prod", project.target.parent), ("state", project.state),
                               ("store", project.backups))}


def assert_refused(project: Project, before: dict[str, object], *expected: str) -> None:
    for args in (("status",), ("deploy",), ("rollback",)):
        proc = project.run(*args)
        assert proc.returncode == 5, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
        assert f"{journal(project)}: " in proc.stderr and "kept" in proc.stderr, proc.stderr
        for text in expected:
            assert text in proc.stderr, (text, proc.stderr)
    assert untouched(project) == before


def fake_journal(project: Project, state: str, op_id: str) -> dict[str, Any]:
    return {"op_id": op_id, "operation": "deploy", "state": state, "target": str(project.target),
            "stage": str(stage_path(project.target, op_id)), "previous_id": None, "snapshot_id": None,
            "commit": None, "failed_state": None, "error": None, "transitions": ["CHECKING", state]}


@pytest.mark.parametrize("state", ["RECORDING", "COMPLETE"])
@pytest.mark.parametrize("planted_record", [False, True])
def test_a_journal_claiming_an_operation_passed_verify_must_name_the_live_release(
        project: Project, state: str, planted_record: bool) -> None:
    """An invented op id at RECORDING/COMPLETE would make recovery 'finish' it, deleting the record of the
    release really in production (its files would turn into a stranger's). A planted record of that id
    does not help: production's VERSION names another release."""
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    op_id = new_id("d")
    if planted_record:
        live = json.loads((project.target / "VERSION").read_text())["deploy_id"]
        release_path(project.state, op_id).write_bytes(release_path(project.state, live).read_bytes())
    journal(project).write_text(json.dumps(fake_journal(project, state, op_id)))
    before = untouched(project)
    why = "but production's VERSION names" if planted_record else \
        f"but its release record {release_path(project.state, op_id)} does not exist"
    assert_refused(project, before, f"it says deploy {op_id} passed verify, {why}")
    assert len(list(releases_dir(project.state).glob("*.json"))) == 1 + planted_record


def test_a_journal_naming_another_operations_backup_is_refused(project: Project) -> None:
    """Undoing the backup step deletes the journal's snapshot: it must be the one this operation took."""
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    target = json.loads(project.run("backups", "--json").stdout)["rollback_target"]
    data = fake_journal(project, "STAGING", new_id("d"))
    data["snapshot_id"] = target
    journal(project).write_text(json.dumps(data))
    before = untouched(project)
    assert_refused(project, before, f"its backup {target} was taken by another operation")


def test_a_commit_plan_that_differs_from_the_stages_copy_is_refused(project: Project) -> None:
    data = crashed(project)
    put = data["commit"]["puts"][0]
    data["commit"]["puts"].insert(0, ["server.py" if put[0] != "server.py" else "agents.json", None])
    journal(project).write_text(json.dumps(data))
    before = untouched(project)
    assert_refused(project, before, "its commit plan differs from the one its stage keeps")


def test_a_journal_with_duplicate_keys_is_refused(project: Project) -> None:
    """`{"state": "RECORDING", ..., "state": "VERIFYING"}`: json.loads keeps the last; which did the writer
    mean? Neither is acted on."""
    crashed(project)
    text = journal(project).read_text()
    journal(project).write_text(text.replace("{", '{\n "state": "RECORDING",', 1))
    before = untouched(project)
    assert_refused(project, before, "journal is damaged (duplicate key 'state')")


@pytest.mark.parametrize("damage", [
    {"transitions": "abc"}, {"transitions": [["x"]]}, {"error": {}}, {"state": "IDLE"}, {"state": ["x"]},
    {"state": "ROLLING_BACK", "failed_state": "ROLLING_BACK"}, {"state": "ROLLING_BACK", "failed_state": "IDLE"},
    {"commit": "MODE_BIG"}, {"commit": "MODE_FLOAT"},
    {"takes": {"server.py": [1, 2, 3]}}, {"takes": {"workflow/plan.py": [1, -2, 3]}},
    {"takes": {"workflow/plan.py": [1, True, 3]}}, {"takes": {"workflow/plan.py": [1, 2]}},
    {"takes": {"workflow/plan.py": [1, 2, 1 << 64]}}, {"takes": ["workflow/plan.py"]},
])
def test_every_journal_field_is_checked_before_recovery_acts(project: Project, damage: dict[str, Any]) -> None:
    """`takes`: a take must name a put that replaces a backed-up file (server.py is not changed), with a
    device and two inodes; the stage's copy of the plan says the same (else that difference alone refuses)."""
    data = crashed(project)
    if "takes" in damage:
        data["commit"]["takes"] = damage.pop("takes")
        Path(data["stage"], "commit.json").write_text(json.dumps(data["commit"]))
    if damage.get("commit") in ("MODE_BIG", "MODE_FLOAT"):
        mode = damage.pop("commit")
        data["commit"]["mkdirs"].append(["newdir", 493])
        text = json.dumps({**data, **damage}).replace(
            "493]", {"MODE_BIG": "99999999999999999999]", "MODE_FLOAT": "493.0]"}[mode])
    else:
        text = json.dumps({**data, **damage})
    journal(project).write_text(text)
    before = untouched(project)
    assert_refused(project, before, "journal is damaged")


@pytest.mark.parametrize("damage", [b"\x00garbage", b"\xff\xfe not utf-8", b'{"op_id": ' + b"1" * 5000 + b"}",
                                    b'{"mode": Infinity}', b"[" * 100_000])
def test_an_unparsable_journal_without_a_stage_is_kept_aside_not_deleted(project: Project,
                                                                         damage: bytes) -> None:
    """NaN and Infinity are not JSON (Python's json.loads accepts them; int(Infinity) would crash)."""
    ok(project.run("deploy"))
    journal(project).write_bytes(damage)
    proc = ok(project.run("status"))
    kept = sorted(project.state.glob("journal.json.damaged-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == damage
    assert f"{journal(project)}: damaged journal with no operation in flight; kept it as {kept[0].name}" \
        in proc.stdout
    assert not journal(project).exists()
    bump(project)
    ok(project.run("deploy"))
    assert kept[0].read_bytes() == damage


def test_an_unparsable_journal_with_a_stage_is_recovered_and_kept_aside(project: Project) -> None:
    crashed(project)
    v3 = json.loads((project.target / "VERSION").read_text())["deploy_id"]  # committed, not yet verified
    journal(project).write_bytes(b"[" * 100_000)
    proc = ok(project.run("status"))
    assert "recovered interrupted deploy" in proc.stdout and "kept the damaged journal as" in proc.stdout
    assert [p.read_bytes() for p in project.state.glob("journal.json.damaged-*")] == [b"[" * 100_000]
    assert project.leftovers() == []
    assert json.loads((project.target / "VERSION").read_text())["deploy_id"] != v3  # undone: verify's verdict
    ok(project.run("deploy"))                                                        # was lost with the journal


def test_a_journal_whose_stage_differs_says_so(project: Project) -> None:
    """The target is right, only the stage is not the operation's: the message must say which."""
    data = crashed(project)
    other = stage_path(project.target, new_id("d"))
    data["stage"] = str(other)
    journal(project).write_text(json.dumps(data))
    before = untouched(project)
    proc = project.run("status")
    assert proc.returncode == 5, proc.stderr
    assert f"the journal's stage is {other}, not {stage_path(project.target, data['op_id'])}" in proc.stderr
    assert "the journal is for" not in proc.stderr
    assert untouched(project) == before
