"""Rollback previews name their snapshot and can be applied exactly with --plan."""

from __future__ import annotations

from conftest import Project, bump, ok, tree


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
