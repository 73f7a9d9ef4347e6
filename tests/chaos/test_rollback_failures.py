"""Scenario 5: rollback after a partial failure, and a rollback that itself fails on a damaged backup."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from conftest import Project, bump, ok, tree
from invariants import baseline, check


def test_rollback_after_a_failed_deploy_restores_the_release_before(project: Project) -> None:
    ok(project.run("deploy"))
    v1 = project.managed()
    bump(project)
    ok(project.run("deploy"))
    v2 = project.managed()
    agents = json.loads((project.source / "agents.json").read_text())
    agents["agents"][0]["workflow"] = "missing"
    (project.source / "agents.json").write_text(json.dumps(agents))
    assert project.run("deploy").returncode == 1  # verify fails: undone
    assert project.managed() == v2
    ok(project.run("rollback"))
    assert project.managed() == v1


def test_rollback_from_a_damaged_backup_is_refused_before_anything_changes(project: Project) -> None:
    ok(project.run("deploy"))
    needed = hashlib.sha256((project.target / "workflow" / "plan.py").read_bytes()).hexdigest()
    bump(project)
    ok(project.run("deploy"))
    (project.target / "config.local.json").write_text("{}")
    before = tree(project.target)
    victim = project.backups / "objects" / needed[:2] / needed  # the one object this rollback restores
    os.chmod(victim, 0o644)
    victim.write_bytes(b"bit rot")
    proc = project.run("rollback")
    assert proc.returncode == 5
    assert "cannot be restored: 1 object(s) missing or damaged" in proc.stderr
    assert "production untouched" in proc.stderr and "Traceback" not in proc.stderr
    assert tree(project.target) == before
    assert project.leftovers() == []
    victim.unlink()
    assert project.run("rollback").returncode == 5  # missing is refused the same way
    assert tree(project.target) == before
    bump(project, text="# after\n")
    check(project, baseline(project), expect="old")


@pytest.mark.parametrize("part", ["header", "file list"])
def test_damaged_snapshot_manifest_blocks_prune_but_not_status(project: Project, part: str) -> None:
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    suffix = ".files.json" if part == "file list" else ".json"
    torn = next(p for p in sorted((project.backups / "snapshots").glob("*.json"))
                if p.name.endswith(".files.json") == (part == "file list"))
    torn.write_text("{torn")
    objects = sorted((project.backups / "objects").rglob("*"))
    proc = project.run("prune")
    assert proc.returncode == 5 and "prune refuses to collect objects" in proc.stderr
    assert str(torn) in proc.stderr and torn.name.endswith(suffix)
    assert sorted((project.backups / "objects").rglob("*")) == objects  # not one backup object lost
    ok(project.run("status"))
    if part == "header":
        code, listing = project.json("backups")
        assert code == 0 and "snapshot manifest is damaged" in listing["problems"][0]
