"""The spare tree: the tree a swap replaced, kept beside production so the next stage writes only what changed.

A stage refreshed from the spare must be exactly what a fresh replica would be: production as the user
left it (their deletions included) plus the change, nothing of the older tree leaking back.
"""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

from conftest import Project, bump, ok, tree
from invariants import baseline, check


def spare(project: Project) -> Path:
    return project.target.parent / f".{project.target.name}.deploy-spare"


def with_spare(project: Project) -> None:
    """Two deploys: the second keeps the first's tree as the spare, user files and all."""
    ok(project.run("deploy"))
    (project.target / "notes").mkdir()
    (project.target / "notes" / "old.txt").write_text("the user will delete this")
    (project.target / "cache").mkdir()
    (project.target / "cache" / "entry").write_text("cached")
    (project.target / "config.local.json").write_text('{"v": 1}')
    bump(project)
    ok(project.run("deploy"))
    assert (spare(project) / "notes" / "old.txt").exists()


def test_stage_from_spare_is_production_as_the_user_left_it_plus_the_change(project: Project) -> None:
    with_spare(project)
    # the user's changes to production since the last deploy
    (project.target / "notes" / "old.txt").unlink()
    (project.target / "logs").mkdir()
    (project.target / "logs" / "today.log").write_text("started\n")
    os.symlink("logs/today.log", project.target / "current.log")
    (project.target / "config.local.json.tmp").write_text('{"v": 2}')
    os.replace(project.target / "config.local.json.tmp", project.target / "config.local.json")  # new inode
    (project.target / "cache" / "entry").unlink()
    (project.target / "cache").rmdir()
    (project.target / "cache").write_text("now a file")
    os.chmod(project.target / "notes", 0o750)
    # and the developer's
    bump(project, "workflow/review.py")
    (project.source / "workflow" / "extra").mkdir()
    (project.source / "workflow" / "extra" / "new.py").write_text("X = 1\n")
    (project.source / "templates" / "review.json").unlink()
    before = tree(project.target)

    ok(project.run("deploy"))

    expected = {k: v for k, v in before.items() if k not in ("VERSION", "templates/review.json")}
    for rel in ("workflow/review.py", "workflow/extra/new.py"):
        expected[rel] = (project.source / rel).read_bytes()
    expected["workflow/extra/"] = "dir"
    assert {k: v for k, v in tree(project.target).items() if k != "VERSION"} == expected
    assert stat.S_IMODE((project.target / "notes").stat().st_mode) == 0o750
    assert not (project.target / "notes" / "old.txt").exists()  # still held by the spare: must not come back


def test_unchanged_files_are_not_rewritten(project: Project) -> None:
    """A running server keeps reading the files it has open: unchanged ones stay the very same inode."""
    with_spare(project)
    inode = (project.target / "server.py").stat().st_ino
    bump(project, "workflow/review.py")
    ok(project.run("deploy"))
    assert (project.target / "server.py").stat().st_ino == inode
    assert (project.target / "workflow" / "review.py").read_bytes() == (project.source / "workflow/review.py").read_bytes()


def test_rollback_from_spare_restores_the_exact_tree(project: Project) -> None:
    with_spare(project)
    (project.target / "logs").mkdir()
    (project.target / "logs" / "x.log").write_text("kept across the rollback\n")
    before_bump = {k: v for k, v in tree(spare(project)).items() if k != "VERSION"}
    ok(project.run("rollback"))
    now = {k: v for k, v in tree(project.target).items() if k != "VERSION"}
    assert now["workflow/plan.py"] == before_bump["workflow/plan.py"]
    assert now["logs/x.log"] == b"kept across the rollback\n"
    assert "notes/old.txt" in now and now["config.local.json"] == b'{"v": 1}'


def test_a_spare_that_is_not_a_directory_is_replaced(project: Project) -> None:
    ok(project.run("deploy"))
    spare(project).write_text("not a tree")
    bump(project)
    base = baseline(project)
    ok(project.run("deploy"))
    assert spare(project).is_dir()
    check(project, base, expect="new")


@pytest.mark.parametrize("point", ["STAGING", "spare:taken", "copy:1", "VALIDATING", "RECORDING", "COMPLETE"])
def test_deploy_from_spare_killed_at_each_point_recovers(project: Project, point: str) -> None:
    with_spare(project)
    (project.target / "logs").mkdir()
    (project.target / "logs" / "server.log").write_text("line\n")
    bump(project, "workflow/review.py")
    base = baseline(project)
    proc = project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": point})
    assert proc.returncode == -signal.SIGKILL
    check(project, base, expect="new" if point in ("RECORDING", "COMPLETE") else "old")
