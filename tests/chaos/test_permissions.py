"""Scenario 8: read-only files and directories, a target owned by someone else, and a non-root deployer.

Running as root, the test creates an unprivileged user and runs the real CLI as that user (setpriv);
otherwise the suite itself is the non-root run and the root-only cases are skipped with the reason.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from conftest import EXAMPLE, REPO, Project, bump, ok, tree

USER = "mcpdeploy-chaos"


@pytest.fixture(scope="module")
def deployer() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("needs root to create the unprivileged deployer and files it does not own")
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        return pwd.getpwnam(USER)


@pytest.fixture
def shared(deployer: pwd.struct_passwd) -> Iterator[Project]:
    """A project in a directory the deployer can reach (pytest's tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="mcp-deploy-perm-", dir="/tmp"))
    os.chmod(base, 0o755)
    shutil.copytree(EXAMPLE, base / "dev")
    shutil.rmtree(base / "dev" / "workflow" / "__pycache__", ignore_errors=True)
    proj = Project(base)
    proj.write_config(source="dev", target="prod/server", state_dir="state", backup_dir="backups",
                      log="history.jsonl", include=["server.py", "agents.json", "pyproject.toml",
                                                    "workflow/**/*.py", "templates/*.json"],
                      validators=[{"type": "json"}], verify=[])
    (base / "prod").mkdir()
    for path in [base, *base.rglob("*")]:
        os.lchown(path, deployer.pw_uid, deployer.pw_gid)
    try:
        yield proj
    finally:
        shutil.rmtree(base, ignore_errors=True)


def as_user(project: Project, user: pwd.struct_passwd, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}  # its data dir is root's
    cmd = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
           sys.executable, "-m", "invoke", "--search-root", str(REPO), *args, "--config", str(project.config)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=project.root, env={**env, "HOME": "/tmp"},
                          timeout=60)


def test_non_root_deploy_with_read_only_files_and_directories(shared: Project, deployer: pwd.struct_passwd) -> None:
    ok(as_user(shared, deployer, "deploy"))
    assert os.stat(shared.target / "server.py").st_uid == deployer.pw_uid
    os.chmod(shared.target / "workflow" / "plan.py", 0o444)
    (shared.target / "notes.txt").write_text("read-only user file")
    os.chmod(shared.target / "notes.txt", 0o400)
    os.chmod(shared.target / "workflow", 0o555)
    for p in (shared.target / "notes.txt",):
        os.chown(p, deployer.pw_uid, deployer.pw_gid)
    bump(shared)
    (shared.source / "workflow" / "review.py").write_text("def run(task):\n    return task\n")
    os.chmod(shared.source / "workflow" / "plan.py", 0o644)
    before = tree(shared.target)
    refused = as_user(shared, deployer, "deploy")  # the commit would have to write in a read-only directory
    assert refused.returncode == 4, refused.stderr
    assert f"{shared.target / 'workflow'}: not writable by this user (uid {deployer.pw_uid})" in refused.stderr
    assert tree(shared.target) == before and shared.leftovers() == []
    os.chmod(shared.target / "workflow", 0o755)
    ok(as_user(shared, deployer, "deploy"))
    assert (shared.target / "workflow" / "plan.py").read_bytes() == (shared.source / "workflow/plan.py").read_bytes()
    assert stat.S_IMODE(os.stat(shared.target / "workflow" / "plan.py").st_mode) == 0o644  # the new file's mode
    assert (shared.target / "notes.txt").read_text() == "read-only user file"
    assert stat.S_IMODE(os.stat(shared.target / "notes.txt").st_mode) == 0o400
    assert shared.leftovers() == []
    ok(as_user(shared, deployer, "rollback"))
    assert shared.leftovers() == []


def test_target_owned_by_another_user_is_refused_cleanly(shared: Project, deployer: pwd.struct_passwd) -> None:
    ok(as_user(shared, deployer, "deploy"))
    for path in [shared.target, *shared.target.rglob("*")]:
        os.lchown(path, 0, 0)  # production now belongs to root
    os.chmod(shared.target, 0o755)
    before = tree(shared.target)
    bump(shared)
    proc = as_user(shared, deployer, "deploy")
    assert proc.returncode == 4, proc.stderr
    assert f"{shared.target}: not writable by this user (uid {deployer.pw_uid})" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree(shared.target) == before and shared.leftovers() == []


def test_unreadable_source_file_is_a_clear_refusal(shared: Project, deployer: pwd.struct_passwd) -> None:
    os.chmod(shared.source / "server.py", 0o600)
    os.chown(shared.source / "server.py", 0, 0)
    proc = as_user(shared, deployer, "deploy")
    assert proc.returncode == 4 and "server.py: cannot read file (permission denied)" in proc.stderr
    assert not shared.target.exists()


def test_a_root_owned_log_survives_a_non_root_deploy_under_protected_hardlinks(
        shared: Project, deployer: pwd.struct_passwd) -> None:
    """Case 4 of issue 10: the deployer can neither link nor read root's live log; nothing may copy or move it."""
    ok(as_user(shared, deployer, "deploy"))
    logs = shared.target / "logs"
    logs.mkdir()
    log = logs / "daemon.log"
    log.write_text("root's daemon writes here\n")
    os.chmod(log, 0o600)  # owned by root: no link, no read for the deployer
    inode = os.stat(log).st_ino
    bump(shared)
    ok(as_user(shared, deployer, "deploy"))
    ok(as_user(shared, deployer, "rollback"))
    assert os.stat(log).st_ino == inode and os.stat(log).st_uid == 0
    assert log.read_text() == "root's daemon writes here\n"
    assert shared.leftovers() == []
