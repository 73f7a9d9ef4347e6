"""A git checkout as the source: deploy --ref, built-in excludes, .gitignore, the dirty note.

Real repositories made with `git init` in tmp_path; identity passed with -c, so no git config
outside tmp_path is read for it or written.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from deploylib.config import load_profile
from deploylib.manifest import walk

from conftest import MANAGED, Project, ok, tree

GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}  # the machine's config plays no part


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid", *args],
                          cwd=repo, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


@pytest.fixture
def repo(project: Project) -> Project:
    """The project's source as a git repository with one commit of the example."""
    git(project.source, "init", "-q")
    git(project.source, "add", "-A")
    git(project.source, "commit", "-qm", "first")
    return project


def committed(project: Project, ref: str = "HEAD") -> dict[str, bytes]:
    """The managed files as committed in `ref`."""
    return {p: subprocess.run(["git", "show", f"{ref}:{p}"], cwd=project.source, check=True,
                              capture_output=True).stdout for p in MANAGED}


def test_ref_deploys_the_committed_tree_not_the_working_tree(repo: Project) -> None:
    first = git(repo.source, "rev-parse", "HEAD")
    plan_py = repo.source / "workflow" / "plan.py"
    plan_py.write_text(plan_py.read_text() + "# a second commit\n")
    git(repo.source, "commit", "-qam", "second")
    (repo.source / "server.py").write_text("raise SystemExit('an uncommitted edit')\n")  # working tree only
    (repo.source / "workflow" / "untracked.py").write_text("x = 1\n")  # matches the include glob

    ok(repo.run("deploy", "--ref", first))
    assert repo.managed() == committed(repo, first)
    assert not (repo.target / "workflow" / "untracked.py").exists()
    version = repo.version()
    assert version["git_commit"] == first and version["git_dirty"] is False
    assert version["deployed_from"] == f"{repo.source} @ {first}"

    ok(repo.run("deploy", "--ref", "HEAD"))
    assert repo.managed() == committed(repo, "HEAD")
    assert repo.version()["git_commit"] == git(repo.source, "rev-parse", "HEAD")


def test_ref_plans_like_a_clean_checkout_and_keeps_its_digest(repo: Project, tmp_path: Path) -> None:
    _, clean = repo.json("deploy", "--dry-run")
    bump_file = repo.source / "server.py"
    bump_file.write_text(bump_file.read_text() + "# uncommitted\n")
    _, first = repo.json("deploy", "--dry-run", "--ref", "HEAD")
    _, again = repo.json("deploy", "--dry-run", "--ref", "HEAD")
    assert first["plan"]["digest"] == again["plan"]["digest"] == clean["plan"]["digest"]  # same bytes, same modes
    assert not tree(repo.target)

    code, done = repo.json("deploy", "--ref", "HEAD", "--plan", first["plan"]["digest"])
    assert code == 0 and done["changed"] is True
    assert repo.managed() == committed(repo)


def test_a_bad_ref_is_refused_naming_it(repo: Project, tmp_path: Path) -> None:
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    for ref, says in (("no-such-branch", "--ref no-such-branch: no such commit"),
                      ("--upload-pack=x", "is not a git ref")):
        proc = repo.run("deploy", f"--ref={ref}", env={"TMPDIR": str(scratch)})
        assert proc.returncode == 2, proc.stderr
        assert says in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not repo.target.exists() and not repo.state.exists()
    ok(repo.run("deploy", "--ref", "HEAD", env={"TMPDIR": str(scratch)}))
    assert list(scratch.iterdir()) == []  # the export is removed after the deploy


def test_ref_outside_a_repository_is_refused(project: Project) -> None:
    proc = project.run("deploy", "--ref", "HEAD")
    assert proc.returncode == 2 and "is not in a git repository" in proc.stderr
    assert not project.target.exists()


def test_a_dirty_source_is_noted_in_the_plan(repo: Project) -> None:
    _, clean = repo.json("deploy", "--dry-run")
    assert not any("uncommitted" in n for n in clean["notes"])
    (repo.source / "server.py").write_text((repo.source / "server.py").read_text() + "# edit\n")
    _, dirty = repo.json("deploy", "--dry-run")
    assert any("uncommitted changes" in n and "--ref HEAD" in n for n in dirty["notes"])
    ok(repo.run("deploy"))
    assert repo.version()["git_dirty"] is True


DEBRIS = [".git/HEAD", ".venv/lib/site.py", "env/pyvenv.cfg", "env/lib/x.py", "workflow/__pycache__/plan.pyc",
          "node_modules/left-pad/index.js", ".DS_Store", "templates/.DS_Store", ".server.py.swp", "server.py~",
          ".#server.py", "#server.py#"]


def deploy_everything_beside(project: Project, debris: list[str]) -> set[str]:
    """Write each of `debris` into the source, deploy under include: ["**"], and return the files deployed."""
    for rel in debris:
        path = project.source / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("debris\n")
    project.write_config(include=["**"], exclude=[])
    ok(project.run("deploy"))
    return {p for p in tree(project.target) if not p.endswith("/")}


def test_debris_is_never_managed_even_under_include_everything(repo: Project) -> None:
    deployed = deploy_everything_beside(repo, DEBRIS[1:])
    assert deployed == {  # .env is withheld as a secret; the example's own files, and VERSION
        "VERSION", "agents.json", "config.local.json", "logs/server.log", "pyproject.toml", "schemas/agents.schema.json",
        "server.py", "templates/plan.json", "templates/review.json", "workflow/__init__.py", "workflow/plan.py",
        "workflow/registry.py", "workflow/review.py"}


def test_the_walk_never_enters_git_or_a_virtualenv(repo: Project) -> None:
    venv = repo.source / ".venv" / "lib" / "python3.11" / "site-packages"
    for i in range(200):
        (venv / f"pkg{i}").mkdir(parents=True)
        for j in range(25):
            (venv / f"pkg{i}" / f"m{j}.py").write_text("")
    (repo.source / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (repo.source / "env" / "lib").mkdir(parents=True)
    (repo.source / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (repo.source / "env" / "lib" / "x.py").write_text("")
    repo.write_config(include=["**"])
    rules = load_profile(repo.config).rules
    started = time.monotonic()
    seen = [rel for rel, _ in walk(repo.source, rules)]
    took = time.monotonic() - started
    assert not [p for p in seen if p.split("/")[0] in (".git", ".venv", "env")]
    assert "server.py" in seen and "workflow/plan.py" in seen
    print(f"walk of a source with a 5,000-file .venv: {took * 1000:.1f} ms, {len(seen)} paths")


def test_gitignored_files_are_left_out_but_tracked_ones_stay(repo: Project) -> None:
    (repo.source / ".gitignore").write_text("*.log\nbuild/\n")
    (repo.source / "workflow" / "debug.log").write_text("ignored\n")
    (repo.source / "build").mkdir()
    (repo.source / "build" / "out.py").write_text("ignored = True\n")
    repo.write_config(include=["**"])  # logs/server.log is tracked: git does not ignore it
    _, plan = repo.json("deploy", "--dry-run")
    added = set(plan["plan"]["added"])
    assert {"logs/server.log", ".gitignore", "server.py"} <= added
    assert not added & {"workflow/debug.log", "build/out.py"}

    repo.write_config(respect_gitignore=False)
    _, plan = repo.json("deploy", "--dry-run")
    assert {"workflow/debug.log", "build/out.py"} <= set(plan["plan"]["added"])


def test_respect_gitignore_true_outside_git_is_a_config_error(project: Project) -> None:
    project.write_config(respect_gitignore=True)
    proc = project.run("deploy")
    assert proc.returncode == 2 and "respect_gitignore is true" in proc.stderr and str(project.config) in proc.stderr
    assert not project.target.exists()


TOOL_CACHES = [".pytest_cache/v/cache/nodeids", ".mypy_cache/3.11/server.meta.json", ".ruff_cache/0.5.0/123",
               ".tox/py311/lib/x.py", ".nox/tests/bin/python", ".coverage", ".coverage.host.1234.567890",
               "htmlcov/index.html", "workflow/.pytest_cache/README.md", "workflow/htmlcov/index.html"]


def test_test_and_lint_caches_are_never_shipped_even_under_include_everything(project: Project) -> None:
    """The caches and reports test runners and linters leave in a checkout (not in git, so
    respect_gitignore cannot help for a source outside git) are debris, as __pycache__ is."""
    deployed = deploy_everything_beside(project, TOOL_CACHES)
    assert deployed and not set(TOOL_CACHES) & deployed, deployed
    assert "server.py" in deployed and "workflow/plan.py" in deployed


@pytest.mark.parametrize("case", ["secret", "link", "version_file"])
def test_ref_errors_name_the_repository_and_ref_never_the_temporary_export(repo: Project, tmp_path: Path,
                                                                           case: str) -> None:
    """A refusal about a file of the ref names where it is (`<source> @ <ref>: path`): the export in the
    temporary directory is gone by the time anyone reads the message."""
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    if case == "secret":
        (repo.source / "workflow" / "keys.py").write_text('KEY = "AKIA' + "Q" * 16 + '"\n')
        says = f"{repo.source} @ v-bad: workflow/keys.py:1: "
    elif case == "link":
        os.symlink("/etc/passwd", repo.source / "templates" / "passwd.json")
        says = f"{repo.source} @ v-bad: templates/passwd.json: symlink points outside the source tree (/etc/passwd)"
    else:
        (repo.source / "VERSION").write_text("1.2.3\n")
        repo.write_config(include=[*repo.profile["include"], "VERSION"])
        says = f"{repo.source} @ v-bad: VERSION: the release has a file of the name MCP Deploy gives its version"
    git(repo.source, "add", "-A")
    git(repo.source, "commit", "-qm", "bad")
    git(repo.source, "tag", "v-bad")
    for args in (("deploy", "--ref", "v-bad"), ("deploy", "--dry-run", "--ref", "v-bad")):
        proc = repo.run(*args, env={"TMPDIR": str(scratch)})
        assert str(scratch) not in proc.stdout + proc.stderr and "mcp-deploy-" not in proc.stderr, proc.stderr
        if "--dry-run" in args and case != "link":  # a dry run reports the refusal and succeeds
            assert proc.returncode == 0, proc.stderr
            assert f"A real run would refuse this plan (exit 4): {says}" in proc.stdout, proc.stdout
            continue
        assert proc.returncode == 4, proc.stderr
        assert says in proc.stderr, proc.stderr
    assert not repo.target.exists() and list(scratch.iterdir()) == []
    assert str(scratch) not in (repo.log.read_text() if repo.log.exists() else "")
