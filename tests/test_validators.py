"""Each validator kind against real files in a stage directory."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import Project, ok
from deploylib.config import CheckSpec
from deploylib.errors import ValidationFailed, VerifyFailed
from deploylib.validators import validate
from deploylib.verify import verify

SCHEMA = Path(__file__).resolve().parent.parent / "examples/mcp-unified-agents/schemas/agents.schema.json"


def stage(tmp_path: Path, files: dict[str, str]) -> list[str]:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return sorted(files)


def test_json_schema_validator_names_file_and_key(tmp_path: Path) -> None:
    files = stage(tmp_path, {"agents.json": '{"agents": [{"name": "Bad Name", "description": "d", "workflow": "w"}]}'})
    spec = CheckSpec("json_schema", "agents schema", ("agents.json",), schema=SCHEMA)
    with pytest.raises(ValidationFailed, match=r"validator agents schema: agents.json: agents\[0\].name: 'Bad Name' does not match"):
        validate((spec,), tmp_path, files, {})
    stage(tmp_path, {"agents.json": '{"agents": [{"name": "ok", "description": "d", "workflow": "w"}]}'})
    [result] = validate((spec,), tmp_path, files, {})
    assert (result["name"], result["files"], result["ok"]) == ("agents schema", 1, True)


def test_yaml_and_python_validators_only_see_the_sync_set(tmp_path: Path) -> None:
    files = stage(tmp_path, {"conf/a.yaml": "key: [1, 2\n", "b.py": "x = (\n"})
    stage(tmp_path, {"user/broken.py": "def (:"})  # not in the sync set: not the validator's business
    with pytest.raises(ValidationFailed, match="conf/a.yaml:2: invalid YAML"):
        validate((CheckSpec("yaml", "yaml", ("**/*.yaml",)),), tmp_path, files, {})
    with pytest.raises(ValidationFailed, match="b.py:1: syntax error"):
        validate((CheckSpec("python_syntax", "python", ("**/*.py",)),), tmp_path, files, {})
    assert validate((CheckSpec("python_syntax", "python", ("**/*.py",)),), tmp_path, ["conf/a.yaml"], {})


def test_python_syntax_compiles_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    files = stage(tmp_path, {"x.py": f"open({str(marker)!r}, 'w').write('oops')\n"})
    validate((CheckSpec("python_syntax", "python", ("*.py",)),), tmp_path, files, {})
    assert not marker.exists()


def test_command_validator_runs_in_the_stage_with_the_environment(tmp_path: Path) -> None:
    spec = CheckSpec("command", "pwd check", run='test "$PWD" = "$EXPECT" && echo fine')
    validate((spec,), tmp_path, [], {"EXPECT": str(tmp_path)})
    failing = CheckSpec("command", "tests", run="echo first; echo 'AssertionError: 2 != 3'; exit 4")
    with pytest.raises(ValidationFailed) as info:
        validate((failing,), tmp_path, [], {})
    assert "exited 4: AssertionError: 2 != 3" in info.value.message
    assert "first" in info.value.detail


def test_timed_out_command_is_killed_with_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    spec = CheckSpec("command", "hang", run=f"sleep 60 & echo $! > {pidfile}; wait", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(VerifyFailed, match="timed out after 0.5s"):
        verify((spec,), tmp_path, {})
    assert time.monotonic() - started < 10
    child = int(pidfile.read_text())
    time.sleep(0.2)
    assert not running(child)  # the background child died with its group


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan may wait for a PID 1 that never reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize("target", ["review.py", "../server.py", "nested/../registry.py"])
def test_a_symlink_repointed_in_the_source_is_validated_as_the_file_it_now_names(
        project: Project, target: str) -> None:
    """Only the link changed: the stage holds the new link alone, so the python_syntax validator followed it
    into the stage, to nothing ("No such file"), and the deploy was undone. A staged link is read as the
    release resolves it: here, an unchanged file in production. So is a rollback that restores the link."""
    alias = project.source / "workflow" / "alias.py"
    alias.symlink_to("plan.py")
    (project.source / "workflow" / "nested").mkdir()
    (project.source / "workflow" / "nested" / "keep.py").write_text("x = 1\n")
    ok(project.run("deploy"))
    alias.unlink()
    alias.symlink_to(target)
    proc = ok(project.run("deploy"))
    assert os.readlink(project.target / "workflow" / "alias.py") == target
    assert "1 changed" in proc.stdout or "Deployed" in proc.stdout
    ok(project.run("rollback"))
    assert os.readlink(project.target / "workflow" / "alias.py") == "plan.py"


def test_a_staged_link_to_a_broken_file_still_fails_validation(project: Project) -> None:
    """Read through the link, the file it names is validated: a link repointed at a file with a syntax error
    fails the deploy, as the file itself would, and production keeps the old link."""
    alias = project.source / "workflow" / "alias.py"
    alias.symlink_to("plan.py")
    ok(project.run("deploy"))
    (project.source / "workflow" / "bad.py").write_text("def (:\n")
    alias.unlink()
    alias.symlink_to("bad.py")
    proc = project.run("deploy")
    assert proc.returncode == 1 and "workflow/alias.py:1: syntax error: invalid syntax;" in proc.stderr
    assert os.readlink(project.target / "workflow" / "alias.py") == "plan.py"
