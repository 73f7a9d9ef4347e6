"""`mcp-deploy TASK --flags` runs the task without importing invoke (cli.direct_call): it must read every
command line it takes exactly as invoke's parser does, and hand every other one to invoke."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

import pytest

from conftest import Project, ok
from deploylib.cli import direct_call
from deploylib.program import DeployProgram, namespace

SCRIPT = os.path.join(os.path.dirname(sys.executable), "mcp-deploy")


def invoke_reads(argv: list[str]) -> tuple[str, dict[str, object]]:
    """The task and arguments invoke's own parser makes of `mcp-deploy ARGV`."""
    program = DeployProgram(namespace=namespace, version="0", name="MCP Deploy", binary="mcp-deploy")
    program.create_config()
    program.parse_core(["mcp-deploy", *argv])
    program.parse_collection()
    program.parse_tasks()
    program.parse_cleanup()
    assert len(program.tasks) == 1
    return program.tasks[0].name, program.tasks[0].as_kwargs


@pytest.mark.parametrize("argv", [
    ["deploy"],
    ["deploy", "--json", "--dry-run", "--profile", "prod", "--config=/x/deploy.yaml"],
    ["deploy", "--adopt", "config/*.json", "--adopt=**", "--overwrite-drift", "--plan", "abc", "--wait=2.5"],
    ["deploy", "--ref", "v1.2", "--verbose", "--plan="],
    ["deploy", "--profile", "rollback"],  # a value that is also a task name is still the value
    ["deploy", "--profile=a=b"],
    ["rollback", "--to", "1.2.0", "--plan", "d", "--dry-run"],
    ["status", "--json"],
    ["diff", "--from", "s-1", "--to", "live"],
    ["diff", "--release", "d-1"],
    ["history", "--stats", "--period", "week", "--limit", "5"],
    ["backups", "--config", "deploy.yaml"],
    ["prune", "--dry-run", "--wait", "3"],
    ["schema", "--write", "schema.json"],
    ["mcp", "--profile", "p", "--config", "c.yaml"],
])
def test_direct_calls_read_the_command_line_as_invoke_does(argv: list[str]) -> None:
    call = direct_call(argv)
    assert call is not None, argv
    body, given = call
    defaults = {name: p.default for name, p in list(inspect.signature(body).parameters.items())[1:]}
    assert (body.__name__, {**defaults, **given}) == invoke_reads(argv)


@pytest.mark.parametrize("argv", [
    [], ["--help"], ["--list"], ["-l"], ["--complete", "--", "mcp-deploy", "deploy"], ["deploi"],
    ["deploy", "-p", "prod"],            # short flags: invoke assigns them
    ["deploy", "--help"],                # a core flag after the task
    ["deploy", "status"],                # two tasks
    ["deploy", "--", "x"],
    ["deploy", "--bogus"],
    ["deploy", "--plan"],                # no value: invoke's error
    ["deploy", "--profile", "--json"],   # a flag where the value should be
    ["deploy", "--profile=--json"],
    ["deploy", "--json=yes"],
    ["deploy", "--json", "--json"],
    ["deploy", "--profile", "a", "--profile", "b"],
    ["rollback", "--to", "-1"],
])
def test_every_other_command_line_goes_to_invoke(argv: list[str]) -> None:
    assert direct_call(argv) is None


def test_a_direct_task_never_imports_invoke_and_says_the_same(project: Project) -> None:
    """The point of the direct path is start-up time: invoke must not be imported at all. Its answer is
    the one `invoke` gives for the same task."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    config = ["--config", str(project.config)]
    direct = subprocess.run([SCRIPT, "deploy", "--json", *config], capture_output=True, text=True, env=env,
                            cwd=project.root, timeout=60)
    assert direct.returncode == 0, direct.stderr
    assert " invoke" not in direct.stderr.replace("|", " ").split("\n", 1)[1]
    deployed = json.loads(direct.stdout)
    assert deployed["ok"] and project.version()["deploy_id"] == deployed["deploy_id"]
    assert (project.target / "server.py").read_bytes() == (project.source / "server.py").read_bytes()
    mine = ok(subprocess.run([SCRIPT, "status", "--json", *config], capture_output=True, text=True,
                             cwd=project.root, timeout=60))
    theirs = ok(project.run("status", "--json"))
    answers = [json.loads(proc.stdout) for proc in (mine, theirs)]
    for answer in answers:
        del answer["age_seconds"], answer["summary"]  # the clock moved between the two
    assert answers[0] == answers[1] and answers[0]["deploy_id"] == deployed["deploy_id"]
    bad = subprocess.run([SCRIPT, "status", "--config", str(project.root / "missing.yaml")], capture_output=True,
                         text=True, cwd=project.root, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.splitlines()) == 1


def imported(argv: list[str], project: Project) -> set[str]:
    """The modules `mcp-deploy ARGV` imported (from -X importtime), after checking it succeeded. Outside
    coverage's subprocess measurement, which imports modules of its own (tomllib, typing, ...) first."""
    env = {k: v for k, v in os.environ.items() if k not in ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG")}
    proc = subprocess.run([SCRIPT, *argv], capture_output=True, text=True, cwd=project.root, timeout=60,
                          env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    assert proc.returncode == 0, proc.stderr
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


def test_each_command_imports_only_what_it_uses(project: Project) -> None:
    """`status` never pays for a deploy's imports (the pipeline and its steps, the fleet controller, the HTTP
    stack that webhooks use, tar for git exports, subprocess for git and hooks outside git), nor for
    reading a config whose exact bytes passed before (the YAML parser, jsonschema), and `--version`
    for nothing but the package itself."""
    ok(project.run("deploy"))
    status = imported(["status", "--config", str(project.config)], project)
    assert "deploylib.operations" in status  # the measurement itself works
    assert not {"invoke", "deploylib.pipeline", "deploylib.fleet.controller", "urllib.request", "tarfile",
                "tomllib", "deploylib.steps.backup", "deploylib.steps.stage", "deploylib.steps.commit", "subprocess",
                "socket", "difflib", "importlib.resources", "yaml", "jsonschema"} & status  # the config's mark: parsed
    version = imported(["--version"], project)
    assert {m for m in version if m.startswith("deploylib")} == {"deploylib", "deploylib.cli", "deploylib.naming"}
    assert not {"typing", "inspect"} & version
