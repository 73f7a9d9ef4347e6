"""Metrics from the history log: how often, how reliably and how fast deployments happen."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from typing import Any

from .ids import parse_time

OPERATIONS = ("deploy", "rollback", "failure")  # a `refused` stale --plan changed nothing: not an operation


def period_key(timestamp: str, period: str) -> str:
    when = parse_time(timestamp)
    if period == "week":
        year, week, _ = when.isocalendar()
        return f"{year}-W{week:02}"
    if period == "month":
        return f"{when:%Y-%m}"
    return f"{when:%Y-%m-%d}"


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "median": round(statistics.median(values), 4), "p95": round(p95(values), 4),
            "max": round(max(values), 4)}


def compute(records: list[dict[str, Any]], period: str = "day") -> dict[str, Any]:
    """All the figures `history --stats` reports, from records oldest first."""
    ops = [r for r in records if r.get("event") in OPERATIONS and r.get("finished")]
    per_period: dict[str, Counter[str]] = defaultdict(Counter)
    step_times: dict[str, list[float]] = defaultdict(list)
    recover_times: list[float] = []
    files: list[float] = []
    failed_at: str | None = None
    for rec in ops:
        per_period[period_key(rec["finished"], period)][rec["event"]] += 1
        if rec.get("ok"):
            for step, seconds in (rec.get("steps") or {}).items():
                step_times[step].append(float(seconds))
            if failed_at is not None:  # the first good state after a failure
                recover_times.append((parse_time(rec["finished"]) - parse_time(failed_at)).total_seconds())
                failed_at = None
            if rec["event"] == "deploy" and rec.get("counts"):
                c = rec["counts"]
                files.append(c.get("added", 0) + c.get("changed", 0) + c.get("removed", 0))
        elif failed_at is None:
            failed_at = rec["finished"]
    succeeded = sum(1 for r in ops if r.get("ok"))
    return {
        "period": period,
        "operations": len(ops),
        "succeeded": succeeded,
        "failed": len(ops) - succeeded,
        "recoveries": sum(1 for r in records if r.get("event") == "recovery"),
        "refused": sum(1 for r in records if r.get("event") == "refused"),
        "success_rate": round(succeeded / len(ops), 4) if ops else None,
        "per_period": {k: dict(v) for k, v in sorted(per_period.items())},
        "step_seconds": {step: summary(v) for step, v in step_times.items()},
        "time_to_recover_seconds": summary(recover_times),
        "files_per_deploy": {**summary(files), **({"mean": round(statistics.fmean(files), 2)} if files else {})},
        "unrecovered_failure_since": failed_at,
    }
