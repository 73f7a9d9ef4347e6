"""deploy.yaml: what loads, and that every mistake is one clear line with the YAML path, exit 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from conftest import Project, tree
from deploylib.config import load_profile, schema
from deploylib.errors import ConfigError

GOOD = """\
profiles:
  default:
    source: dev
    target: prod/server
    include: ["server.py", "workflow/**/*.py"]
"""

# (name, YAML, text the one-line error must contain)
BAD = [
    ("yaml syntax", "profiles:\n  default: [unclosed\n", "YAML syntax error"),
    ("tab indentation", "profiles:\n\tdefault: {}\n", "YAML syntax error"),
    ("empty file", "", "config is empty"),
    ("top level list", "- a\n- b\n", "(top level): expected a mapping"),
    ("no profiles", "default_profile: x\n", "'profiles' is required"),
    ("profiles not a mapping", "profiles: [a]\n", "profiles: expected a mapping"),
    ("unknown top key", GOOD + "retenton: {}\n", "unknown key 'retenton'"),
    ("unknown profile key (typo)", GOOD.replace("    include", "    inclde: [a]\n    include"),
     "profiles.default.inclde: unknown key 'inclde'; did you mean 'include'?"),
    ("missing source", GOOD.replace("    source: dev\n", ""), "'source' is required"),
    ("missing include", GOOD.replace('    include: ["server.py", "workflow/**/*.py"]\n', ""),
     "'include' is required"),
    ("include wrong type", GOOD.replace('["server.py", "workflow/**/*.py"]', "42"),
     "profiles.default.include: expected a string or a list, got 42"),
    ("include item wrong type", GOOD.replace('["server.py", "workflow/**/*.py"]', "[server.py, 7]"),
     "profiles.default.include[1]"),
    ("glob escapes root", GOOD.replace('"server.py"', '"../etc/passwd"'),
     "profiles.default.include[0]: glob '../etc/passwd' contains '..'"),
    ("absolute glob", GOOD.replace('"server.py"', '"/etc/*"'), "profiles.default.include[0]: glob '/etc/*' is absolute"),
    ("exclude escapes root", GOOD + '    exclude: "a/../../b"\n', "profiles.default.exclude: glob 'a/../../b' contains '..'"),
    ("source missing on disk", GOOD.replace("source: dev", "source: nowhere"),
     "profiles.default.source: source directory"),
    ("target overlaps source", GOOD.replace("target: prod/server", "target: dev/prod"),
     "profiles.default.target: target"),
    ("state dir inside target", GOOD + "    state_dir: prod/server/.state\n", "profiles.default.state_dir:"),
    ("retention wrong type", GOOD + "    retention: {keep_last: ten}\n",
     "profiles.default.retention.keep_last: expected an integer, got \"ten\""),
    ("retention negative", GOOD + "    retention: {keep_last: 0}\n", "profiles.default.retention.keep_last: 0 is less than"),
    ("unknown validator type", GOOD + "    validators: [{type: jsn}]\n",
     "profiles.default.validators[0].type: must be one of json, json_schema"),
    ("validator unknown key", GOOD + "    validators: [{type: json, file: a.json}]\n",
     "profiles.default.validators[0].file: unknown key 'file'; did you mean 'files'?"),
    ("json_schema without schema", GOOD + "    validators: [{type: json_schema, files: a.json}]\n",
     "profiles.default.validators[0]: 'schema' is required"),
    ("json_schema file missing", GOOD + "    validators: [{type: json_schema, files: a.json, schema: no.json}]\n",
     "profiles.default.validators[0].schema: schema file"),
    ("command without run", GOOD + "    verify: [{type: command}]\n", "profiles.default.verify[0]: 'run' is required"),
    ("timeout not positive", GOOD + "    verify: [{type: command, run: 'true', timeout: -1}]\n",
     "profiles.default.verify[0].timeout"),
    ("undefined env var", GOOD.replace("target: prod/server", "target: ${MCP_DEPLOY_TEST_UNSET}/x"),
     "environment variable ${MCP_DEPLOY_TEST_UNSET} is not set"),
    ("unknown profile requested", GOOD + "default_profile: prod\n", "default_profile: no profile named 'prod'"),
]


@pytest.mark.parametrize("name,text,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_config_exits_2_with_one_clear_line(project: Project, name: str, text: str, expected: str) -> None:
    project.config.write_text(text)
    (project.root / "prod").mkdir(exist_ok=True)
    before = tree(project.root / "prod")
    proc = project.run("deploy")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {project.config}"), lines[0]
    assert expected in lines[0], lines[0]
    assert tree(project.root / "prod") == before


def test_errors_point_at_the_line_of_the_bad_key(project: Project) -> None:
    project.config.write_text(GOOD + "    retention:\n      keep_last: many\n")
    proc = project.run("status")
    assert f"{project.config}:7: profiles.default.retention.keep_last" in proc.stderr


def test_bad_json_mode_error_is_still_one_json_object(project: Project) -> None:
    project.config.write_text("profiles: {}\n")
    proc = project.run("status", "--json")
    assert proc.returncode == 2
    import json

    data = json.loads(proc.stdout)
    assert data["ok"] is False and data["exit_code"] == 2 and data["error_type"] == "ConfigError"


def test_env_and_home_expand_and_paths_are_relative_to_the_config(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_TEST_PROD", str(project.root / "prod"))
    monkeypatch.setenv("HOME", str(project.root))
    project.config.write_text(GOOD.replace("target: prod/server", "target: ${MCP_TEST_PROD}/server")
                              + "    backup_dir: ~/bk\n")
    prof = load_profile(project.config)
    assert prof.source == project.root / "dev"
    assert prof.target == project.root / "prod" / "server"
    assert prof.backup_dir == project.root / "bk"
    assert prof.state_dir == project.root / "prod" / ".server.deploy-state"
    assert prof.log == prof.state_dir / "history.jsonl"


def test_profile_choice_and_config_discovery(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    two = GOOD + GOOD.replace("profiles:\n  default:", "  other:").replace("prod/server", "prod/other")
    project.config.write_text(two)
    assert load_profile(project.config).name == "default"
    assert load_profile(project.config, "other").target == project.root / "prod" / "other"
    monkeypatch.chdir(project.root)
    monkeypatch.delenv("MCP_DEPLOY_CONFIG", raising=False)
    assert load_profile().config_path == project.config
    elsewhere = project.root / "dev"
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("MCP_DEPLOY_CONFIG", str(project.config))
    assert load_profile().config_path == project.config
    monkeypatch.delenv("MCP_DEPLOY_CONFIG")
    with pytest.raises(ConfigError, match="pass --config PATH or set MCP_DEPLOY_CONFIG"):
        load_profile()


def test_secret_deny_list_is_lifted_only_by_name(project: Project) -> None:
    project.config.write_text(GOOD.replace('"workflow/**/*.py"', '"**/*.key"')
                              + '    unsafe_allow_secrets: ["certs/server.key"]\n')
    prof = load_profile(project.config)
    assert prof.rules.is_managed("certs/server.key")
    assert not prof.rules.is_managed("certs/other.key")


def test_yaml_anchors_and_extension_keys_share_settings(project: Project) -> None:
    text = "x-common: &common\n  include: [server.py]\n  retention: {keep_last: 3}\n" \
           "profiles:\n  default:\n    <<: *common\n    source: dev\n    target: prod/server\n"
    project.config.write_text(text)
    prof = load_profile(project.config)
    assert prof.retention.keep_last == 3


def test_repo_deploy_yaml_is_valid_and_its_schema_line_points_at_the_packaged_schema() -> None:
    repo = Path(__file__).resolve().parent.parent
    first = (repo / "deploy.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=deploylib/schema/deploy.schema.json"
    prof = load_profile(repo / "deploy.yaml")
    assert prof.source == repo / "examples" / "mcp-unified-agents"
    raw = yaml.safe_load((repo / "deploy.yaml").read_text())
    assert raw["profiles"]["home"]["target"] == "~/mcp-config/servers/mcp-unified-agents"
    assert schema()["properties"]["profiles"]["additionalProperties"] == {"$ref": "#/$defs/profile"}


def test_default_profile_deploys_into_the_ignored_sandbox() -> None:
    """The README's first command deploys the bundled example there (.ci/run runs it for real)."""
    repo = Path(__file__).resolve().parent.parent
    prof = load_profile(repo / "deploy.yaml")
    assert prof.target.is_relative_to(repo / ".sandbox")
    assert ".sandbox/" in (repo / ".gitignore").read_text()
    assert os.access(repo / "examples" / "mcp-unified-agents" / "server.py", os.R_OK)
