"""Hostile review, input: flags and config keys that point the tool at what it must not touch or at values
that mean nothing. Each: exit 2, one line naming the flag or key and what to do, no traceback, and
production, the store and the state dir exactly as before."""

from __future__ import annotations

import json

import pytest

from conftest import Project, bump, ok, tree


def everything(project: Project) -> dict[str, object]:
    """Production (and the stages beside it), the store, the state dir, the history log."""
    return {"prod": tree(project.target.parent), "store": tree(project.backups), "state": tree(project.state),
            "log": project.log.read_bytes() if project.log.exists() else None}


def refused(project: Project, *args: str, expect: str) -> None:
    before = everything(project)
    proc = project.run(*args)
    assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
    assert expect in proc.stderr, (expect, proc.stderr)
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert everything(project) == before


@pytest.mark.parametrize("task", ["deploy", "rollback", "prune"])
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "-1", "-0.5", "1e999"])
def test_a_wait_that_is_not_a_finite_number_of_seconds_is_refused(project: Project, task: str,
                                                                   value: str) -> None:
    ok(project.run("deploy"))
    bump(project)
    refused(project, task, "--wait", value,
            expect=f"--wait: expected a finite number of seconds, 0 or more, got '{value}'")


@pytest.mark.parametrize("glob,why", [
    ("../x", "contains '..'"),
    ("/etc/passwd", "is absolute"),
    ("a/../../b", "contains '..'"),
    ("", "is empty"),
])
def test_an_adopt_glob_leaving_the_target_is_refused_before_anything_changes(project: Project, glob: str,
                                                                             why: str) -> None:
    ok(project.run("deploy"))
    bump(project)
    (project.target / "mine.txt").write_text("the user's\n")
    refused(project, "deploy", "--adopt", glob, expect=f"--adopt '{glob}': {why}")
    refused(project, "deploy", "--adopt", glob, expect=f"; name files inside the target {project.target} with a "
                                                       "glob relative to it, e.g. --adopt 'config/*.json'")
    refused(project, "deploy", "--dry-run", "--adopt", "server.py", "--adopt", glob, expect=f"--adopt '{glob}'")


OWN_FILES = [  # (log: relative to the project, what the message calls it)
    ("state/journal.json", "is the journal of MCP Deploy"),
    ("state/lock", "is a lock file of MCP Deploy"),
    ("state/hashcache.json", "is the hash cache of MCP Deploy"),
    ("state/releases", "is the release records of MCP Deploy"),
    ("state/releases/d-20261124T180000.000000Z-abcdef.json", "is the release records of MCP Deploy"),
    ("state/journal.json.damaged-20261124T180000Z", "is the journal of MCP Deploy"),
    ("state/.journal.json.tmp-1234-abcd", "is the journal of MCP Deploy"),
    ("state", "is MCP Deploy's state_dir"),
    ("backups/mcp-deploy-store.json", "is the marker of the backup store"),
    ("backups/lock", "is a lock file of MCP Deploy"),
    ("backups/objects/ab/history.jsonl", "is inside the backup store's objects"),
    ("backups/snapshots/history.jsonl", "is inside the backup store's snapshots"),
    ("backups", "is the backup_dir"),
    ("prod/server", "is inside target"),
    ("prod/server/history.jsonl", "is inside target"),
    ("prod/.server.deploy-lock", "is a lock file of MCP Deploy"),
    ("prod/.server.deploy-d-20261124T180000.000000Z-abcdef/log", "is inside a stage of MCP Deploy"),
]


@pytest.mark.parametrize("log,what", OWN_FILES)
def test_a_history_log_pointed_at_one_of_the_tools_own_files_is_a_config_error(project: Project, log: str,
                                                                             what: str) -> None:
    ok(project.run("deploy"))
    bump(project)
    project.write_config(log=log)
    for task in ("deploy", "status", "history", "rollback", "prune"):
        refused(project, task, expect=f"profiles.default.log: log {project.root / log} {what}")
    if "target" not in what:
        refused(project, "status", expect="; point log at a file of its own (the default is history.jsonl in "
                                          "state_dir)")


def test_a_history_log_reaching_the_journal_through_a_link_is_refused(project: Project) -> None:
    ok(project.run("deploy"))
    (project.root / "history-link.jsonl").symlink_to(project.state / "journal.json")
    project.write_config(log="history-link.jsonl")
    refused(project, "deploy", expect=f"profiles.default.log: log {project.root / 'history-link.jsonl'} is the "
                                      "journal of MCP Deploy")


def test_history_shows_only_the_lines_it_wrote_and_counts_the_rest_as_damaged(project: Project) -> None:
    """Another program's JSON lines, and lines shaped like ours with fields of the wrong type, are damaged
    lines (one note), never an operation `? ? FAILED` nor a crash of --stats."""
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    mine = project.log.read_bytes()
    foreign = [{"level": "info", "msg": "server started"}, {"event": "deploy", "ok": False},
               {"event": "deploy", "id": "d-20261124T180000.000000Z-abcdef", "ok": True, "finished": "yesterday"},
               {"event": "deploy", "id": "d-20261124T180000.000000Z-abcdef", "ok": True,
                "finished": "2026-11-24T18:00:00+00:00", "steps": {"copy": "slow"}},
               {"event": "failure", "id": "d-20261124T180000.000000Z-abcdef", "ok": False, "operation": ["x"]},
               [1, 2], "just a string"]
    project.log.write_bytes(mine + b"".join(json.dumps(f).encode() + b"\n" for f in foreign) + b"not json\n")
    proc = ok(project.run("history"))
    assert "? " not in proc.stdout and proc.stdout.count("FAILED") == 0, proc.stdout
    assert len(proc.stdout.strip().splitlines()) == 3  # two deploys and the note
    assert f"note: skipped {len(foreign) + 1} damaged line(s) in {project.log}" in proc.stdout
    code, data = project.json("history")
    assert code == 0 and len(data["records"]) == 2 and data["damaged_lines"] == len(foreign) + 1
    code, stats = project.json("history", "--stats")
    assert code == 0 and stats["stats"]["operations"] == 2 and "Traceback" not in proc.stderr


def test_a_huge_plan_digest_is_not_echoed_whole(project: Project) -> None:
    """A 100,000-character `--plan` (from a script gone wrong, or an MCP client's plan_digest) never matches;
    the refusal quoted it whole, flooding the terminal or a CI log."""
    ok(project.run("deploy"))
    bump(project)
    before = tree(project.target)
    proc = project.run("deploy", "--plan", "f" * 100_000)
    assert proc.returncode == 6, proc.stderr
    assert "plan changed since it was previewed (expected ffff" in proc.stderr
    assert "(100000 characters)" in proc.stderr and len(proc.stderr) < 2_000
    assert tree(project.target) == before


@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_rollback_to_is_a_usage_error(project: Project, value: str) -> None:
    """`rollback --to "$SNAP"` with SNAP unset said "no snapshot matches" (exit 7), as if it had looked."""
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    before = tree(project.target)
    proc = project.run("rollback", "--to", value)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: --to: expected a snapshot id, deploy id or version (see `")
    assert proc.stderr.strip().endswith("got an empty value")
    assert tree(project.target) == before
