"""The invoke tasks: parse flags, call `deploylib.operations`, print the result. No logic lives here.

The repo's tasks.py and the `mcp-deploy` console script both use `namespace`.
"""

from __future__ import annotations

import json
import sys
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from invoke import Collection, Exit, Program, task
from invoke.exceptions import ParseError
from invoke.main import program as invoke_program

from . import operations, report, terminal
from .config import schema as config_schema
from .errors import ConfigError, DeployError
from .naming import command
from .results import Result

COMMON = {
    "config": "Path to deploy.yaml (default: $MCP_DEPLOY_CONFIG, else ./deploy.yaml).",
    "profile": "Profile of deploy.yaml to use (default: default_profile, else 'default').",
    "json": "Print one JSON object on stdout and nothing else there (for CI and programs).",
    "verbose": "On failure also print the detail (command output) and the traceback, for bug reports.",
}
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug, not the user's mistake
Call = Callable[[terminal.EventSink | None], Result]


def _run(call: Call, as_json: bool, verbose: bool, render: Callable[[Any], str], live: bool = False) -> None:
    """Run one operation; turn every expected failure into one line on stderr and its exit code."""
    try:
        with terminal.progress(enabled=live and not as_json) as on_event:
            result = call(on_event)
    except DeployError as exc:
        if as_json:
            print(json.dumps({"ok": False, "error": exc.message, "exit_code": exc.exit_code,
                              "step": exc.step, "error_type": exc.kind}))
        for line in exc.message.splitlines():  # a config with several mistakes: one "error:" line each
            terminal.print_error(line)
        if verbose:
            if exc.detail:
                print(exc.detail, file=sys.stderr)
            traceback.print_exc()
        raise Exit(code=exc.exit_code) from None
    except KeyboardInterrupt:  # only outside an operation's steps (they undo and raise Interrupted)
        print("interrupted before anything changed", file=sys.stderr)
        raise Exit(code=130) from None
    except Exception as exc:  # a bug: say so plainly, keep the traceback for --verbose
        if as_json:
            print(json.dumps({"ok": False, "error": f"internal error: {exc}", "exit_code": EXIT_INTERNAL}))
        print(f"internal error: {exc.__class__.__name__}: {exc} (a bug in mcp-deploy; "
              "rerun with --verbose and report it)", file=sys.stderr)
        if verbose:
            traceback.print_exc()
        raise Exit(code=EXIT_INTERNAL) from None
    if as_json:
        print(json.dumps(result.to_json(), indent=2, default=str))
    else:
        terminal.print_result(render(result))


def _count(value: str | None, flag: str, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)  # type: ignore[arg-type]
    except ValueError:
        raise ConfigError(f"{flag}: expected a whole number, got '{value}'") from None
    if number < 0:
        raise ConfigError(f"{flag}: expected a whole number of 0 or more, got '{value}'")
    return number


def _digest(value: str | None) -> str | None:
    """`--plan ''` must not mean "no plan given": that would deploy whatever the plan is now, unchecked."""
    if value is not None and not value.strip():
        raise ConfigError(f"--plan: expected the plan digest printed by `{command('deploy --dry-run')}`, "
                          "got an empty value")
    return value


def _seconds(value: str | None) -> float:
    if value in (None, ""):
        return 0.0
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except ValueError:
        raise ConfigError(f"--wait: expected a number of seconds, got '{value}'") from None
    if seconds < 0:
        raise ConfigError(f"--wait: expected a non-negative number of seconds, got '{value}'")
    return seconds


@task(help={**COMMON,
            "dry_run": "Show the plan and its digest; write nothing anywhere (not even a lock file).",
            "plan": "Deploy only if the plan's digest is still DIGEST (as printed by --dry-run).",
            "wait": "If another operation holds the lock, wait up to SECONDS for it (default: fail at once).",
            "adopt": "Let the deploy overwrite files in production that MCP Deploy did not deploy, if they match "
                     "this glob (repeatable; '**' for all); without it such files are refused (exit 4)."},
      iterable=["adopt"])
def deploy(c, profile=None, config=None, dry_run=False, plan=None, wait=None, adopt=None, json_=False,
           verbose=False):
    """Deploy the source tree into production: lock, preflight, backup, stage, validate, commit, verify, record.

    Exit codes: 0 ok (or nothing to deploy), 1 failed and undone, 2 bad config or usage,
    3 lock held, 4 preflight refused, 5 corrupt state, 6 plan digest changed, 130 interrupted and undone.
    """
    _run(lambda events: operations.deploy(config, profile, dry_run=dry_run, plan_digest=_digest(plan),
                                          wait=_seconds(wait), adopt=tuple(adopt or ()), on_event=events),
         json_, verbose, lambda r: report.operation(r, verbose), live=True)


@task(help={**COMMON,
            "to": "Snapshot id, deploy id or version to restore (default: the release before the current one).",
            "dry_run": "Show what the rollback would change; write nothing.",
            "wait": "If another operation holds the lock, wait up to SECONDS for it."})
def rollback(c, to=None, profile=None, config=None, dry_run=False, wait=None, json_=False, verbose=False):
    """Restore production's managed files from a backup; user files stay as they are now."""
    _run(lambda events: operations.rollback(config, profile, to=to, dry_run=dry_run, wait=_seconds(wait),
                                            on_event=events),
         json_, verbose, lambda r: report.operation(r, verbose), live=True)


@task(help=COMMON)
def status(c, profile=None, config=None, json_=False, verbose=False):
    """Production version and age, files pending, drift, lock holder and the last result."""
    _run(lambda events: operations.status(config, profile), json_, verbose, report.status)


@task(help=COMMON)
def diff(c, profile=None, config=None, json_=False, verbose=False):
    """The pending changes, with unified diffs of text files."""
    _run(lambda events: operations.diff(config, profile), json_, verbose, report.diff)


@task(help={**COMMON, "limit": "Show the last N records (0 for all; default 20).",
            "stats": "Report metrics instead: operations per period, success rate, step durations "
                     "(median, p95), time to recover, files per deploy.",
            "period": "With --stats: group counts by 'day' (default), 'week' or 'month'."})
def history(c, limit=None, stats=False, period="day", profile=None, config=None, json_=False, verbose=False):
    """The deployment log: every deploy, rollback, failure and recovery (or its metrics with --stats)."""
    # a string flag parsed here: invoke's own int parsing would answer "abc" with a traceback
    if stats:
        _run(lambda events: operations.history_stats(config, profile, period=period), json_, verbose,
             report.stats)
    else:
        _run(lambda events: operations.history(config, profile, limit=_count(limit, "--limit", 20)), json_, verbose,
             report.history)


@task(help=COMMON)
def backups(c, profile=None, config=None, json_=False, verbose=False):
    """List the snapshots, newest first, marking the default rollback target."""
    _run(lambda events: operations.backups(config, profile), json_, verbose, report.backups)


@task(help={**COMMON, "dry_run": "Show what retention would delete; delete nothing.",
            "wait": "If another operation holds the lock, wait up to SECONDS for it."})
def prune(c, profile=None, config=None, dry_run=False, wait=None, json_=False, verbose=False):
    """Apply the retention rules and delete backup objects no snapshot needs."""
    _run(lambda events: operations.prune(config, profile, dry_run=dry_run, wait=_seconds(wait)),
         json_, verbose, report.prune)


@task(help={"write": "Write the schema to this file instead of printing it."})
def schema(c, write=None):
    """Print the JSON Schema of deploy.yaml (for editors: `# yaml-language-server: $schema=PATH`)."""
    text = json.dumps(config_schema(), indent=2) + "\n"
    if write:
        try:
            with open(write, "w") as f:
                f.write(text)
        except OSError as exc:
            terminal.print_error(f"--write {write}: cannot write the schema: {exc.strerror or exc}; "
                                 "pass the path of a file in a writable directory")
            raise Exit(code=ConfigError.exit_code) from None
        print(f"wrote {write}", file=sys.stderr)
    else:
        sys.stdout.write(text)


@task(help={"config": COMMON["config"], "profile": COMMON["profile"]})
def mcp(c, profile=None, config=None):
    """Serve deploy, status, rollback, history and diff as MCP tools over stdio (for Claude Desktop / Code)."""
    from . import mcp_server  # the MCP SDK loads only for this task

    try:
        mcp_server.serve(config, profile)
    except DeployError as exc:
        for line in exc.message.splitlines():
            print(f"error: {line}", file=sys.stderr)
        raise Exit(code=exc.exit_code) from None


namespace = Collection(deploy, rollback, status, diff, history, backups, prune, schema, mcp)


@contextmanager
def usage_errors() -> Iterator[None]:
    """An unknown flag or task, or a flag without its value, exits 2 (bad usage), not invoke's 1,
    which the README's exit-code table reserves for "the operation failed and was undone"."""
    try:
        yield
    except ParseError as exc:
        task_name = getattr(exc.context, "name", None)
        see = command(f"--help {task_name}") if task_name else command("--list")
        raise Exit(f"error: {exc} (see `{see}`)", code=ConfigError.exit_code) from None


def _exit_2_on_usage_errors(program: Program) -> None:
    """Wrap the parse steps of invoke's own Program (the repo's `invoke`) in `usage_errors`.

    That Program is not ours to subclass (cli.DeployProgram is, for `mcp-deploy`), but it imports
    this module while loading tasks.py, before it parses the task names and flags, so wrapping
    that one instance here still catches them. Nothing else runs that instance.
    """
    for name in ("parse_tasks", "parse_cleanup"):

        def wrapped(_method: Callable[[], None] = getattr(program, name)) -> None:
            with usage_errors():
                _method()

        setattr(program, name, wrapped)


_exit_2_on_usage_errors(invoke_program)
