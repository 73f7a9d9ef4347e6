"""Scenario 8: read-only files and directories, a target owned by someone else, and a non-root deployer.

Running as root, the test runs the real CLI under an unused uid and gid (setpriv; no account is created,
so the machine is left as it was) from a world-readable copy of the code it needs, because the repo, its
venv and the interpreter may sit in directories only root can enter (`mktemp -d` makes them 0700).
Otherwise the suite itself is the non-root run and the root-only cases are skipped with the reason.
"""

from __future__ import annotations

import grp
import importlib.metadata
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

from conftest import EXAMPLE, REPO, Project, bump, ok, tree


class Deployer(NamedTuple):
    """An unprivileged uid/gid with no account, and a Python plus code that it can read."""

    pw_uid: int
    pw_gid: int
    python: str
    runtime: Path  # holds repo/ (tasks.py, deploylib) and site/ (the installed dependencies)


@pytest.fixture(scope="module")
def deployer() -> Iterator[Deployer]:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged uid and own files it does not")
    uid = gid = unused_id()
    runtime = Path(tempfile.mkdtemp(prefix="mcp-deploy-perm-runtime-", dir="/tmp"))
    try:
        copy_runtime(runtime)
        yield Deployer(uid, gid, python_for(uid, gid), runtime)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def unused_id(start: int = 64999) -> int:
    """A number that is neither a uid nor a gid here, so files it owns belong to nobody real."""
    for candidate in range(start, 1000, -1):
        try:
            pwd.getpwuid(candidate)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(candidate)
        except KeyError:
            return candidate
    raise AssertionError("no unused uid/gid between 1000 and 64999")


def copy_runtime(runtime: Path) -> None:
    """tasks.py, deploylib and every installed distribution mcp-deploy depends on, readable by anyone."""
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "deploylib", runtime / "repo" / "deploylib", ignore=ignore)
    shutil.copy(REPO / "tasks.py", runtime / "repo" / "tasks.py")
    for dist in dependencies():
        for file in dist.files or []:
            source = Path(str(dist.locate_file(file)))
            if ".." in file.parts or "__pycache__" in file.parts or not source.is_file():
                continue
            (runtime / "site" / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, runtime / "site" / file)
    for path in [runtime, *runtime.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def dependencies() -> list[importlib.metadata.Distribution]:
    """The installed distributions pyproject.toml requires, transitively (extras left out)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = list(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    while todo:
        key = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", todo.pop()).group()).lower()  # type: ignore[union-attr]
        if key in found:
            continue
        try:
            found[key] = importlib.metadata.distribution(key)
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [req for req in found[key].requires or [] if "extra ==" not in req]
    return list(found.values())


def python_for(uid: int, gid: int) -> str:
    """An interpreter of this Python's version that `uid` can run (the venv's may be under /root or a
    0700 directory); it must match, because the copied packages include compiled extensions."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(sys.executable), getattr(sys, "_base_executable", sys.executable),
                  shutil.which(f"python{version}") or "", f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in dict.fromkeys(c for c in candidates if c):
        probe = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", candidate, "-s",
                                "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, env={"PATH": os.defpath})
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    raise AssertionError(f"no python{version} that uid {uid} can run (tried {', '.join(candidates)}); "
                         "install one outside directories only root can enter")


@pytest.fixture
def shared(deployer: Deployer) -> Iterator[Project]:
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


def as_user(project: Project, user: Deployer, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI as `user`, from the readable runtime copy: `python -m invoke --search-root repo ...`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}  # its data dir is root's
    env.update(HOME=str(project.root), XDG_CACHE_HOME=str(project.root / ".cache"),
               PYTHONPATH=f"{user.runtime / 'site'}{os.pathsep}{user.runtime / 'repo'}")
    cmd = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", user.python, "-s",
           "-m", "invoke", "--search-root", str(user.runtime / "repo"), *args, "--config", str(project.config)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=project.root, env=env, timeout=60)


def test_non_root_deploy_with_read_only_files_and_directories(shared: Project, deployer: Deployer) -> None:
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


def test_target_owned_by_another_user_is_refused_cleanly(shared: Project, deployer: Deployer) -> None:
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


def test_unreadable_source_file_is_a_clear_refusal(shared: Project, deployer: Deployer) -> None:
    os.chmod(shared.source / "server.py", 0o600)
    os.chown(shared.source / "server.py", 0, 0)
    proc = as_user(shared, deployer, "deploy")
    assert proc.returncode == 4 and "server.py: cannot read file (permission denied)" in proc.stderr
    assert not shared.target.exists()


def test_a_root_owned_log_survives_a_non_root_deploy_under_protected_hardlinks(
        shared: Project, deployer: Deployer) -> None:
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


def test_an_unreadable_production_directory_is_refused_at_preflight(shared: Project, deployer: Deployer) -> None:
    """A directory in production the deployer cannot search: exit 4 naming it, nothing changed."""
    ok(as_user(shared, deployer, "deploy"))
    workflow = shared.target / "workflow"
    os.chown(workflow, 0, 0)
    os.chmod(workflow, 0o700)  # root's now: the deployer cannot look inside
    before = tree(shared.target)
    bump(shared)
    proc = as_user(shared, deployer, "deploy")
    assert proc.returncode == 4, proc.stderr
    assert f"{workflow}/__init__.py: cannot be looked up by this user (permission denied" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree(shared.target) == before and shared.leftovers() == []
