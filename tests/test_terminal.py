"""What people see: progress and colour on a terminal, none of either in pipes, clean --json, NO_COLOR,
history --stats from a real history, the schema task and shell completion."""

from __future__ import annotations

import json
import os
import pty
import re
import statistics
import subprocess
import sys

from conftest import REPO, Project, bump, ok

COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7]|38;[25])[0-9;]*m")  # SGR foreground colours
INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]


def in_terminal(project: Project, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a real pseudo-terminal; returns (exit code, everything shown)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*INVOKE, *args, "--config", str(project.config)], cwd=project.root,
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", **(env or {})})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_terminal_shows_progress_bars_and_colour(project: Project) -> None:
    ok(project.run("deploy"))
    for i in range(30):
        (project.source / "templates" / f"t{i}.json").write_text("{}")
    bump(project)
    code, shown = in_terminal(project, "deploy")
    assert code == 0
    assert "━" in shown and "files" in shown  # rich progress bars for backup and copy
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    assert re.search(r"copy +[0-9.]+ (B|KiB) .*31/31 +files", plain)
    assert re.search(r"backup +[0-9.]+ (B|KiB) .*9/9 +files", plain)
    assert COLOUR.search(shown), "no colour on a terminal"
    assert "\x1b[32m  + templates/t0.json" in shown  # added files in green


def test_pipes_get_plain_step_lines_without_colour_or_bars(project: Project) -> None:
    bump(project)
    proc = ok(project.run("deploy"))
    assert "\x1b[" not in proc.stdout + proc.stderr and "━" not in proc.stderr
    assert "[staging] stage" in proc.stderr and "[copy] 9/9 files" in proc.stderr
    assert "  + server.py (" in proc.stdout  # sizes next to files
    assert re.search(r"  validate json: ok \([0-9.]+ s\)", proc.stderr)
    assert re.search(r"  verify command: ok \([0-9.]+ s\)", proc.stderr)


def test_json_output_has_no_progress_and_parses(project: Project) -> None:
    code, shown = in_terminal(project, "deploy", "--json")
    assert code == 0
    data = json.loads(shown)  # nothing but the object, even on a terminal
    assert data["ok"] is True and "━" not in shown


def test_no_color_disables_colour_on_a_terminal(project: Project) -> None:
    code, shown = in_terminal(project, "deploy", "--dry-run", env={"NO_COLOR": "1"})
    assert code == 0 and "  + server.py" in shown
    assert not COLOUR.search(shown), repr(shown[:300])
    code, shown = in_terminal(project, "deploy", "--dry-run")
    assert COLOUR.search(shown)


def test_verbose_failure_shows_detail_and_traceback(project: Project) -> None:
    project.profile["validators"].append({"type": "command", "run": "echo $((6*7))-early; echo last; exit 3"})
    project.write_config()
    quiet = project.run("deploy")
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr and "42-early" not in quiet.stderr
    loud = project.run("deploy", "--verbose")
    assert "42-early" in loud.stderr and "Traceback" in loud.stderr and "ValidationFailed" in loud.stderr


def test_history_stats_match_the_log_of_real_deploys_and_failures(project: Project) -> None:
    ok(project.run("deploy"))  # 9 files
    bump(project)
    ok(project.run("deploy"))  # 1 file
    (project.source / "agents.json").write_text("{broken")
    assert project.run("deploy").returncode == 1  # a failure ...
    (project.source / "agents.json").write_text((REPO / "examples/mcp-unified-agents/agents.json").read_text())
    (project.source / "templates" / "a.json").write_text("{}")
    (project.source / "templates" / "b.json").write_text("{}")
    ok(project.run("deploy"))  # ... recovered by 2 files
    ok(project.run("rollback"))
    code, data = project.json("history", "--stats")
    assert code == 0
    stats = data["stats"]
    log = project.history()
    assert stats["operations"] == 5 and stats["succeeded"] == 4 and stats["failed"] == 1
    assert stats["success_rate"] == 0.8
    day = log[0]["finished"][:10]
    assert stats["per_period"] == {day: {"deploy": 3, "failure": 1, "rollback": 1}}
    assert stats["files_per_deploy"] == {"n": 3, "median": 2, "p95": 9, "max": 9, "mean": 4.0}
    stage = [r["steps"]["stage"] for r in log if r["ok"]]
    assert stats["step_seconds"]["stage"]["median"] == round(statistics.median(stage), 4)
    assert stats["step_seconds"]["stage"]["max"] == round(max(stage), 4)
    from datetime import datetime

    def t(s: str) -> datetime:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))

    failure, fixed = log[2], log[3]
    assert stats["time_to_recover_seconds"]["n"] == 1
    assert stats["time_to_recover_seconds"]["median"] == round((t(fixed["finished"]) - t(failure["finished"])).total_seconds(), 4)
    text = ok(project.run("history", "--stats")).stdout
    assert "5 operations: 4 succeeded, 1 failed (80% success)" in text
    assert project.run("history", "--stats", "--period", "fortnight").returncode == 2


def test_schema_task_prints_and_writes_the_packaged_schema(project: Project) -> None:
    printed = subprocess.run([*INVOKE, "schema"], capture_output=True, text=True, check=True).stdout
    schema = json.loads(printed)
    assert schema["title"].startswith("MCP Deploy configuration")
    out = project.root / "deploy.schema.json"
    subprocess.run([*INVOKE, "schema", "--write", str(out)], check=True, capture_output=True)
    assert json.loads(out.read_text()) == schema


def test_shell_completion_through_invoke(project: Project) -> None:
    script = os.path.join(os.path.dirname(sys.executable), "mcp-deploy")
    bash = subprocess.run([script, "--print-completion-script", "bash"], capture_output=True, text=True).stdout
    assert "complete -F" in bash and "mcp-deploy" in bash
    tasks = subprocess.run([script, "--complete", "--", "mcp-deploy"], capture_output=True, text=True).stdout
    assert {"deploy", "rollback", "status", "history"} <= set(tasks.split())
    flags = subprocess.run([script, "--complete", "--", "mcp-deploy", "deploy", "--"], capture_output=True,
                           text=True).stdout
    assert "--dry-run" in flags and "--plan" in flags


def test_a_run_with_nothing_to_do_prints_one_line(project: Project) -> None:
    ok(project.run("deploy"))
    proc = ok(project.run("deploy"))
    assert proc.stdout == "Nothing to deploy: production already matches.\n" and proc.stderr == ""
    code, shown = in_terminal(project, "deploy")
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    assert code == 0 and plain.split() == "Nothing to deploy: production already matches.".split(), repr(plain)
    waiting = ok(project.run("deploy", "--wait", "5"))  # a run that may queue for the lock says so at once
    assert waiting.stderr.startswith("[idle] lock\n")


def test_finished_bars_show_their_totals_and_no_line_repeats(project: Project) -> None:
    ok(project.run("deploy"))
    bump(project)
    code, shown = in_terminal(project, "deploy")
    assert code == 0
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    for what in ("hash", "backup", "copy", "commit"):  # hash and commit count files without knowing a total
        done, total = re.findall(rf"{what} +[0-9.]+ (?:B|KiB) [━ ]+ (\d+)/(\S+) +files", plain)[-1]
        assert done == total, (what, done, total)
    bump(project, "server.py")
    lines = ok(project.run("deploy")).stderr.splitlines()
    assert len([line for line in lines if line.startswith("[hash]")]) == 1, lines
    assert len(lines) == len(set(lines)), lines
