"""deploy.yaml: what loads, and that every mistake is one clear line with the YAML path, exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import Project, bump, ok
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


def _mark(cache: Path) -> Path:
    [mark] = (cache / "mcp-deploy" / "validated").iterdir()
    return mark


def test_a_validated_mark_is_trusted_only_when_no_one_else_could_have_written_it(
        project: Project, private_cache: Path) -> None:
    """The mark holds the parsed config (a status then imports no YAML parser): a mark anyone but this user
    could have written or pointed elsewhere (group- or world-writable, a symlink, another owner's file),
    or whose data was changed after its hash was taken, is ignored, the config is read from its file, and
    a mark of the user's own is written again."""
    from deploylib import configmark
    from deploylib.config import _schema_text

    real = load_profile(project.config).target
    mark = _mark(private_cache)
    data = json.loads(mark.read_bytes().partition(b"\n")[2])
    assert data["profiles"]["default"]["target"] == "prod/server"
    data["profiles"]["default"]["target"] = "elsewhere"
    dumped = json.dumps(data)
    forged = f"{configmark.key_of(_schema_text(), project.config.read_text(), dumped)}\n{dumped}".encode()
    mark.write_bytes(forged)
    mark.chmod(0o600)
    assert load_profile(project.config).target == project.root / "elsewhere"  # the user's own: trusted
    harms = ["group-writable", "world-writable", "symlink", "data edited"] + (["other owner"] if os.geteuid() == 0 else [])
    for harm in harms:
        mark.write_bytes(forged)
        mark.chmod(0o600)
        if harm == "group-writable":
            mark.chmod(0o620)
        elif harm == "world-writable":
            mark.chmod(0o602)
        elif harm == "symlink":
            planted = private_cache / "planted"
            planted.write_bytes(forged)
            planted.chmod(0o600)
            mark.unlink()
            mark.symlink_to(planted)
        elif harm == "data edited":
            mark.write_bytes(forged.replace(b'"elsewhere"', b'"elsewhere2"'))
        else:
            os.chown(mark, 65534, 65534)
        assert load_profile(project.config).target == real, harm
        assert not mark.is_symlink() and mark.stat().st_uid == os.geteuid() and mark.stat().st_mode & 0o777 == 0o600
        assert json.loads(mark.read_bytes().partition(b"\n")[2])["profiles"]["default"]["target"] == "prod/server"
    mark.unlink()
    os.mkfifo(mark)  # opened without waiting for a writer, and replaced
    assert load_profile(project.config).target == real and mark.is_file()
    mark.unlink()
    mark.mkdir()  # cannot be replaced: each run reads the config from its file
    assert load_profile(project.config).target == real and mark.is_dir()


def test_a_config_json_cannot_hold_exactly_is_parsed_each_time_and_an_older_mark_is_replaced(
        project: Project, private_cache: Path) -> None:
    """A YAML date (in an x- key) would come back from JSON as a string: such a config's mark keeps only
    its schema pass (and is not rewritten by each run). A mark of an earlier version (a hash of schema
    and text alone) passes nothing: the config is validated and marked anew, with its data."""
    import hashlib

    from deploylib.config import _schema_text

    good = project.config.read_text()
    project.config.write_text(good + "x-since: 2024-01-01\n")
    assert load_profile(project.config).target == project.root / "prod" / "server"
    mark = _mark(private_cache)
    assert mark.read_bytes().endswith(b"\n") and len(mark.read_bytes()) == 65  # the hash only
    before = mark.stat()
    assert load_profile(project.config).target == project.root / "prod" / "server"
    assert (mark.stat().st_ino, mark.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    project.config.write_text(good)
    mark.write_bytes(hashlib.sha256(f"{_schema_text()}\0{good}".encode()).hexdigest().encode())  # an earlier version's
    mark.chmod(0o600)
    assert load_profile(project.config).target == project.root / "prod" / "server"
    assert json.loads(mark.read_bytes().partition(b"\n")[2])["profiles"]["default"]["source"] == "dev"


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


# --- hardening: hostile or odd configs are refused quickly, in one pass, without flooding the terminal

BOMB = "".join(f"x-{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
BOMB = "x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + BOMB


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single `error:` line a refused config must produce: exit 2, no traceback, nothing on stdout."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[:2000])
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[:2000]
    return lines[0]


def test_a_yaml_alias_bomb_is_refused_at_once(project: Project) -> None:
    """Nine nested aliases are 10^9 values: refused in well under a second, not after 30 s and 3 GB."""
    project.config.write_text(BOMB + GOOD + "    exclude: *i\n")
    started = time.monotonic()
    line = one_error_line(project.run("deploy", timeout=20))
    assert time.monotonic() - started < 10
    assert line.startswith(f"error: {project.config}: ") and "alias" in line


def test_a_recursive_alias_is_refused(project: Project) -> None:
    project.config.write_text(GOOD + "    exclude: &loop [*loop]\n")
    line = one_error_line(project.run("status"))
    assert "refers to itself" in line


def test_a_huge_value_in_an_error_is_clipped(project: Project) -> None:
    """A wrong-typed value is quoted in the message, but never more than 200 characters of it."""
    project.config.write_text(GOOD + f"    exclude: [[{', '.join(['lol'] * 50_000)}]]\n")
    line = one_error_line(project.run("status"))
    assert "profiles.default.exclude[0]: expected a string" in line
    assert len(line) < 500 and "... (350000 characters)" in line


def test_an_undefined_alias_below_a_bomb_prints_one_short_line(project: Project) -> None:
    """`exclude: [*g]` under nested anchors used to print a 35 MB error line."""
    project.config.write_text(BOMB.split("x-h")[0] + GOOD + "    exclude: [*g]\n")
    line = one_error_line(project.run("status", timeout=20))
    assert len(line) < 500


def test_a_file_that_is_not_a_config_is_not_echoed(project: Project) -> None:
    """MCP_DEPLOY_CONFIG=/etc/passwd (or a private key): say what it is, quote none of it."""
    secret = "".join(f"user{i}:x:{i}:{i}:secret-{i}:/home/user{i}:/bin/sh\n" for i in range(40))
    other = project.root / "passwd"
    other.write_text(secret)
    line = one_error_line(project.run("status", config=False, env={"MCP_DEPLOY_CONFIG": str(other)}))
    assert line.startswith(f"error: {other}:1: (top level): expected a mapping")
    assert "secret-" not in line and "user0" not in line


def test_a_config_larger_than_1_mib_is_refused(project: Project) -> None:
    project.config.write_text(GOOD + "#" * (1 << 20) + "\n")
    line = one_error_line(project.run("status"))
    assert line.startswith(f"error: {project.config}: config is larger than 1 MiB")


def test_deeply_nested_yaml_and_huge_integers_are_config_errors_not_bugs(project: Project) -> None:
    project.config.write_text(GOOD + "    exclude: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested too deeply" in one_error_line(project.run("status"))
    project.config.write_text(GOOD + "    retention: {keep_last: " + "9" * 5000 + "}\n")
    assert "YAML value error" in one_error_line(project.run("status"))


def test_globs_are_normalised_at_load(project: Project) -> None:
    project.config.write_text(GOOD.replace('"server.py", "workflow/**/*.py"',
                                           '"./server.py", "workflow//*.py", "templates/./", "a//b//"'))
    prof = load_profile(project.config)
    assert prof.rules.include.patterns == ("server.py", "workflow/*.py", "templates/", "a/b/")


def test_odd_but_meaningful_globs_deploy_what_they_name(project: Project) -> None:
    """`./server.py` and `workflow//*.py` used to match nothing, silently (no deploy of those files)."""
    project.write_config(include=["./server.py", "workflow//*.py", "templates/./*.json", "agents.json"])
    ok(project.run("deploy"))
    assert (project.target / "server.py").read_bytes() == (project.source / "server.py").read_bytes()
    assert (project.target / "workflow" / "plan.py").is_file()
    assert (project.target / "templates" / "plan.json").is_file()


def test_every_unknown_key_is_reported_at_once(project: Project) -> None:
    project.config.write_text(GOOD + "    post_deploy: [restart]\n    alerts: slack\n    cluster: eu-1\n")
    proc = project.run("deploy")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"error: {project.config}:6: profiles.default.post_deploy: unknown key 'post_deploy'; allowed keys: "
        + ALLOWED,
        f"error: {project.config}:7: profiles.default.alerts: unknown key 'alerts'; allowed keys: " + ALLOWED,
        f"error: {project.config}:8: profiles.default.cluster: unknown key 'cluster'; allowed keys: " + ALLOWED,
    ]


ALLOWED = ("allow_setid, backup_dir, controller_state_dir, deployed_by, description, exclude, hooks, hosts, "
           "include, log, mcp, notify, on_host_failure, respect_gitignore, retention, rollout, source, ssh, "
           "state_dir, target, unsafe_allow_secrets, validators, verify, version_file")


def test_problems_found_after_the_schema_are_reported_together_too(project: Project) -> None:
    project.config.write_text(GOOD.replace('"server.py"', '"../up"').replace("source: dev", "source: nowhere")
                              + "    state_dir: prod/server/state\n    verify: [{type: command, run: x}]\n"
                              + "    validators: [{type: json, files: '[z-a]'}]\n")
    lines = project.run("status").stderr.strip().splitlines()
    assert [line.split(": ")[2] for line in lines] == [
        "profiles.default.source", "profiles.default.include[0]", "profiles.default.state_dir",
        "profiles.default.validators[0].files"]


def test_at_most_ten_lines_of_problems(project: Project) -> None:
    project.config.write_text(GOOD + "".join(f"    extra{i}: 1\n" for i in range(30)))
    proc = project.run("status")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 10
    assert lines[-1] == f"error: {project.config}: ... and 21 more problems; fix these and rerun"
    assert len(json.loads(project.run("status", "--json").stdout)["error"].splitlines()) == 10


def long_name(n: int) -> str:
    return "n" * n


@pytest.mark.parametrize("key,value", [
    ("target", f"prod/{long_name(256)}"),
    ("target", f"prod/{long_name(230)}"),  # fits alone, but not `.<name>.deploy-<id>` beside it
    ("target", f"{long_name(300)}/server"),
    ("source", f"dev/{long_name(256)}"),
    ("backup_dir", f"{long_name(256)}/backups"),
    ("state_dir", f"state/{long_name(256)}"),
    ("log", f"{long_name(256)}.jsonl"),
])
def test_a_path_with_a_name_too_long_for_the_filesystem_is_a_config_error(project: Project, key: str,
                                                                         value: str) -> None:
    """ENAMETOOLONG used to surface mid-deploy (exit 5 or 1, alternating); now the config names the key."""
    project.write_config(**{key: value})
    line = one_error_line(project.run("deploy"))
    assert f"profiles.default.{key}: " in line and "bytes" in line and "shorten it" in line
    assert not (project.root / "prod").exists()


def test_a_target_name_just_short_enough_deploys(project: Project) -> None:
    from deploylib.config import TARGET_NAME_MAX

    project.write_config(target=f"prod/{long_name(TARGET_NAME_MAX)}")
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    ok(project.run("rollback"))
    assert (project.target / "server.py").is_file() and project.leftovers() == []


TREES = ("source", "target", "backup_dir", "state_dir")


@pytest.mark.parametrize("inner,outer", [(a, b) for a in TREES for b in TREES
                                         if a != b and (a, b) != ("state_dir", "backup_dir")])  # see below
def test_no_tree_may_be_inside_another(project: Project, inner: str, outer: str) -> None:
    """Every pair, both directions: a deploy would copy one tree into production, or the swap replace it."""
    places = {"source": "dev", "target": "prod/server", "backup_dir": "backups", "state_dir": "state"}
    places[inner] = f"{places[outer]}/inner"
    if inner == "source":
        shutil.copytree(project.source, project.root / places["source"])
    project.write_config(**places)
    line = one_error_line(project.run("deploy"))
    assert f"profiles.default.{inner}: {inner} " in line and f" is inside {outer} " in line
    assert not (project.root / "prod").exists() or project.managed() == {}


@pytest.mark.parametrize("a,b", [("source", "target"), ("backup_dir", "state_dir"), ("target", "backup_dir")])
def test_two_trees_may_not_be_the_same_directory(project: Project, a: str, b: str) -> None:
    project.write_config(**{a: "dev" if a == "source" else "same", b: "dev" if a == "source" else "same"})
    line = one_error_line(project.run("deploy"))
    assert f"profiles.default.{b}: {b} " in line and f"is the same directory as {a}" in line


def test_a_tree_reached_through_a_symlink_is_still_inside(project: Project) -> None:
    (project.root / "link").symlink_to(project.root / "prod", target_is_directory=True)
    (project.root / "prod").mkdir()
    project.write_config(backup_dir="link/server/backups")
    line = one_error_line(project.run("deploy"))
    assert "profiles.default.backup_dir: backup_dir" in line and "is inside target" in line


@pytest.mark.parametrize("outer", ["source", "target"])
def test_the_log_may_not_be_inside_the_source_or_target(project: Project, outer: str) -> None:
    project.write_config(log=("dev" if outer == "source" else "prod/server") + "/history.jsonl")
    line = one_error_line(project.run("deploy"))
    assert "profiles.default.log: log " in line and f"is inside {outer} " in line


def test_state_dir_beside_the_backup_store_is_the_documented_layout(project: Project) -> None:
    """README: backup_dir ~/.mcp-backups/x, state_dir ~/.mcp-backups/x/state. The store owns only
    backup_dir/objects and backup_dir/snapshots, so that works, and inside those it does not."""
    project.write_config(backup_dir="backups", state_dir="backups/state")
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    ok(project.run("rollback"))
    project.write_config(state_dir="backups/snapshots/state")
    assert "is inside backup_dir" in one_error_line(project.run("deploy"))
