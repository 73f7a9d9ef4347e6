"""Hostile review, input: flags and config keys that point the tool at what it must not touch or at values
that mean nothing. Each: exit 2, one line naming the flag or key and what to do, no traceback, and
production, the store and the state dir exactly as before."""

from __future__ import annotations

import pytest

from conftest import Project, bump, ok, tree


def everything(project: Project) -> dict[str, object]:
    """Production (and the stages beside it), the store, the state dir, the history log."""
    return {"prod": tree(project.target.parent), "store": tree(project.backups), "state": tree(project.state),
            "log": project.log.read_bytes() if project.log.exists() else None}


def refused(project: Project, *args: str, expect: str) -> None:
    before = everything(project)
    proc = project.run(*args)
    assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
    assert expect in proc.stderr, (expect, proc.stderr)
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert everything(project) == before


@pytest.mark.parametrize("task", ["deploy", "rollback", "prune"])
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "-1", "-0.5", "1e999"])
def test_a_wait_that_is_not_a_finite_number_of_seconds_is_refused(project: Project, task: str,
                                                                   value: str) -> None:
    ok(project.run("deploy"))
    bump(project)
    refused(project, task, "--wait", value,
            expect=f"--wait: expected a finite number of seconds, 0 or more, got '{value}'")


@pytest.mark.parametrize("glob,why", [
    ("../x", "contains '..'"),
    ("/etc/passwd", "is absolute"),
    ("a/../../b", "contains '..'"),
    ("", "is empty"),
])
def test_an_adopt_glob_leaving_the_target_is_refused_before_anything_changes(project: Project, glob: str,
                                                                             why: str) -> None:
    ok(project.run("deploy"))
    bump(project)
    (project.target / "mine.txt").write_text("the user's\n")
    refused(project, "deploy", "--adopt", glob, expect=f"--adopt '{glob}': {why}")
    refused(project, "deploy", "--adopt", glob, expect=f"; name files inside the target {project.target} with a "
                                                       "glob relative to it, e.g. --adopt 'config/*.json'")
    refused(project, "deploy", "--dry-run", "--adopt", "server.py", "--adopt", glob, expect=f"--adopt '{glob}'")
