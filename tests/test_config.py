"""deploy.yaml: what loads, and that every mistake is one clear line with the YAML path, exit 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from conftest import Project, ok, tree
from deploylib.config import load_profile, schema
from deploylib.errors import ConfigError

GOOD = """\
profiles:
  default:
    source: dev
    target: prod/server
    include: ["server.py", "workflow/**/*.py"]
"""

def test_errors_point_at_the_line_of_the_bad_key(project: Project) -> None:
    project.config.write_text(GOOD + "    retention:\n      keep_last: many\n")
    proc = project.run("status")
    assert f"{project.config}:7: profiles.default.retention.keep_last" in proc.stderr


def test_a_config_edited_after_a_good_run_is_validated_again(project: Project, private_cache: Path) -> None:
    """A passing config is remembered by its exact bytes (start-up skips jsonschema); an edit is checked."""
    ok(project.run("status"))
    assert len(list((private_cache / "mcp-deploy" / "validated").iterdir())) == 1
    good = project.config.read_text()
    project.config.write_text(good + "    retention:\n      keep_last: many\n")
    proc = project.run("status")
    assert proc.returncode == 2 and "profiles.default.retention.keep_last: expected an integer" in proc.stderr
    project.config.write_text(good)
    ok(project.run("status"))


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
