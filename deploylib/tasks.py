"""The tasks: parse flags, call `deploylib.operations`, print the result. No logic lives here.

invoke never loads here: `task` only records each task's flag help, and `program.namespace` turns
`TASKS` into invoke tasks for the repo's tasks.py and for `mcp-deploy` when it needs invoke's parser.
`mcp-deploy` calls a task directly when its words are plain long flags (cli.py). A task ends with
SystemExit(code) on failure: an exit code, under invoke or not.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Callable, NamedTuple

from . import operations, report, terminal
from .config import schema as config_schema
from .errors import ConfigError, DeployError
from .naming import command
from .results import OperationResult, Result, StatusResult

COMMON = {
    "config": "Path to deploy.yaml (default: $MCP_DEPLOY_CONFIG, else ./deploy.yaml).",
    "profile": "Profile of deploy.yaml to use (default: default_profile, else 'default').",
    "json": "Print one JSON object on stdout and nothing else there (for CI and programs).",
    "verbose": "On failure also print the detail (command output) and the traceback, for bug reports.",
}
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug, not the user's mistake
Call = Callable[[terminal.EventSink | None], Result]


class TaskOptions(NamedTuple):
    """What invoke's @task is given for a task: flag help, and the flags that may repeat."""

    body: Callable[..., None]
    help: dict[str, str]
    iterable: tuple[str, ...]


TASKS: list[TaskOptions] = []


def task(help: dict[str, str], iterable: tuple[str, ...] = ()) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a task (its first parameter is invoke's context, unused); invoke's @task is applied later."""
    def register(body: Callable[..., None]) -> Callable[..., None]:
        TASKS.append(TaskOptions(body, help, iterable))
        return body
    return register


def _print_traceback() -> None:
    import traceback  # only --verbose after a failure prints one

    traceback.print_exc()


def _run(call: Call, as_json: bool, verbose: bool, render: Callable[[Any], str], live: bool = False) -> None:
    """Run one operation; turn every expected failure into one line on stderr and its exit code."""
    terminal.tolerant_output()
    try:
        with terminal.progress(enabled=live and not as_json) as on_event:
            result = call(on_event)
    except DeployError as exc:
        if as_json:
            print(json.dumps(exc.to_json()))
        elif getattr(exc, "result", None) is not None:  # a fleet: where every host ended, then the error
            terminal.print_result(render(getattr(exc, "result")))
        # a config with several mistakes: one "error:" line each; any other error is one line, and a
        # newline in it belongs to a file name
        for line in exc.message.splitlines() if isinstance(exc, ConfigError) else [exc.message]:
            terminal.print_error(line)
        if verbose:
            if exc.detail:
                print(terminal.printable(exc.detail), file=sys.stderr)
            _print_traceback()
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:  # only outside an operation's steps (they undo and raise Interrupted)
        print("interrupted before anything changed", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as exc:  # a bug: say so plainly, keep the traceback for --verbose
        if as_json:
            print(json.dumps({"ok": False, "error": f"internal error: {exc}", "exit_code": EXIT_INTERNAL}))
        print(terminal.printable(f"internal error: {exc.__class__.__name__}: {exc} (a bug in mcp-deploy; "
                                 "rerun with --verbose and report it)"), file=sys.stderr)
        if verbose:
            _print_traceback()
        raise SystemExit(EXIT_INTERNAL) from None
    try:
        text = json.dumps(result.to_json(), indent=2, default=str) if as_json else render(result)
    except Exception as exc:  # a bug in the report, after an operation that finished: say both
        print(terminal.printable(f"internal error while reporting: {exc.__class__.__name__}: {exc} (the "
                                 "operation itself finished; see `status`; rerun with --verbose and report "
                                 "it)"), file=sys.stderr)
        if verbose:
            _print_traceback()
        raise SystemExit(EXIT_INTERNAL) from None
    if as_json:
        print(text)
    else:
        terminal.print_result(text)


def _after_plan(result: Any, verbose: bool = False) -> str:
    """A real run printed its plan as soon as preflight made it (the "plan" event); a dry run is the plan.
    A fleet profile's results are tables, one row per host (the fleet controller, loaded only for a fleet,
    returned them)."""
    if isinstance(result, OperationResult):
        return report.operation(result, plan_shown=not result.dry_run, verbose=verbose)
    from .fleet.controller import FleetResult

    return report.fleet(result) if isinstance(result, FleetResult) else report.fleet_status(result)


def _status(result: Any) -> str:
    return report.status(result) if isinstance(result, StatusResult) else report.fleet_status(result)


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


def _digest(value: str | None, task_name: str = "deploy") -> str | None:
    """`--plan ''` must not mean "no plan given": that would apply whatever the plan is now, unchecked."""
    if value is not None and not value.strip():
        raise ConfigError(f"--plan: expected the plan digest printed by `{command(task_name + ' --dry-run')}`, "
                          "got an empty value")
    return value


def _seconds(value: str | None) -> float:
    if value in (None, ""):
        return 0.0
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except ValueError:
        raise ConfigError(f"--wait: expected a number of seconds, got '{value}'") from None
    if not math.isfinite(seconds) or seconds < 0:  # nan compares false with everything: it waited 0 s
        raise ConfigError(f"--wait: expected a finite number of seconds, 0 or more, got '{value}'")
    return seconds


@task(help={**COMMON,
            "dry_run": "Show the plan and its digest; write nothing anywhere (not even a lock file).",
            "plan": "Deploy only if the plan's digest is still DIGEST (as printed by --dry-run).",
            "wait": "If another operation holds the lock, wait up to SECONDS for it (default: fail at once).",
            "adopt": "Let the deploy overwrite files in production that MCP Deploy did not deploy, if they match "
                     "this glob (repeatable; '**' for all); without it such files are refused (exit 4).",
            "overwrite_drift": "Let the deploy overwrite managed files that were edited in production by hand "
                               "(without it they are refused, exit 4); the backup keeps the edited files.",
            "ref": "Deploy exactly the committed tree of this git ref (branch, tag, commit) of the source's "
                   "repository: no working-tree edits, no untracked files (a bad ref: exit 2)."},
      iterable=("adopt",))
def deploy(c, profile=None, config=None, dry_run=False, plan=None, wait=None, adopt=None, overwrite_drift=False,
           ref=None, json_=False, verbose=False):
    """Deploy the source tree into production: lock, preflight, backup, stage, validate, commit, verify, record.

    Exit codes: 0 ok (or nothing to deploy), 1 failed and undone, 2 bad config or usage,
    3 lock held, 4 preflight refused, 5 corrupt state, 6 plan digest changed, 130 interrupted and undone;
    a fleet profile (hosts:) also 8 a mixed fleet, 9 a host unreachable or without python3 (nothing changed).
    """
    _run(lambda events: operations.deploy(config, profile, dry_run=dry_run, plan_digest=_digest(plan),
                                          wait=_seconds(wait), adopt=tuple(adopt or ()), ref=ref,
                                          overwrite_drift=overwrite_drift, on_event=events),
         json_, verbose, lambda r: _after_plan(r, verbose), live=True)


@task(help={**COMMON,
            "to": "Snapshot id, deploy id or version to restore (default: the release before the current one).",
            "dry_run": "Show the snapshot it would restore, what would change and the plan's digest; write nothing.",
            "plan": "Roll back only if the plan's digest is still DIGEST (as printed by --dry-run with the same "
                    "--to); else exit 6.",
            "wait": "If another operation holds the lock, wait up to SECONDS for it."})
def rollback(c, to=None, profile=None, config=None, dry_run=False, plan=None, wait=None, json_=False,
             verbose=False):
    """Restore production's managed files from a backup; user files stay as they are now.

    Exit codes: 0 ok (or nothing to roll back), 1 failed and undone, 2 bad config or usage, 3 lock held,
    4 preflight refused, 5 corrupt state, 6 plan digest changed, 7 no snapshot to restore, 130 interrupted.
    """
    _run(lambda events: operations.rollback(config, profile, to=_snapshot_choice(to), dry_run=dry_run,
                                            plan_digest=_digest(plan, "rollback"), wait=_seconds(wait),
                                            on_event=events),
         json_, verbose, lambda r: _after_plan(r, verbose), live=True)


@task(help=COMMON)
def status(c, profile=None, config=None, json_=False, verbose=False):
    """Production version and age, files pending, drift, lock holder and the last result."""
    _run(lambda events: operations.status(config, profile), json_, verbose, _status)


def _snapshot_choice(value: str | None) -> str | None:
    """`--to ''` is a script's empty variable, not "the default snapshot" and not a snapshot that is missing."""
    if value is not None and not value.strip():
        raise ConfigError(f"--to: expected a snapshot id, deploy id or version (see `{command('backups')}`), "
                          "got an empty value")
    return value


def _releases(release: str | None, old: str | None, new: str | None) -> None:
    """`--release` compares one release with its predecessor, `--from`/`--to` any two: never both."""
    for flag, value in (("--release", release), ("--from", old), ("--to", new)):
        if value is not None and not value.strip():
            raise ConfigError(f"{flag}: expected live, a snapshot id, deploy id or version "
                              f"(see `{command('backups')}`), got an empty value")
    if release is not None and (old is not None or new is not None):
        raise ConfigError("--release compares a release with the one before it, --from/--to compare any two: "
                          "give one or the other")
    if new is not None and old is None:
        raise ConfigError(f"--to needs --from (or `{command('diff --release ' + new)}` for what {new} changed)")


@task(help={**COMMON,
            "release": "Show what release ID changed against the release before it (ID: live, a snapshot id, "
                       "deploy id or version, as `backups` lists); exit 7 if its files are no longer kept.",
            "from_": "Compare release or snapshot ID (as for --release) with --to's; exit 7 if no longer kept.",
            "to": "With --from: the release or snapshot to compare with (default: live)."})
def diff(c, release=None, from_=None, to=None, profile=None, config=None, json_=False, verbose=False):
    """The pending changes, with unified diffs of text files; or what a release changed (--release, --from/--to).

    Exit codes: 0 ok, 2 bad config or usage, 5 a damaged backup, 7 a release whose files are no longer kept.
    """
    if release is None and from_ is None and to is None:
        _run(lambda events: operations.diff(config, profile), json_, verbose, report.diff)
        return

    def compare(events: terminal.EventSink | None) -> Result:
        _releases(release, from_, to)
        return operations.release_diff(config, profile, release=release, old=from_, new=to)

    _run(compare, json_, verbose, report.release_diff)


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
            raise SystemExit(ConfigError.exit_code) from None
        print(f"wrote {write}", file=sys.stderr)
    else:
        sys.stdout.write(text)


@task(help={"config": COMMON["config"], "profile": COMMON["profile"]})
def mcp(c, profile=None, config=None):
    """Serve deploy, status, rollback, history, diff and backups as MCP tools over stdio (for Claude Desktop / Code)."""
    from . import mcp_server  # the MCP SDK loads only for this task

    try:
        mcp_server.serve(config, profile)
    except DeployError as exc:
        for line in exc.message.splitlines():
            print(f"error: {line}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
