"""Where the version comes from (real git), and the preflight note about running processes."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import Project, bump, ok


def git(cwd, *args: str) -> str:  # type: ignore[no-untyped-def]
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


def test_version_from_pyproject_then_git_describe_then_deploy_id(project: Project) -> None:
    git(project.source, "init", "-q")
    git(project.source, "add", "-A")
    git(project.source, "commit", "-qm", "first")
    git(project.source, "tag", "v2.0.0")
    ok(project.run("deploy"))
    v = project.version()
    assert v["version"] == "0.1.0"  # pyproject.toml wins
    assert v["git_commit"] == git(project.source, "rev-parse", "HEAD") and v["git_dirty"] is False
    (project.source / "pyproject.toml").unlink()
    git(project.source, "commit", "-qam", "drop pyproject")
    bump(project)  # uncommitted edit: dirty
    ok(project.run("deploy"))
    v = project.version()
    assert v["version"].startswith("v2.0.0-1-g") and v["version"].endswith("-dirty")
    assert v["git_dirty"] is True
    (project.source / ".git").rename(project.root / "git-aside")
    bump(project)
    ok(project.run("deploy"))
    v = project.version()
    assert v["version"] == v["deploy_id"] and v["git_commit"] is None


def test_preflight_names_processes_running_in_the_target(project: Project) -> None:
    ok(project.run("deploy"))
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=project.target)
    try:
        time.sleep(0.2)
        bump(project)
        proc = ok(project.run("deploy"))
        assert f"process {server.pid} (" in proc.stdout
        assert "still runs the old code: restart it to load the new release" in proc.stdout
    finally:
        server.kill()
        server.wait()
