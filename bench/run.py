"""Benchmark MCP Deploy against rsync -a and cp -a doing the same copy, in the same run.

Every number is the median of --runs runs of a whole command, process start
included, as a user runs it; peak RSS comes from wait4() for that one process.
Prints one table; targets are pass/fail columns (issue 5), not test asserts.

With --fleet (root only): 1% of the large tree redeployed to 4 test hosts against the same to one
host, over real SSH (tests/fleet/hosts.py makes the hosts, and removes them afterwards), and the
bytes each host was sent; the fleet issue's targets as pass/fail columns.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MCP_DEPLOY = [sys.executable, "-m", "deploylib"]
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Sample:
    wall: float
    rss_mib: float


@dataclass
class Row:
    case: str
    ours: list[Sample]
    rsync: list[Sample] = field(default_factory=list)
    cp: list[Sample] = field(default_factory=list)
    target: str = ""
    passed: bool | None = None


def median(samples: list[Sample]) -> float:
    return statistics.median(s.wall for s in samples) if samples else float("nan")


def peak(samples: list[Sample]) -> float:
    return max(s.rss_mib for s in samples) if samples else float("nan")


def timed(cmd: list[str], cwd: Path | None = None) -> Sample:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed: {err}")
    kib = usage.ru_maxrss / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS, KiB on Linux
    return Sample(wall, kib / 1024)


def make_tree(root: Path, files: int, total_bytes: int) -> list[Path]:
    """`files` files in directories of 100, `total_bytes` in all, deterministic content."""
    size = max(1, total_bytes // files)
    paths = []
    for i in range(files):
        path = root / f"pkg{i // 100:03}" / f"mod{i % 100:02}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((f"# file {i}\n".encode() * (size // 10 + 1))[:size])
        paths.append(path)
    return paths


def mutate(paths: list[Path], tag: str) -> None:
    """Edit each file, changing its size: rsync's quick check compares mtimes to the second, and two
    same-size writes within one second would (by rsync's rules) look unchanged to it."""
    for path in paths:
        path.write_bytes(path.read_bytes() + f"# {tag}\n".encode())


class Case:
    """A source tree deployed by mcp-deploy, mirrored by rsync and cp into their own directories."""

    def __init__(self, work: Path, name: str, files: int, total_bytes: int) -> None:
        self.root = work / name
        self.src = self.root / "src"
        self.paths = make_tree(self.src, files, total_bytes)
        self.config = self.root / "deploy.yaml"
        self.config.write_text(
            "profiles:\n  default:\n    source: src\n    target: prod\n    state_dir: state\n"
            "    backup_dir: backups\n    log: history.jsonl\n    include: ['**']\n    retention: {keep_last: 5}\n")
        self.deploy()
        self.rsync()
        self.cp()

    def ours(self, *args: str) -> Sample:
        return timed([*MCP_DEPLOY, *args, "--config", str(self.config)], cwd=self.root)

    def deploy(self) -> Sample:
        sample = self.ours("deploy")
        self.assert_synced("prod")
        return sample

    def assert_synced(self, name: str) -> None:
        """A benchmark of a command that did nothing is worse than none: check the first file landed."""
        rel = self.paths[0].relative_to(self.src)
        if (self.root / name / rel).read_bytes() != self.paths[0].read_bytes():
            raise SystemExit(f"bench: {name} is not in sync after the command; the measurement is void")

    def rsync(self, *flags: str) -> Sample:
        sample = timed(["rsync", "-a", *flags, f"{self.src}/", f"{self.root / 'rsync'}/"])
        if not flags:
            self.assert_synced("rsync")
        return sample

    def cp(self) -> Sample:
        (self.root / "cp").mkdir(exist_ok=True)
        sample = timed(["cp", "-a", f"{self.src}/.", f"{self.root / 'cp'}/"])
        self.assert_synced("cp")
        return sample


def bench(work: Path, runs: int, big_files: int, big_bytes: int) -> list[Row]:
    rows = []
    small = Case(work, "small", 100, 100 * 4096)
    deploy100, rsync100, cp100, rollback100 = [], [], [], []
    for i in range(runs):
        mutate(small.paths, f"run {i}")
        deploy100.append(small.deploy())
        rsync100.append(small.rsync())
        cp100.append(small.cp())
        rollback100.append(small.ours("rollback"))
        if (small.root / "prod" / small.paths[0].relative_to(small.src)).read_bytes() == small.paths[0].read_bytes():
            raise SystemExit("bench: rollback left production at the new version; the measurement is void")
        small.deploy()  # forward again, untimed
    rows.append(Row("deploy 100 changed of 100 files", deploy100, rsync100, cp100, "<= 0.5 s",
                    median(deploy100) <= 0.5))

    big = Case(work, "big", big_files, big_bytes)
    changed = big.paths[:: max(1, len(big.paths) // (len(big.paths) // 100))][: len(big.paths) // 100]
    deploy1, rsync1, cp1, rollback10k = [], [], [], []
    for i in range(runs):
        mutate(changed, f"run {i}")
        deploy1.append(big.deploy())
        rsync1.append(big.rsync())
        cp1.append(big.cp())
        rollback10k.append(big.ours("rollback"))
        big.deploy()
    label = f"{len(big.paths):,} files"
    rows.append(Row(f"deploy 1% of {label} ({big_bytes >> 20} MB)", deploy1, rsync1, cp1, "<= 1.5x rsync",
                    median(deploy1) <= 1.5 * median(rsync1)))

    status0 = [big.ours("status") for _ in range(runs)]
    noop = [big.deploy() for _ in range(runs)]
    rsync_n = [big.rsync("-n") for _ in range(runs)]
    rows.append(Row(f"status, nothing changed, {label}", status0, rsync_n, [], "<= 1.0x rsync -an",
                    median(status0) <= median(rsync_n)))
    rows.append(Row(f"deploy, nothing changed, {label}", noop, rsync_n, [], "(context)", None))
    rows.append(Row("rollback 100 files", rollback100, [], [], "(baseline)", None))
    rows.append(Row(f"rollback 1% of {label}", rollback10k, [], [], "<= 0.3 s and <= 3x rollback 100",
                    median(rollback10k) <= 0.3 and median(rollback10k) <= 3 * median(rollback100)))
    floor = [timed([*MCP_DEPLOY, "--version"]) for _ in range(runs)]
    rows.append(Row("start-up floor: `mcp-deploy --version`", floor, [], [], "(context)", None))
    all_ours = [s for r in rows for s in r.ours]
    rows.append(Row("peak memory, every mcp-deploy run above", all_ours, [], [], "<= 100 MB",
                    peak(all_ours) <= 100))
    return rows


def commit_windows(work: Path, runs: int, files: int, total_bytes: int) -> str:
    """How long readers of production may see a mix of releases: the commit step's renames (plus one
    syncfs), from the deploy's own --json timings, for 1% and for all of the files changed."""
    case = Case(work, "window", files, total_bytes)
    lines = ["| files changed | commit window (median) | max |", "| ---: | ---: | ---: |"]
    for share in (100, 1):
        picked = case.paths[:: share][: len(case.paths) // share]
        seconds = []
        for i in range(runs):
            mutate(picked, f"window {share} {i}")
            out = subprocess.run([*MCP_DEPLOY, "deploy", "--json", "--config", str(case.config)], cwd=case.root,
                                 capture_output=True, text=True, check=True).stdout
            seconds.append(json.loads(out)["timings"]["commit"])
        lines.append(f"| {len(picked):,} of {len(case.paths):,} | {statistics.median(seconds) * 1000:.0f} ms | "
                     f"{max(seconds) * 1000:.0f} ms |")
    return "\n".join(lines)


def render(rows: list[Row], runs: int) -> str:
    head = ("| case | mcp-deploy | rsync -a | cp -a | ratio vs rsync | peak RSS (ours / rsync / cp) | target | pass |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    lines = [head]

    def sec(samples: list[Sample]) -> str:
        return f"{median(samples):.3f} s" if samples else "-"

    def mib(samples: list[Sample]) -> str:
        return f"{peak(samples):.0f}" if samples else "-"

    for r in rows:
        ratio = f"{median(r.ours) / median(r.rsync):.2f}x" if r.rsync else "-"
        verdict = "-" if r.passed is None else ("PASS" if r.passed else "FAIL")
        if r.case.startswith("peak memory"):
            lines.append(f"| {r.case} | - | - | - | - | {mib(r.ours)} MiB | {r.target} | {verdict} |")
            continue
        lines.append(f"| {r.case} | {sec(r.ours)} | {sec(r.rsync)} | {sec(r.cp)} | {ratio} | "
                     f"{mib(r.ours)} / {mib(r.rsync)} / {mib(r.cp)} MiB | {r.target} | {verdict} |")
    lines.append(f"\nMedians of {runs} runs; {platform.node()}: {platform.platform()}, {os.cpu_count()} CPUs, "
                 f"Python {platform.python_version()}, {subprocess.run(['rsync', '--version'], capture_output=True, text=True).stdout.splitlines()[0]}.")
    return "\n".join(lines)


def fleet_bench(runs: int, files: int, total_bytes: int) -> None:
    """The fleet issue's bench (tests/fleet/fleetbench.py's scenario) on 4 namespace test hosts."""
    if os.geteuid() != 0:
        raise SystemExit("bench --fleet: the 4 test hosts are network, mount and pid namespaces of this machine "
                         "with an sshd each, which only root can make; run it as root (sudo .venv/bin/invoke "
                         "bench --fleet)")
    sys.path.insert(0, str(REPO))
    from tests.fleet import fleetbench, hosts

    reason = hosts.unavailable()
    if reason:
        raise SystemExit(f"bench --fleet: {reason}")
    hosts.sweep()  # what a SIGKILLed earlier run left
    size = max(1, total_bytes // files)

    def say(line: str) -> None:
        print(f"bench --fleet: {line}", file=sys.stderr, flush=True)

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mcp-deploy-fleet-bench-") as tmp, hosts.interrupts_tear_down():
        with hosts.Fleet(Path(tmp) / "hosts", 4) as four:
            say(f"4 test hosts up ({', '.join(f'{h.name} {h.address}' for h in four)})")
            outcome = fleetbench.measure(Path(tmp) / "proj", four, files=files, size=size, runs=runs, say=say)
        table = render_fleet(outcome, runs, (load, os.getloadavg()[0]))
        print(table, flush=True)  # before the trees (5 x the source) are deleted, which takes a while
        say("hosts removed; deleting the trees")


def render_fleet(o: Any, runs: int, load: tuple[float, float]) -> str:
    """One row per host count, then the rollback; seconds are medians of whole CLI runs."""
    one, four = o.median(o.one), o.median(o.four)
    ratio = four / one
    tree = f"{o.files:,} ({o.files * o.size / 1e6:.0f} MB)"
    change = f"{o.changed_files:,} files, {o.changed_bytes:,} B"
    lines = ["| hosts | files | changed (1%) | bytes sent per host (max) | per host / changed | seconds "
             f"(median of {runs}) | vs 1 host | target | pass |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for n, runs_, seconds, target in ((1, o.one, one, "bytes <= 1.1x changed"),
                                      (o.hosts, o.four, four, "<= 1.5x one host; bytes <= 1.1x changed")):
        sent = max(o.per_host(runs_, "bytes_sent"))
        objects = set(o.per_host(runs_, "objects_sent"))
        ok = sent <= 1.1 * o.changed_bytes and objects == {o.changed_files} and (n == 1 or ratio <= 1.5)
        lines.append(f"| {n} | {tree} | {change} | {sent:,} | {sent / o.changed_bytes:.3f}x | {seconds:.2f} s | "
                     f"{seconds / one:.2f}x | {target} | {'PASS' if ok else 'FAIL'} |")
    back = o.rollback.out["hosts"]
    sent = max(h["bytes_sent"] for h in back)
    ok = all(h["objects_sent"] == 0 for h in back)
    lines.append(f"| {o.hosts}, rollback | {tree} | {change} | {sent:,} ({sum(h['objects_sent'] for h in back)} "
                 f"objects) | - | {o.rollback.seconds:.2f} s | - | no object sent | {'PASS' if ok else 'FAIL'} |")

    def phases(runs_: list[Any]) -> str:
        keys = [k for k in runs_[0].out["timings"] if all(k in r.out["timings"] for r in runs_)]
        return ", ".join(f"{k} {statistics.median(r.out['timings'][k] for r in runs_):.2f}" for k in keys)

    lines.append(f"\nEach run: {o.hosts} hosts {', '.join(f'{r.seconds:.2f}' for r in o.four)} s; "
                 f"1 host {', '.join(f'{r.seconds:.2f}' for r in o.one)} s (order alternating).")
    lines.append(f"Controller phases, medians in s: {o.hosts} hosts: {phases(o.four)}; 1 host: {phases(o.one)}.")
    lines.append(f"{platform.node()}: {platform.platform()}, {os.cpu_count()} CPUs, Python "
                 f"{platform.python_version()}; the {o.hosts} hosts are namespaces of this machine: they share "
                 f"its {os.cpu_count()} CPUs and its disk. Load average (1 min) {load[0]:.1f} before, "
                 f"{load[1]:.1f} after.")
    return "\n".join(lines)


def ensure_rsync() -> None:
    """rsync is the yardstick: install it (Debian/Ubuntu, as root) when missing."""
    if shutil.which("rsync"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        install = ["apt-get", "install", "-y", "-q", "rsync"]
        if subprocess.run(install, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True)
            subprocess.run(install, capture_output=True, check=True)
    if not shutil.which("rsync"):
        raise SystemExit("bench: rsync is needed as the yardstick; install it (e.g. apt-get install rsync)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=10_000, help="files in the large tree")
    parser.add_argument("--mb", type=int, default=200, help="size of the large tree in MB")
    parser.add_argument("--fleet", action="store_true",
                        help="instead: 1%% of the large tree to 4 SSH test hosts against 1 (root only)")
    args = parser.parse_args()
    if args.fleet:
        fleet_bench(args.runs, args.files, args.mb * 1_000_000)
        return
    ensure_rsync()
    with tempfile.TemporaryDirectory(prefix="mcp-deploy-bench-") as tmp:
        rows = bench(Path(tmp), args.runs, args.files, args.mb << 20)
        windows = commit_windows(Path(tmp), args.runs, args.files, args.mb << 20)
    print(render(rows, args.runs))
    print("\nCommit window (readers may see old and new files side by side only during it):\n")
    print(windows)


if __name__ == "__main__":
    main()
