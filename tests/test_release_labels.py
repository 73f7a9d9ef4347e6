"""Releases people can tell apart: version, short commit, id and time wherever a release is shown.

The example's pyproject says 0.1.0 and nobody bumps it: three deploys, three releases, one version.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import anyio
import pytest

from conftest import Project, ok, tree
from mcp_client import call, mcp_session

GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(project: Project, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid", *args],
                          cwd=project.source, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def commit_and_deploy(project: Project, line: str) -> tuple[str, str]:
    """Append `line` to server.py, commit, deploy; (full commit, deploy id)."""
    server = project.source / "server.py"
    server.write_text(server.read_text() + f"# {line}\n")
    git(project, "commit", "-qam", line)
    _, done = project.json("deploy")
    assert done["changed"] is True, done
    return git(project, "rev-parse", "HEAD"), done["deploy_id"]


@pytest.fixture
def releases(project: Project) -> tuple[Project, list[tuple[str, str]]]:
    """Two releases of version 0.1.0 at two commits, the second live."""
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "first")
    return project, [commit_and_deploy(project, "one"), commit_and_deploy(project, "two")]


def test_status_history_and_backups_show_version_commit_id_and_time(
        releases: tuple[Project, list[tuple[str, str]]]) -> None:
    project, [(c1, d1), (c2, d2)] = releases
    status = ok(project.run("status")).stdout
    assert status.startswith(f"Production v0.1.0 ({c2[:7]}, ")
    when = project.version()["deployed"]
    assert f"release:  0.1.0 ({c2[:7]}) {d2} (deploy at {when[:10]} {when[11:19]}Z)" in status
    _, js = project.json("status")
    assert js["git_commit"] == c2 and js["release"] == d2 and js["deployed_at"] == when

    history = ok(project.run("history")).stdout.splitlines()
    finished = project.history()[0]["finished"]
    assert all(text in history[0] for text in ("0.1.0", d1, c1[:7], f"{finished[:10]} {finished[11:19]}Z"))
    assert all(text in history[1] for text in ("0.1.0", d2, c2[:7])) and c2[:7] not in history[0]
    assert [r["git_commit"] for r in project.history()] == [c1, c2]

    backups = ok(project.run("backups")).stdout.splitlines()
    assert len(backups) == 2 and all(word in backups[1] for word in ("0.1.0", c1[:7], d1))
    _, listing = project.json("backups")
    assert listing["snapshots"][0]["git_commit"] == c1 and listing["snapshots"][0]["release"] == d1


def test_rollback_to_a_version_several_releases_share_is_refused_listing_them(
        releases: tuple[Project, list[tuple[str, str]]]) -> None:
    project, [(c1, d1), (c2, d2)] = releases
    commit_and_deploy(project, "three")
    before = tree(project.target)
    proc = project.run("rollback", "--to", "0.1.0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert "'0.1.0' is the version of 2 releases" in error
    assert all(text in error for text in (d1, c1[:7], d2, c2[:7]))
    assert tree(project.target) == before

    ok(project.run("rollback", "--to", d1))
    assert project.version()["git_commit"] == c1 and project.version()["release"] == d1


def test_no_id_is_said_twice_when_the_version_is_the_id(project: Project) -> None:
    (project.source / "pyproject.toml").unlink()  # no version anywhere: the deploy id is the version
    project.write_config(include=["server.py", "agents.json", "workflow/**/*.py", "templates/*.json"])
    out = ok(project.run("deploy")).stdout.splitlines()[-1]
    first = project.version()["deploy_id"]
    assert out.startswith(f"Deployed {first} in ") and out.count(first) == 1
    (project.source / "server.py").write_text((project.source / "server.py").read_text() + "# 2\n")
    _, done = project.json("deploy")
    assert done["message"] == f"deployed {done['deploy_id']} (1 file)"
    out = ok(project.run("rollback")).stdout.splitlines()[-1]
    rollback_id = project.version()["deploy_id"]
    assert out.startswith(f"Rolled back to release {first} from snapshot s-")
    assert f"as {rollback_id} in " in out and out.count(first) == 1


def test_mcp_tools_show_commit_release_and_time(releases: tuple[Project, list[tuple[str, str]]]) -> None:
    project, [(c1, d1), (c2, d2)] = releases
    server = project.source / "server.py"
    server.write_text(server.read_text() + "# three\n")
    git(project, "commit", "-qam", "three")
    c3 = git(project, "rev-parse", "HEAD")

    async def scenario() -> tuple[Any, ...]:
        async with mcp_session(project.config) as s:
            return (await call(s, "default_status"), await call(s, "default_deploy"),
                    await call(s, "default_rollback", list_backups=True), await call(s, "default_history"))

    (_, status), (_, preview), (_, listing), (_, history) = anyio.run(scenario)
    assert status["git_commit"] == c2 and status["release"] == d2 and status["deployed_at"]
    assert status["summary"].startswith(f"Production v0.1.0 ({c2[:7]}, ")
    assert f"0.1.0 ({c2[:7]}) {d2} -> 0.1.0 ({c3[:7]})" in preview["summary"]
    row = listing["snapshots"][0]
    assert (row["version"], row["git_commit"], row["release"]) == ("0.1.0", c1, d1) and row["deployed"]
    assert [(r["id"], r["git_commit"]) for r in history["records"]] == [(d1, c1), (d2, c2)]
