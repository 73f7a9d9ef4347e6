"""Scenario 12: malformed deploy.yaml variants. Each: exit 2, one line naming file, line and key, no traceback,
production untouched."""

from __future__ import annotations

import pytest

from conftest import Project, tree
from test_config import GOOD

FLEET = GOOD.replace("target: prod/server", "target: /srv/mcp")

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
    ("duplicate key", GOOD.replace("    target: prod/server\n", "    target: prod/server\n    target: prod/other\n"),
     "duplicate key 'target' (YAML would silently keep only the last one)"),
    ("target under a file", GOOD.replace("target: prod/server", "target: deploy.yaml/server"),
     "deploy.yaml is not a directory"),
    ("source is a file", GOOD.replace("source: dev", "source: deploy.yaml"), "deploy.yaml is not a directory"),
    ("glob with an invalid character class", GOOD.replace('"server.py"', '"[z-a]*.py"'),
     "profiles.default.include[0]: glob '[z-a]*.py' is not a valid glob (bad character range z-a)"),
    ("validator glob with an invalid character class", GOOD + "    validators: [{type: json, files: '[b-a].json'}]\n",
     "profiles.default.validators[0].files: glob '[b-a].json' is not a valid glob"),
    ("glob naming only the root", GOOD.replace('"server.py"', '"./"'),
     "profiles.default.include[0]: glob './' names only the tree root"),
    ("NUL byte in a glob", GOOD + '    exclude: "a\\0b"\n', "profiles.default.exclude: glob 'a\\x00b' contains a NUL byte"),
    ("NUL byte in a path", GOOD.replace("target: prod/server", 'target: "prod/ser\\0ver"'),
     "profiles.default.target: contains a NUL byte"),
    ("source inside target", GOOD.replace("target: prod/server", "target: ."),
     "profiles.default.source: source"),
    ("backup dir inside source", GOOD + "    backup_dir: dev/.backups\n", "profiles.default.backup_dir: backup_dir"),
    ("log inside target", GOOD + "    log: prod/server/history.jsonl\n", "profiles.default.log: log"),
    ("target name too long", GOOD.replace("target: prod/server", "target: prod/" + "n" * 256),
     "profiles.default.target: the name"),
    # a fleet's paths are the hosts': the same rules, checked by the paths as written (they used to go unchecked,
    # so a host appended its history into a file in production or into its own journal)
    ("fleet: a host's log inside the target", FLEET + "    hosts: [{host: web1, log: /srv/mcp/notes.txt}]\n",
     "profiles.default.hosts[0].log: log /srv/mcp/notes.txt is inside target /srv/mcp; keep the history outside "
     "the trees MCP Deploy reads and writes (on host web1)"),
    ("fleet: the profile's log inside the target", FLEET + "    log: /srv/mcp/notes.txt\n    hosts: [web1, web2]\n",
     "profiles.default.log: log /srv/mcp/notes.txt is inside target /srv/mcp; keep the history outside"),
    ("fleet: a host's log is its journal",
     FLEET + "    hosts: [{host: web1, state_dir: /var/s, log: /var/s/journal.json}]\n",
     "profiles.default.hosts[0].log: log /var/s/journal.json is the journal of MCP Deploy; point log at a file of "
     "its own"),
    ("fleet: a host's state_dir inside the target", FLEET + "    hosts: [{host: web1, state_dir: /srv/mcp/st}]\n",
     "profiles.default.hosts[0].state_dir: state_dir /srv/mcp/st is inside target /srv/mcp; they must be separate "
     "trees, side by side (on host web1)"),
    ("fleet: a host's backup_dir is its target", FLEET + "    hosts: [{host: web1, backup_dir: /srv/mcp/}]\n",
     "profiles.default.hosts[0].backup_dir: backup_dir /srv/mcp is the same directory as target"),
    # said by the key the user wrote (it used to blame `log` and the controller's internal `no-target`)
    ("fleet: controller_state_dir inside the source", FLEET + "    hosts: [web1]\n    controller_state_dir: dev/ctl\n",
     "/dev/ctl is inside source "),
    ("fleet: controller_state_dir is a file", FLEET + "    hosts: [web1]\n    controller_state_dir: deploy.yaml\n",
     "/deploy.yaml cannot be created: "),
    ("huge unknown key", GOOD + "    ? " + "k" * 100_000 + "\n    : 1\n", "... (100000 characters)"),
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
    if name.startswith("fleet: controller_state_dir"):
        assert f"{project.config}:7: profiles.default.controller_state_dir: controller_state_dir " in lines[0]
    assert tree(project.root / "prod") == before


