"""Hostile tests of the commit's last look (`Commit._as_backed_up`) and of reads that must never follow a
link swapped in, nor wait on a FIFO: real CLI processes held at a fault point while production changes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from conftest import Project, bump, ok, tree
from test_user_files import deploy_paused_at


def paused(project: Project, tmp_path: Path, point: str, meanwhile: Callable[[], object],
           *args: str) -> tuple[int, str]:
    """A command held at `point` while production changes; a hung one fails the test in 30 s, not 60."""
    return deploy_paused_at(project, tmp_path, point, meanwhile, *args, timeout=30)


def test_an_unchanged_file_swapped_for_a_fifo_before_the_validators_read_it_never_hangs_the_deploy(
        project: Project, tmp_path: Path) -> None:
    """Validators read the release's unchanged files where they are, in production, by `read_bytes`: a
    managed file swapped for a FIFO after preflight (here agents.json, which the json validator reads) held
    the deploy, and its lock, until someone wrote to the FIFO. Now the validator refuses it at once: the
    deploy fails, undone, the FIFO as the user made it, nothing else changed."""
    ok(project.run("deploy"))
    bump(project)
    agents = project.target / "agents.json"
    before = {p: b for p, b in tree(project.target).items() if p != "agents.json"}

    def swap() -> None:
        agents.unlink()
        os.mkfifo(agents)

    code, err = paused(project, tmp_path, "VALIDATING", swap)
    assert code != 0, err
    assert "agents.json" in err and "not a regular file" in err, err
    assert agents.is_fifo()
    assert {p: b for p, b in tree(project.target).items() if p != "agents.json"} == before
    assert project.leftovers() == []


def test_a_committed_file_edited_before_a_failed_verify_is_undone_is_never_lost(
        project: Project, tmp_path: Path) -> None:
    """The commit put the new plan.py; a running server (or a hand) wrote to it while verify ran; verify
    failed, and the undo renamed the old plan.py over it: the edit was in no backup. Now the undo leaves it
    as it is (as it already left an *added* file that no longer holds what the release put), undoes the
    rest, and names it in a note."""
    ok(project.run("deploy"))
    bump(project)
    project.write_config(verify=[{"type": "command", "run": "exit 1"}])
    plan = project.target / "workflow" / "plan.py"
    users = b"# the user's edit, made after the commit\n"

    def edit() -> None:
        plan.write_bytes(plan.read_bytes() + users)

    old = tree(project.target)
    code, err = paused(project, tmp_path, "VERIFYING", edit)
    assert code == 1, err
    assert ("error: deploy failed at verify: verify command: `exit 1` exited 1 (undone; production is as before, "
            "but for 1 file(s) changed there after the commit put them, left as they are (no backup holds those "
            "changes): workflow/plan.py)") in err
    assert plan.read_bytes() == (project.source / "workflow" / "plan.py").read_bytes() + users
    assert {p: b for p, b in tree(project.target).items() if p != "workflow/plan.py"} == \
        {p: b for p, b in old.items() if p != "workflow/plan.py"}
    ok(project.run("status"))
    assert project.leftovers() == []


def test_a_committed_file_edited_after_a_kill_is_never_lost_by_the_recovery(project: Project) -> None:
    """The deploy was killed (-9) right after the commit put the new plan.py; before the next command the
    user edited that file. The next command's recovery undoes the commit: it renamed the old plan.py over
    the edit, which no backup held. Now the file stays as the user left it; the rest is undone."""
    ok(project.run("deploy"))
    old = tree(project.target)
    bump(project)
    killed = project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": "commit:1"})
    assert killed.returncode == -9, killed.stderr
    plan = project.target / "workflow" / "plan.py"
    assert plan.read_bytes() != old["workflow/plan.py"]  # the new one is in production
    users = plan.read_bytes() + b"# the user's edit, after the crash\n"
    plan.write_bytes(users)
    recovered = ok(project.run("status"))
    assert ("rolled it back; production is as before it started, but for 1 file(s) changed there after the commit "
            "put them, left as they are (no backup holds those changes): workflow/plan.py") in recovered.stdout
    assert plan.read_bytes() == users
    assert {p: b for p, b in tree(project.target).items() if p != "workflow/plan.py"} == \
        {p: b for p, b in old.items() if p != "workflow/plan.py"}
    assert project.leftovers() == []


def test_an_undo_cut_short_and_run_again_names_no_file_it_restored_itself(project: Project) -> None:
    """An undo killed after restoring plan.py runs again at the next command: plan.py then holds the old
    bytes, not the release's, and must not be reported as a file someone changed (nor be touched)."""
    ok(project.run("deploy"))
    old = tree(project.target)
    bump(project)
    bump(project, "server.py")
    project.write_config(verify=[{"type": "command", "run": "exit 1"}])
    killed = project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": "undo:2"})
    assert killed.returncode == -9, killed.stderr
    recovered = ok(project.run("status"))
    assert "rolled it back; production is as before it started\n" in recovered.stdout, recovered.stdout
    assert tree(project.target) == old
    assert project.leftovers() == []
