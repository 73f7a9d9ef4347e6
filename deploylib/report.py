"""All the wording: how results become terminal text, one-line messages and MCP summaries.

The operations API returns data; every sentence a person reads is made here.
"""

from __future__ import annotations

from typing import Any

from .results import (BackupsResult, DiffResult, HistoryResult, OperationResult, PruneResult,
                      StatsResult, StatusResult)


def size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def files(n: int) -> str:
    return f"{n} file{'s' if n != 1 else ''}"


def touched(plan: dict[str, Any]) -> int:
    """How many files a plan (as in the JSON output) adds, changes or removes."""
    counts = plan["counts"]
    return int(counts["added"] + counts["changed"] + counts["removed"])


def plan_lines(plan: dict[str, Any], limit: int = 50) -> list[str]:
    counts = plan["counts"]
    lines = [f"Found {files(touched(plan))} to update: {counts['added']} added, "
             f"{counts['changed']} changed, {counts['removed']} removed, {counts['unchanged']} unchanged "
             f"({size(plan['bytes'])} to copy)"]
    shown = 0
    sizes = plan.get("sizes", {})
    for mark, key in (("+", "added"), ("~", "changed"), ("-", "removed")):
        for path in plan[key]:
            if shown < limit:
                lines.append(f"  {mark} {path} ({size(sizes[path])})" if path in sizes else f"  {mark} {path}")
            shown += 1
    if shown > limit:
        lines.append(f"  ... and {shown - limit} more")
    lines.append(f"Plan digest: {plan['digest']}")
    return lines


def operation_message(r: OperationResult) -> str:
    """The result's one-line `message` (also in --json)."""
    verb = "deploy" if r.operation == "deploy" else "roll back"
    if not touched(r.plan):
        return f"nothing to {verb}: production already matches"
    if r.dry_run:
        return f"{files(touched(r.plan))} would change (dry run, nothing written); plan {r.plan['digest']}"
    done = "deployed" if r.operation == "deploy" else "rolled back to"
    return f"{done} {r.version} ({files(touched(r.plan))}); {r.deploy_id}"


def status_summary(r: StatusResult) -> str:
    """'Production v0.1.0 (2 hours old). 3 files pending deployment.' (the plan's own words)."""
    pending = touched(r.pending)
    if r.deployed:
        shown = str(r.version)
        shown = f"v{shown}" if shown[:1].isdigit() else shown
        text = f"Production {shown} ({_age(r.age_seconds)} old). {files(pending)} pending deployment."
    else:
        text = f"Nothing deployed yet to {r.target}. {files(pending)} pending deployment."
    if r.drift:
        text += f" {files(len(r.drift))} changed in production since the deploy."
    return text


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "unknown age"
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            n = int(seconds // length)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{int(seconds)} seconds"


def preview_summary(r: OperationResult) -> str:
    """The MCP deploy tool's preview, in a sentence."""
    counts, n = r.plan["counts"], touched(r.plan)
    if not n:
        return "Nothing to deploy: production already matches the source."
    return (f"Found {files(n)} to update ({counts['added']} added, {counts['changed']} changed, "
            f"{counts['removed']} removed), {r.previous_version or 'nothing deployed'} -> {r.version}. "
            f"Deploy with plan_digest={r.plan['digest']}.")


def deploy_summary(r: OperationResult) -> str:
    """The MCP deploy tool's outcome, in the plan's words."""
    if not r.changed:
        return "Nothing to deploy: production already matches the source."
    backup = "Creating backup... " if r.snapshot_id else ""
    return f"Found {files(touched(r.plan))} to update. {backup}Deploying... Success ({r.version}, {r.deploy_id})."


def rollback_summary(r: OperationResult) -> str:
    verb = "Would roll back" if r.dry_run else "Rolled back"
    return f"{verb} to {r.restored_from} ({r.version or 'preview'}): {r.message}."


def backups_summary(r: BackupsResult) -> str:
    return f"{len(r.snapshots)} snapshot(s); rollback target {r.rollback_target or 'none'}"


def history_summary(r: HistoryResult) -> str:
    return f"{len(r.records)} record(s) from {r.log}"


def diff_summary(r: DiffResult) -> str:
    counts = r.plan["counts"]
    return f"{counts['added']} added, {counts['changed']} changed, {counts['removed']} removed"


def hook_problem(r: dict[str, Any]) -> str:
    """A before_commit hook's failure, as the step's error says it."""
    return f"hook {r['problem']}"


def hook_note(r: dict[str, Any]) -> str:
    """A hook that failed once the outcome was final: reported, never undone."""
    if r["hook"] == "on_failure":
        return f"on_failure hook {r['problem']}"
    return (f"{r['hook']} hook {r['problem']}; the release is live and stays (a hook after verify never undoes "
            "it): fix the cause and run the hook's command by hand")


def stopped_by(command: str, signal_name: str) -> str:
    return f"`{command}` was stopped by {signal_name}"


def hook_line(r: dict[str, Any]) -> str:
    """One hook run, for --verbose and the progress lines."""
    if r["ok"]:
        return f"hook {r['hook']} `{r['run']}`: ok ({r['seconds']:.2f} s)"
    return f"hook {r['hook']}: {r['problem']}"


def notification_text(f: dict[str, Any]) -> str:
    """The one line a notification says (`text` in a webhook's JSON)."""
    where = f"{f['target']} on {f['host']}"
    if f["event"] == "failure":
        return f"{f['profile']}: {f['error']} [{where}]"
    if f["event"] == "rollback":
        return f"{f['profile']}: rolled {where} back to {f['version']} (snapshot {f['restored_from']}; {f['id']})"
    return f"{f['profile']}: deployed {f['version']} to {where} ({f['id']})"


def notify_note(r: dict[str, Any]) -> str:
    return f"notify {r['type']} {r['to']}: {r['problem']} (only the notification failed)"


def notify_stopped(signal_name: str) -> str:
    return f"notifications stopped by {signal_name}; the rest were not sent"


def http_problem(code: int, reason: str, answer: bytes) -> str:
    first = next((line.strip() for line in answer.decode(errors="replace").splitlines() if line.strip()), "")
    return f"HTTP {code} {reason}" + (f": {first[:200]}" if first else "")


def no_answer(timeout: float) -> str:
    return f"no answer within {timeout:g}s"


def operation(r: OperationResult, verbose: bool = False) -> str:
    pending = touched(r.plan) > 0
    lines = plan_lines(r.plan) if pending else []
    if verbose:  # failures are notes anyway; --verbose shows every hook and what it printed
        for hook in r.hooks:
            lines.append(hook_line(hook))
            lines += [f"    {line}" for line in hook["output"].rstrip().splitlines()]
    lines += [f"note: {n}" for n in r.notes]
    if r.changed:
        backup = f"; backup {r.snapshot_id}" if r.snapshot_id else ""
        verb = "Deployed" if r.operation == "deploy" else f"Rolled back to snapshot {r.restored_from}:"
        took = sum(r.timings.values())
        named = r.version if r.version == r.deploy_id else f"{r.version} as {r.deploy_id}"
        lines.append(f"{verb} {named} in {took:.2f}s{backup}. Success.")
    elif r.dry_run and pending:
        flag = f" with --plan {r.plan['digest']}" if r.operation == "deploy" else ""
        lines.append(f"Dry run: nothing was written. Apply exactly this plan{flag}.")
    else:
        lines.append(r.message[0].upper() + r.message[1:] + ".")
    return "\n".join(lines)


def status(r: StatusResult) -> str:
    lines = [r.summary, f"  target:   {r.target}", f"  source:   {r.source}"]
    if r.deployed:
        lines.append(f"  release:  {r.version} ({r.deploy_id}, {r.operation} at {r.deployed_at})")
    pending = r.pending
    for key, mark in (("added", "+"), ("changed", "~"), ("removed", "-")):
        for path in pending.get(key, [])[:20]:
            lines.append(f"  pending {mark} {path}")
    for path in r.drift[:20]:
        lines.append(f"  drift   ! {path} (edited in production)")
    if r.lock:
        lines.append(f"  lock:     held by pid {r.lock['pid']} on {r.lock['host']}, "
                     f"{r.lock['operation']} since {r.lock['started']}")
    if r.rollback_target:
        lines.append(f"  rollback: would restore {r.rollback_target}")
    if r.last:
        state = "ok" if r.last.get("ok") else f"FAILED at {r.last.get('failed_step')}"
        lines.append(f"  last:     {r.last.get('event')} {r.last.get('id')} {state}")
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)


def diff(r: DiffResult) -> str:
    lines = plan_lines(r.plan)
    lines += [f"note: {n}" for n in r.notes]
    text = "\n".join(lines) + "\n"
    for path, body in r.diffs.items():
        text += "\n" + body
    return text.rstrip("\n")


def history(r: HistoryResult) -> str:
    if not r.records:
        return f"No history yet ({r.log})."
    lines = []
    for rec in r.records:
        state = "ok" if rec.get("ok") else f"FAILED at {rec.get('failed_step')}: {rec.get('error')}"
        when = rec.get("finished") or rec.get("started") or ""
        what = rec.get("version") or rec.get("action") or ""
        lines.append(f"{when:24} {rec.get('event', '?'):9} {rec.get('id', '?'):40} {what} {state}".rstrip())
    if r.damaged_lines:
        lines.append(f"note: skipped {r.damaged_lines} damaged line(s) in {r.log}")
    return "\n".join(lines)


def backups(r: BackupsResult) -> str:
    if not r.snapshots:
        lines = [f"No backups yet ({r.backup_dir})."]
    else:
        lines = [f"{'snapshot':36} {'created':24} {'version':12} {'files':>6} {'size':>10}"]
        for s in r.snapshots:
            mark = " <- rollback target" if s["rollback_target"] else (" (protected)" if s["protected"] else "")
            lines.append(f"{s['id']:36} {s['created']:24} {str(s['version']):12} {s['files']:>6} "
                         f"{size(s['bytes']):>10}{mark}")
    lines += [f"problem: {p}" for p in r.problems]
    return "\n".join(lines)


def prune(r: PruneResult) -> str:
    verb = "Would remove" if r.dry_run else "Removed"
    return (f"{verb} {len(r.removed)} snapshot(s) and {r.objects_removed} object(s), "
            f"{size(r.bytes_freed)}; {len(r.kept)} snapshot(s) kept.")


def stats(r: StatsResult) -> str:
    s = r.stats
    if not s["operations"]:
        return f"No operations in the history yet ({r.log})."
    rate = f"{s['success_rate']:.0%}"
    lines = [f"{s['operations']} operations: {s['succeeded']} succeeded, {s['failed']} failed ({rate} success), "
             f"{s['recoveries']} crash recoveries"]
    lines.append(f"per {s['period']}:")
    for key, counts in s["per_period"].items():
        lines.append(f"  {key:12} " + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())))
    lines.append("step durations (median / p95):")
    for step, d in s["step_seconds"].items():
        lines.append(f"  {step:10} {d['median']:.3f} s / {d['p95']:.3f} s  (n={d['n']})")
    ttr = s["time_to_recover_seconds"]
    if ttr["n"]:
        lines.append(f"time to recover after a failure: median {ttr['median']:.1f} s, max {ttr['max']:.1f} s "
                     f"(n={ttr['n']})")
    if s["unrecovered_failure_since"]:
        lines.append(f"note: failing since {s['unrecovered_failure_since']}, no good deploy since")
    fpd = s["files_per_deploy"]
    if fpd["n"]:
        lines.append(f"files per deploy: median {fpd['median']:g}, mean {fpd['mean']:g}, max {fpd['max']:g}")
    if r.damaged_lines:
        lines.append(f"note: skipped {r.damaged_lines} damaged line(s) in {r.log}")
    return "\n".join(lines)
