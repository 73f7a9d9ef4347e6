"""Usage mistakes on the command line: exit 2 (the README's "bad flag"), one line, and hints that name
the command the user actually ran (`invoke ...` in this repo, `mcp-deploy ...` once installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, Project, ok

SCRIPT = os.path.join(os.path.dirname(sys.executable), "mcp-deploy")
INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]
PROGRAMS = {"invoke": INVOKE, "mcp-deploy": [SCRIPT]}


def run(program: str, project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PROGRAMS[program], *args], capture_output=True, text=True, cwd=project.root,
                          timeout=60)


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("args,expected,hint", [
    (("deploy", "--bogus"), "No idea what '--bogus' is!", "--help deploy"),
    (("deploi",), "No idea what 'deploi' is!", "--list"),
    (("--help", "deploi"), "No idea what 'deploi' is!", "--list"),
    (("deploy", "--plan"), "needed value and was not given one", "--help deploy"),
])
def test_unknown_flag_or_task_exits_2_not_1(project: Project, program: str, args: tuple[str, ...],
                                            expected: str, hint: str) -> None:
    """invoke exits 1 here, which the exit-code table reserves for "failed and undone"."""
    line = one_line(run(program, project, *args))
    assert line.startswith("error: ") and expected in line and f"(see `{program} {hint}`)" in line
    assert not project.target.exists()


@pytest.mark.parametrize("program", PROGRAMS)
def test_an_empty_plan_digest_is_refused_not_ignored(project: Project, program: str) -> None:
    """`deploy --plan ''` used to deploy whatever the plan was, unchecked, as if --plan were absent."""
    for value in ("", "  "):
        line = one_line(run(program, project, "deploy", "--plan", value, "--config", str(project.config)))
        assert line == (f"error: --plan: expected the plan digest printed by `{program} deploy --dry-run`, "
                        "got an empty value")
        assert not project.target.exists()
    proc = run(program, project, "deploy", "--plan=", "--json", "--config", str(project.config))
    assert proc.returncode == 2 and json.loads(proc.stdout)["error_type"] == "ConfigError"
    assert not project.target.exists()


def test_a_good_plan_digest_still_deploys(project: Project) -> None:
    digest = json.loads(run("mcp-deploy", project, "deploy", "--dry-run", "--json").stdout)["plan"]["digest"]
    ok(run("mcp-deploy", project, "deploy", "--plan", digest))
    assert (project.target / "server.py").is_file()


@pytest.mark.parametrize("program", PROGRAMS)
def test_schema_write_to_a_directory_or_unwritable_path_is_one_line(project: Project, program: str,
                                                                   tmp_path: Path) -> None:
    line = one_line(run(program, project, "schema", "--write", str(tmp_path)))
    assert line == (f"error: --write {tmp_path}: cannot write the schema: Is a directory; "
                    "pass the path of a file in a writable directory")
    line = one_line(run(program, project, "schema", "--write", str(tmp_path / "no" / "such" / "dir.json")))
    assert "No such file or directory" in line
    ok(run(program, project, "schema", "--write", str(tmp_path / "schema.json")))
    assert json.loads((tmp_path / "schema.json").read_text())["title"].startswith("MCP Deploy")



def test_hints_name_the_command_the_user_ran(project: Project) -> None:
    """Under the installed console script a hint says `mcp-deploy backups`, never `invoke backups`."""
    ok(project.run("deploy"))
    mcp_deploy = Path(sys.executable).with_name("mcp-deploy")
    proc = subprocess.run([str(mcp_deploy), "rollback", "--to", "nothing-like-this", "--config",
                           str(project.config)], capture_output=True, text=True, cwd=project.root)
    assert proc.returncode == 7 and "see `mcp-deploy backups`" in proc.stderr, proc.stderr
    proc = project.run("rollback", "--to", "nothing-like-this")
    assert proc.returncode == 7 and "see `invoke backups`" in proc.stderr


def test_help_shows_only_the_products_own_options(project: Project) -> None:
    """invoke's runner flags meant nothing here, and `mcp-deploy --dry deploy` deployed for real."""
    shown = ok(run("mcp-deploy", project, "--help")).stdout
    for flag in ("--help", "--version", "--list", "--print-completion-script", "--complete"):
        assert flag in shown, flag
    for flag in ("--prompt-for-sudo-password", "--dry", "--echo", "--pty", "--warn-only", "--write-pyc", "--hide",
                 "--command-timeout", "--debug", "--config"):
        assert flag not in shown, flag
    assert "deploy " in shown and "rollback " in shown
    line = one_line(run("mcp-deploy", project, "--dry", "deploy", "--config", str(project.config)))
    assert "No idea what '--dry' is!" in line and not project.target.exists()
    assert ok(run("mcp-deploy", project, "--version")).stdout.startswith("MCP Deploy ")
    assert "status" in ok(run("mcp-deploy", project, "--list")).stdout


@pytest.mark.parametrize("program", PROGRAMS)
def test_profile_completion_offers_the_profiles_of_the_config_in_use(project: Project, program: str,
                                                                     tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("profiles:\n  staging: {source: a, target: b, include: ['*']}\n"
                     "  live: {source: a, target: c, include: ['*']}\n")

    def complete(*words: str) -> list[str]:
        return ok(run(program, project, "--complete", "--", program, *words)).stdout.split()

    assert complete("deploy", "--profile") == ["default"]  # ./deploy.yaml
    assert complete("status", "-p", "de") == ["default"]  # a partial name: the shell filters
    assert complete("deploy", "--config", str(other), "--profile") == ["staging", "live"]
    assert complete("rollback", "-c", str(other), "--profile", "=") == ["staging", "live"]  # bash: --profile=
    assert "--dry-run" in complete("deploy", "--profile", "x", "--")  # flags still complete as before
    assert complete("deploy", "--config", str(tmp_path / "missing.yaml"), "--profile") == []  # files, then
