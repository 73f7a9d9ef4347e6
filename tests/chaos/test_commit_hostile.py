"""Hostile tests of the commit's last look (`Commit._as_backed_up`) and of reads that must never follow a
link swapped in, nor wait on a FIFO: real CLI processes held at a fault point while production changes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

from conftest import Project, bump, ok, tree
from test_user_files import start, wait_for


def paused(project: Project, tmp_path: Path, point: str, meanwhile: Callable[[], object], *args: str,
           timeout: float = 30) -> tuple[int, str]:
    """Like test_user_files.deploy_paused_at, but a hung run is killed (and fails the test) instead of
    holding the suite for a minute."""
    pause = tmp_path / "pause"
    pause.mkdir()
    proc = start(project, *(args or ("deploy",)), env={"MCP_DEPLOY_PAUSE_AT": f"{point}:{pause}"})
    wait_for(pause / "reached")
    meanwhile()
    (pause / "go").touch()
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"{args or 'deploy'} hung after production changed at {point}") from None
    assert "Traceback" not in err, err
    return proc.returncode, err


def test_a_file_swapped_for_a_fifo_before_the_backup_copies_never_hangs_the_deploy(
        project: Project, tmp_path: Path) -> None:
    """The backup copies a file whose hash the cache vouches for with the kernel (`kernel_copy`), which
    opened it without O_NONBLOCK: a FIFO swapped in after preflight held the deploy (and its lock) until
    someone wrote to it. Now refused at once like a link: exit 1, undone, the FIFO left as it is."""
    ok(project.run("deploy"))
    bump(project)
    plan = project.target / "workflow" / "plan.py"

    def swap() -> None:
        plan.unlink()
        os.mkfifo(plan)

    code, err = paused(project, tmp_path, "BACKING_UP", swap)
    assert code == 1, err
    assert f"deploy failed at backup" in err and str(plan) in err, err
    assert plan.is_fifo()
    ok(project.run("status"))
    assert project.leftovers() == []


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
