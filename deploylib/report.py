"""All the wording: how results become terminal text, one-line messages and MCP summaries.

The operations API returns data; every sentence a person reads is made here.
"""

from __future__ import annotations

import re
from typing import Any

from .results import (BackupsResult, DiffResult, HistoryResult, OperationResult, PruneResult,
                      ReleaseDiffResult, StatsResult, StatusResult)


# Characters a file name may hold that must never reach a terminal raw: C0/C1 controls (a newline
# would forge a line, ESC starts a terminal command), Unicode line separators and bidi overrides
# (text that reads differently from what it is), and surrogates (bytes that are not UTF-8).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(text: str, keep: str = "") -> str:
    """`text` as printed: control characters as \\n, \\x1b, ..., a byte that is not UTF-8 (a surrogate
    escape from os.scandir) as \\xff; the characters in `keep` stay. Names are taken exactly as
    the filesystem gives them; only what a person reads is escaped, so no name can write to the
    terminal, and none can make printing fail."""
    def escape(m: re.Match[str]) -> str:
        c = m.group()
        if c in keep:
            return c
        n = ord(c)
        if 0xDC80 <= n <= 0xDCFF:  # os.fsdecode's stand-in for the undecodable byte n - 0xDC00
            return f"\\x{n - 0xDC00:02x}"
        return _NAMED.get(c) or (f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}")

    return _UNSAFE.sub(escape, text)


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def encodable(data: Any) -> Any:
    """`data` (what `--json` prints) with each byte of a name that is not UTF-8 written `\\xff`, as `shown`
    prints it, in every string and key: a protocol that sends UTF-8 (MCP) cannot carry the lone surrogate
    that stands for it. Everything else, control characters included, stays as it is (JSON escapes them)."""
    if isinstance(data, str):
        return _SURROGATE.sub(lambda m: shown(m.group()), data) if _SURROGATE.search(data) else data
    if isinstance(data, dict):
        return {encodable(k): encodable(v) for k, v in data.items()}
    if isinstance(data, list):
        return [encodable(v) for v in data]
    return data


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


def short(commit: object) -> str:
    """A commit as people quote it (7 hex digits), or '' when unknown."""
    return commit[:7] if isinstance(commit, str) else ""


def version_label(version: object, commit: object = None, dirty: object = None) -> str:
    """'0.1.0 (abc1234)', '0.1.0 (abc1234-dirty)' from a checkout with edits, '0.1.0' outside git."""
    tag = short(commit) + ("-dirty" if dirty and commit else "")
    return f"{version} ({tag})" if tag else str(version)


def release_label(version: object, commit: object, release: object, when: object, dirty: object = None) -> str:
    """What tells releases apart: '0.1.0 (abc1234) d-2026...-3df90d, 2026-11-24 17:23:08Z'.

    A version that is the release id itself (no pyproject, no git) is said once.
    """
    named = str(release) if version in (None, release) else f"{version_label(version, commit, dirty)} {release}"
    if version in (None, release) and commit:
        named += f" ({short(commit)}{'-dirty' if dirty else ''})"
    return f"{named}, {moment(when)}" if when else named


def moment(when: object) -> str:
    """An ISO time from state as people read it: '2026-11-24 17:23:08Z' (UTC, whole seconds)."""
    text = str(when)
    return text[:10] + " " + text[11:19] + "Z" if len(text) >= 19 and text[10] == "T" else text


def plan_lines(plan: dict[str, Any], versions: tuple[str | None, str | None] | None = None,
               limit: int = 50) -> list[str]:
    """The plan as people read it: counts, version from -> to, each file with its size, hand edits."""
    counts = plan["counts"]
    lines = [f"Found {files(touched(plan))} to update: {counts['added']} added, "
             f"{counts['changed']} changed, {counts['removed']} removed, {counts['unchanged']} unchanged "
             f"({size(plan['bytes'])} to copy)"]
    if versions is not None:
        before, after = versions
        lines.append(f"Version: {before or '(none deployed)'} -> {after or '(named by the deploy id)'}")
    listed = 0
    sizes = plan.get("sizes", {})
    for mark, key in (("+", "added"), ("~", "changed"), ("-", "removed")):
        for path in plan[key]:
            if listed < limit:
                lines.append(f"  {mark} {shown(path)} ({size(sizes[path])})" if path in sizes
                             else f"  {mark} {shown(path)}")
            listed += 1
    if listed > limit:
        lines.append(f"  ... and {listed - limit} more")
    for path in plan.get("drift", [])[:limit]:
        lines.append(f"  ! {shown(path)} (edited in production since it was deployed)")
    lines.append(f"Plan digest: {plan['digest']}")
    return lines


def operation_message(r: OperationResult) -> str:
    """The result's one-line `message` (also in --json)."""
    verb = "deploy" if r.operation == "deploy" else "roll back"
    snapshot = f" snapshot {r.restored_from}" if r.restored_from else ""
    if not touched(r.plan):
        return f"nothing to {verb}: production already matches{snapshot}"
    if r.dry_run and r.would_refuse:
        return f"the {'deploy' if r.operation == 'deploy' else 'rollback'} would be refused (exit 4): {r.would_refuse}"
    if r.dry_run:
        restore = f"; would restore{snapshot} ({r.version})" if snapshot else ""
        return f"{files(touched(r.plan))} would change (dry run, nothing written){restore}; plan {r.plan['digest']}"
    return f"{_done(r)} ({files(touched(r.plan))})"


def _done(r: OperationResult) -> str:
    """'deployed 0.1.0 (abc1234) as d-X', 'rolled back to release d-A, 0.1.0 (abc1234), as r-Y': never an id twice."""
    if r.operation == "deploy":
        if r.version in (None, r.deploy_id):
            tag = f" ({short(r.git_commit)}{'-dirty' if r.git_dirty else ''})" if r.git_commit else ""
            return f"deployed {r.deploy_id}{tag}"
        return f"deployed {version_label(r.version, r.git_commit, r.git_dirty)} as {r.deploy_id}"
    what = f"release {r.release}" if r.release and not r.release.startswith("baseline:") else "the baseline"
    if r.version not in (None, r.release, "baseline"):
        what += f", {version_label(r.version, r.git_commit, r.git_dirty)},"
    return f"rolled back to {what} from snapshot {r.restored_from} as {r.deploy_id}"


def status_summary(r: StatusResult) -> str:
    """'Production v0.1.0 (2 hours old). 3 files pending deployment.' (the plan's own words)."""
    if _is_fleet(r):
        return str(r.summary)
    pending = touched(r.pending)
    if r.deployed:
        shown = str(r.version)
        shown = f"v{shown}" if shown[:1].isdigit() else shown
        commit = f"{short(r.git_commit)}{'-dirty' if r.git_dirty else ''}, " if r.git_commit else ""
        text = f"Production {shown} ({commit}{_age(r.age_seconds)} old). {files(pending)} pending deployment."
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
    if _is_fleet(r):
        digest, summary = getattr(r, "plan_digest", None), getattr(r, "summary", "")
        return f"{summary} Deploy with plan_digest={digest}." if digest else str(summary)
    counts, n = r.plan["counts"], touched(r.plan)
    if not n:
        return "Nothing to deploy: production already matches the source."
    drift = r.plan.get("drift", [])
    edited = (f" {len(drift)} file(s) were edited in production by hand ({', '.join(drift[:5])}): deploying "
              "would overwrite them; copy the edits into the source first." if drift else "")
    before = (release_label(r.previous_version, r.previous_git_commit, r.previous_id, None)
              if r.previous_id else "nothing deployed")
    found = (f"Found {files(n)} to update ({counts['added']} added, {counts['changed']} changed, "
             f"{counts['removed']} removed), {before} -> {version_label(r.version, r.git_commit, r.git_dirty)}.")
    if r.would_refuse:
        return f"{found} The deploy would be refused: {r.would_refuse}."
    return f"{found}{edited} Deploy with plan_digest={r.plan['digest']}."


def stale_plan(message: str, fresh: OperationResult) -> str:
    """The MCP deploy tool's refusal of a digest the source has moved past, with the preview to show instead."""
    return f"{message}. New preview: {preview_summary(fresh)}"


def deploy_summary(r: OperationResult) -> str:
    """The MCP deploy tool's outcome, in the plan's words."""
    if _is_fleet(r):
        return str(r.message)
    if not r.changed:
        return "Nothing to deploy: production already matches the source."
    backup = "Creating backup... " if r.snapshot_id else ""
    commit = f", commit {short(r.git_commit)}" if r.git_commit else ""
    named = r.deploy_id if r.version == r.deploy_id else f"{r.version}, {r.deploy_id}"
    return f"Found {files(touched(r.plan))} to update. {backup}Deploying... Success ({named}{commit})."


def rollback_summary(r: OperationResult) -> str:
    if _is_fleet(r):
        return str(r.message)
    verb = "Would roll back" if r.dry_run else "Rolled back"
    commit = f", {short(r.git_commit)}" if r.git_commit else ""
    return f"{verb} to {r.restored_from} ({r.version or 'preview'}{commit}): {r.message}."


def backups_summary(r: BackupsResult) -> str:
    return f"{len(r.snapshots)} snapshot(s); rollback target {r.rollback_target or 'none'}"


def history_summary(r: HistoryResult) -> str:
    return f"{len(r.records)} record(s) from {r.log}"


def release_diff_summary(r: ReleaseDiffResult) -> str:
    return release_diff(r).split("\n", 1)[0]


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


def operation(r: OperationResult, plan_shown: bool = False, verbose: bool = False) -> str:
    """The result of a deploy or rollback; the plan too, unless it was printed before the work began."""
    pending = touched(r.plan) > 0
    lines = plan_lines(r.plan, (r.previous_version, r.version)) if pending and not plan_shown else []
    if verbose:  # failures are notes anyway; --verbose shows every hook and what it printed
        for hook in r.hooks:
            lines.append(hook_line(hook))
            lines += [f"    {line}" for line in hook["output"].rstrip().splitlines()]
    lines += [f"note: {shown(n)}" for n in r.notes]
    if r.changed:
        backup = f"; backup {r.snapshot_id}" if r.snapshot_id else ""
        took = sum(r.timings.values())
        done = _done(r)
        lines.append(f"{done[0].upper()}{done[1:]} in {took:.2f}s{backup}. Success.")
    elif r.dry_run and pending and r.would_refuse:
        lines.append(f"Dry run: nothing was written. A real run would refuse this plan (exit 4): {r.would_refuse}")
    elif r.dry_run and pending:
        flag = f"--plan {r.plan['digest']}"
        if r.operation == "rollback":
            lines.append(f"Would restore snapshot {r.restored_from} ({r.version}).")
            flag = f"--to {r.restored_from} {flag}"
        lines.append(f"Dry run: nothing was written. Apply exactly this plan with {flag}.")
    else:
        lines.append(r.message[0].upper() + r.message[1:] + ".")
    return "\n".join(lines)


def status(r: StatusResult) -> str:
    lines = [r.summary, f"  target:   {r.target}", f"  source:   {r.source}"]
    if r.deployed:
        release = r.release or r.deploy_id
        how = f"{r.operation} {r.deploy_id}" if r.deploy_id != release else str(r.operation)
        lines.append(f"  release:  {release_label(r.version, r.git_commit, release, None, r.git_dirty)} "
                     f"({how} at {moment(r.deployed_at)})")
    pending = r.pending
    for key, mark in (("added", "+"), ("changed", "~"), ("removed", "-")):
        for path in pending.get(key, [])[:20]:
            lines.append(f"  pending {mark} {shown(path)}")
    for path in r.drift[:20]:
        lines.append(f"  drift   ! {shown(path)} (edited in production)")
    if r.lock:
        lines.append(f"  lock:     held by pid {r.lock['pid']} on {r.lock['host']}, "
                     f"{r.lock['operation']} since {r.lock['started']}")
    if r.rollback_target:
        lines.append(f"  rollback: would restore {r.rollback_target}")
    if r.last:
        lines.append(f"  last:     {r.last.get('event')} {r.last.get('id')} {_outcome(r.last, brief=True)}")
    lines += [f"note: {shown(n)}" for n in r.notes]
    return "\n".join(lines)


def diff(r: DiffResult) -> str:
    lines = plan_lines(r.plan)
    lines += [f"note: {shown(n)}" for n in r.notes]
    text = "\n".join(lines) + "\n"
    for path, body in r.diffs.items():
        text += "\n" + body
    return text.rstrip("\n")


def release_diff(r: ReleaseDiffResult) -> str:
    """`diff --release` / `--from --to`: which release against which, the files, then the diffs."""
    counts = r.plan["counts"]
    span = f"from {_release_side(r.old)} to {_release_side(r.new)}"
    if not touched(r.plan):
        lines = [f"No changes {span}: {files(counts['unchanged'])}, all identical."]
    else:
        lines = [f"Changes {span}: {files(touched(r.plan))}: {counts['added']} added, {counts['changed']} changed, "
                 f"{counts['removed']} removed, {counts['unchanged']} unchanged"]
    sizes = r.plan.get("sizes", {})
    for mark, key in (("+", "added"), ("~", "changed"), ("-", "removed")):
        lines += [f"  {mark} {shown(path)} ({size(sizes[path])})" for path in r.plan[key]]
    lines += [f"note: {shown(n)}" for n in r.notes]
    text = "\n".join(lines) + "\n"
    for key in ("added", "changed", "removed"):
        for path in r.plan[key]:
            if path in r.binary:
                text += "\n" + binary_differs(path, r.binary[path]["old"], r.binary[path]["new"])
            elif r.diffs.get(path):
                text += "\n" + r.diffs[path]
    return text.rstrip("\n")


def _release_side(side: dict[str, Any]) -> str:
    """'live 0.1.1 (d-...)', '0.1.0 (d-..., snapshot s-...)' or 'nothing (before the first deploy)'."""
    if side["kind"] == "nothing":
        return "nothing (before the first deploy)"
    if side["kind"] == "live":
        return f"live {side['version']} ({side['release']})"
    if side["release"] is None:
        return f"the files before the first deploy (snapshot {side['snapshot_id']})"
    return f"{side['version']} ({side['release']}, snapshot {side['snapshot_id']})"


def binary_differs(rel: str, old: int | None = None, new: int | None = None) -> str:
    """The diff body of a file too large or not text to diff line by line."""
    if old is None and new is None:
        return f"Binary or large file {rel} differs\n"
    sizes = " -> ".join(size(n) if n is not None else "none" for n in (old, new))
    return f"Binary or large file {rel} differs ({sizes})\n"


def history(r: HistoryResult) -> str:
    if not r.records:
        return f"No history yet ({r.log})."
    lines = []
    for rec in r.records:
        state = shown(_outcome(rec))
        when = moment(rec.get("finished") or rec.get("started") or "")
        what = rec.get("version") or rec.get("action") or ""
        what = "" if what == rec.get("id") else what  # a version that is the id itself: said once
        lines.append(f"{when:20} {rec.get('event', '?'):9} {rec.get('id', '?'):33} {str(what):12} "
                     f"{short(rec.get('git_commit')):7} {state}".rstrip())
    if r.damaged_lines:
        lines.append(f"note: skipped {r.damaged_lines} damaged line(s) in {r.log}")
    return "\n".join(lines)


def _outcome(rec: dict[str, Any], brief: bool = False) -> str:
    """How a history record ended: ok, refused (a stale --plan: nothing ran), or FAILED at a step."""
    if rec.get("ok"):
        return "ok"
    if rec.get("event") == "refused":
        return "refused" if brief else f"refused: {rec.get('error')}"
    if isinstance(rec.get("hosts"), dict):  # a fleet: where its hosts ended, and the first host's error
        errors = [f"{name}: {h.get('error')}" for name, h in rec["hosts"].items() if h.get("error")]
        ended = f"FAILED, fleet ended {rec.get('outcome')} (exit {rec.get('exit_code')})"
        return ended if brief or not errors else f"{ended}: {errors[0]}"
    failed = f"FAILED at {rec.get('failed_step')}"
    return failed if brief else f"{failed}: {rec.get('error')}"


def backups(r: BackupsResult) -> str:
    if not r.snapshots:
        lines = [f"No backups yet ({r.backup_dir})."]
    else:
        lines = [f"{'snapshot':33} {'created':20} {'version':12} {'commit':7} {'of release':33} "
                 f"{'files':>6} {'size':>10}"]
        for s in r.snapshots:
            mark = " <- rollback target" if s["rollback_target"] else (" (protected)" if s["protected"] else "")
            version = "" if s["version"] == s["release"] else str(s["version"])
            lines.append(f"{s['id']:33} {moment(s['created']):20} {version:12} {short(s.get('git_commit')):7} "
                         f"{s['release'] or 'baseline':33} {s['files']:>6} {size(s['bytes']):>10}{mark}")
    if r.other_targets:
        lines.append(f"({r.other_targets} snapshot(s) of other targets sharing this backup_dir are not listed: "
                     "their own profiles list and restore them)")
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
    if s.get("refused"):
        lines.append(f"{s['refused']} refused because the plan changed since its preview (not counted above)")
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


# --- fleets ------------------------------------------------------------------------------------------

def _is_fleet(r: Any) -> bool:
    """A fleet profile's result (one row per host) rather than a single target's."""
    return isinstance(getattr(r, "hosts", None), list)


def fleet_event(data: dict[str, Any]) -> str | None:
    """One progress line for a fleet host, or None for what is not worth a line."""
    host, kind = data["host"], data["kind"]
    if kind == "progress":
        if data.get("event") == "step":
            return f"[{host}] {data.get('step')}"
        if data.get("event") == "undo":
            return f"[{host}] undo {data.get('step')}"
        if data.get("event") == "note":
            return f"[{host}] note: {data.get('text')}"
        return None
    if kind == "prepared":
        plan = data.get("plan") or {}
        return f"[{host}] prepared: {touched(plan)} file(s) to change"
    if kind in ("failed", "lost"):
        return f"[{host}] {kind}: {data.get('error')}"
    if kind == "done":
        return f"[{host}] {'committed and confirmed' if data.get('changed') else 'already up to date'}"
    return f"[{host}] {kind}"


def fleet(r: Any) -> str:
    """A fleet operation's result: one row per host, then the result line."""
    rows: list[tuple[str, ...]] = [("host", "ended", "how far", "version", "release", "sent")]
    for h in r.hosts:
        rows.append((h["host"], h["state"], h["phase"], str(h.get("version") or "-"), str(h.get("release") or "-"),
                     size(h.get("bytes_sent") or 0)))
    lines = _table(rows)
    for h in r.hosts:
        if h.get("error"):
            lines.append(f"  {h['host']}: {h['error']}")
    lines += [f"note: {shown(n)}" for n in r.notes]  # the controller's: a scan's, a notification's
    return "\n".join(lines + [r.message])


def fleet_status(r: Any) -> str:
    rows: list[tuple[str, ...]] = [("host", "release", "version", "deployed", "pending", "drift", "lock")]
    for h in r.hosts:
        if h.get("error"):
            rows.append((h["host"], "?", "?", "?", "?", "?", f"unreachable: {h['error']}"[:80]))
            continue
        lock = h.get("lock")
        rows.append((h["host"], str(h.get("release") or "-"), str(h.get("version") or "-"),
                     moment(h.get("deployed_at")) if h.get("deployed_at") else "never",
                     str(touched(h.get("pending") or {})), str(len(h.get("drift") or [])),
                     f"{lock['operation']} (pid {lock['pid']})" if lock else "-"))
    lines = _table(rows)
    for h in r.hosts:
        for path in h.get("drift") or []:
            lines.append(f"  ! {h['host']}: {shown(path)} edited in production since it was deployed")
    if r.dry_run and r.plan_digest:
        lines.append(f"Plan digest: {r.plan_digest} (deploy --plan {r.plan_digest} deploys exactly these plans)")
    return "\n".join(lines + [r.summary])


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(shown(row[i])) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(shown(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
