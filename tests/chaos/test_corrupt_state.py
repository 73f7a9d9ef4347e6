"""Scenario 7: damaged VERSION, history, journal and lock files: a clear message, never a traceback,
and the next operation recovers."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import Project, bump, ok, tree


@pytest.mark.parametrize("damage", [b'{"version": "0.1', b"\x00\xff\xfe garbage", b"[1, 2, 3]", b""])
def test_damaged_version_file(project: Project, damage: bytes) -> None:
    ok(project.run("deploy"))
    (project.target / "VERSION").write_bytes(damage)
    status = ok(project.run("status"))
    assert "VERSION" in status.stdout and "Traceback" not in status.stderr
    bump(project)
    proc = ok(project.run("deploy"))
    assert "Traceback" not in proc.stderr
    assert project.version()["version"] == "0.1.0"
    assert project.managed()["workflow/plan.py"] == (project.source / "workflow/plan.py").read_bytes()


def test_history_with_a_torn_last_line(project: Project) -> None:
    ok(project.run("deploy"))
    with open(project.log, "ab") as f:
        f.write(b'{"event": "dep')
    code, hist = project.json("history")
    assert code == 0 and hist["damaged_lines"] == 1
    bump(project)
    ok(project.run("deploy"))
    lines = project.log.read_text().splitlines()
    assert lines[-2] == '{"event": "dep'  # the torn line is left as evidence, the next record starts fresh
    assert json.loads(lines[-1])["event"] == "deploy"


@pytest.mark.parametrize("beside", [[], [".server.deploy-state"]])
def test_garbage_journal_with_a_leftover_stage_is_recovered(project: Project, beside: list[str]) -> None:
    """Recovery finds the stage by its operation id, not by the other `.server.deploy-*` entries beside it
    (the default state dir), and undoes the commit from the plan the stage keeps."""
    if beside:
        project.write_config(state_dir="prod/.server.deploy-state")
        ok(project.run("deploy"))
        bump(project, text="# first\n")
    ok(project.run("deploy"))
    v1 = project.managed()
    assert project.leftovers() == beside
    bump(project)
    proc = project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": "VERIFYING"})
    assert proc.returncode == -9
    (project.state / "journal.json").write_bytes(b"\x00garbage")
    status = ok(project.run("status"))
    assert "recovered interrupted deploy" in status.stdout and "Traceback" not in status.stderr
    assert project.managed() == v1 and project.leftovers() == beside
    ok(project.run("deploy"))


@pytest.mark.parametrize("damage", [{"state": "SWAPPING"}, {"target": "/"}, {"stage": "/etc"},
                                    {"commit": {"removes": [], "rmdirs": [["../../x", 493]], "mkdirs": [],
                                                "puts": [], "version_kept": False}}])
def test_a_hostile_or_unknown_journal_is_kept_and_nothing_is_touched(project: Project,
                                                                     damage: dict[str, object]) -> None:
    """Paths and states read back from the journal are never trusted: exit 5, the journal kept as evidence."""
    ok(project.run("deploy"))
    bump(project)
    proc = project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": "VERIFYING"})
    assert proc.returncode == -9
    journal = project.state / "journal.json"
    data = json.loads(journal.read_text())
    data.update(damage)
    journal.write_text(json.dumps(data))
    before, outside = tree(project.target), tree(project.root / "dev")
    proc = project.run("status")
    assert proc.returncode == 5, proc.stderr
    assert "Traceback" not in proc.stderr and "kept" in proc.stderr
    assert tree(project.target) == before and tree(project.root / "dev") == outside and journal.exists()
    assert project.run("deploy").returncode == 5


def test_garbage_journal_alone_is_set_aside(project: Project) -> None:
    ok(project.run("deploy"))
    (project.state / "journal.json").write_text("not json")
    status = ok(project.run("status"))
    assert "damaged journal with no operation in flight; kept it as journal.json.damaged-" in status.stdout
    assert not (project.state / "journal.json").exists()
    assert [p.read_text() for p in project.state.glob("journal.json.damaged-*")] == ["not json"]


def test_garbage_lock_file(project: Project) -> None:
    ok(project.run("deploy"))
    (project.state / "lock").write_bytes(b"\xde\xad\xbe\xef")
    code, status = project.json("status")
    assert code == 0 and status["lock"] is None
    bump(project)
    ok(project.run("deploy"))


def test_lost_state_dir_refuses_to_guess_and_adopt_takes_over(project: Project) -> None:
    """Without the record of what was deployed, deployed files are indistinguishable from the user's: the
    deploy refuses, naming them, until --adopt hands them over."""
    ok(project.run("deploy"))
    shutil.rmtree(project.state)
    bump(project)
    before = tree(project.target)
    proc = project.run("deploy")
    assert proc.returncode == 4, proc.stderr
    assert "would overwrite 9 file(s) that MCP Deploy did not deploy (no record of what the release in " \
           "production deployed was found)" in proc.stderr and "--adopt" in proc.stderr
    assert tree(project.target) == before
    proc = ok(project.run("deploy", "--adopt", "**"))
    assert project.managed()["workflow/plan.py"] == (project.source / "workflow/plan.py").read_bytes()
