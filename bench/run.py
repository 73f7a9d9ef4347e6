"""Benchmark MCP Deploy against rsync and the atomic-release recipe doing the same copy, in the same run.

Every number is the median of --runs runs of a whole command, process start
included, as a user runs it; peak RSS comes from wait4() for that one process.
The commands of one case run in turn (ours, rsync, recipe, ours, ...), so a
noisy machine moves every column together. Prints one table; the targets of
issue 13 are pass/fail columns, not test asserts.

With --fleet (root only): 1% of the large tree redeployed to 4 test hosts against the same to one
host, over real SSH (tests/fleet/hosts.py makes the hosts, and removes them afterwards), and the
bytes each host was sent; the fleet issue's targets as pass/fail columns.
"""

from __future__ import annotations

import argparse
import asyncio
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

BIN = Path(sys.executable).parent
# the console script a user runs (process start included); `python -m deploylib` where it is not installed
MCP_DEPLOY = [str(BIN / "mcp-deploy")] if (BIN / "mcp-deploy").exists() else [sys.executable, "-m", "deploylib"]
REPO = Path(__file__).resolve().parent.parent
PEERS_DIR = REPO / ".sandbox" / "bench-peers"  # ignored by git: the bench-only venv for ansible

# cp -al the live release, rsync the source over the copy, flip the `current` symlink: the usual
# atomic-release deploy by hand (Capistrano-style), in one shell.
RECIPE = r"""set -e
cd "$1"
n=$(cat next 2>/dev/null || echo 1)
new=releases/$n
if [ -e current ]; then cp -al "$(readlink current)" "$new"; else mkdir -p "$new"; fi
rsync -a --delete "$2/" "$new/"
ln -sfn "$new" current.tmp && mv -T current.tmp current
echo $((n + 1)) > next
"""


@dataclass
class Sample:
    wall: float
    rss_mib: float


@dataclass
class Row:
    case: str
    ours: list[Sample]
    rsync: list[Sample] = field(default_factory=list)
    recipe: list[Sample] = field(default_factory=list)
    ansible: list[Sample] = field(default_factory=list)
    target: str = ""
    passed: bool | None = None


def median(samples: list[Sample]) -> float:
    return statistics.median(s.wall for s in samples) if samples else float("nan")


def peak(samples: list[Sample]) -> float:
    return max(s.rss_mib for s in samples) if samples else float("nan")


def timed(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> Sample:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
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
        path = root / f"pkg{i // 100:04}" / f"mod{i % 100:02}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((f"# file {i}\n".encode() * (size // 10 + 1))[:size])
        paths.append(path)
    return paths


def mutate(paths: list[Path], tag: str) -> None:
    """Edit each file, changing its size: rsync's quick check compares mtimes to the second, and two
    same-size writes within one second would (by rsync's rules) look unchanged to it."""
    for path in paths:
        with open(path, "ab") as f:
            f.write(f"# {tag}\n".encode())


class Case:
    """A source tree deployed by mcp-deploy, mirrored by rsync and by the recipe into their own directories."""

    def __init__(self, work: Path, name: str, files: int, total_bytes: int, recipe: bool = True) -> None:
        self.root = work / name
        self.src = self.root / "src"
        self.paths = make_tree(self.src, files, total_bytes)
        self.config = self.root / "deploy.yaml"
        self.config.write_text(
            "profiles:\n  default:\n    source: src\n    target: prod\n    state_dir: state\n"
            "    backup_dir: backups\n    log: history.jsonl\n    include: ['**']\n    retention: {keep_last: 5}\n")
        self.deploy()
        self.rsync()
        if recipe:
            (self.root / "recipe").mkdir()
            self.recipe()

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
        sample = timed(["rsync", "-a", "--delete", *flags, f"{self.src}/", f"{self.root / 'rsync'}/"])
        if not flags:
            self.assert_synced("rsync")
        return sample

    def recipe(self) -> Sample:
        sample = timed(["sh", "-c", RECIPE, "recipe", str(self.root / "recipe"), str(self.src)])
        self.assert_synced("recipe/current")
        releases = sorted((self.root / "recipe" / "releases").iterdir(), key=lambda p: int(p.name))
        for old in releases[:-2]:  # untimed: keep the live release and the one before it, as the recipe would
            shutil.rmtree(old)
        return sample


def bench(work: Path, runs: int, big_files: int, big_bytes: int) -> tuple[list[Row], dict[str, float]]:
    rows = []
    small = Case(work, "small", 100, 100 * 4096)
    deploy100, rsync100, recipe100, rollback100 = [], [], [], []
    for i in range(runs):
        mutate(small.paths, f"run {i}")
        deploy100.append(small.deploy())
        rsync100.append(small.rsync())
        recipe100.append(small.recipe())
        rollback100.append(small.ours("rollback"))
        if (small.root / "prod" / small.paths[0].relative_to(small.src)).read_bytes() == small.paths[0].read_bytes():
            raise SystemExit("bench: rollback left production at the new version; the measurement is void")
        small.deploy()  # forward again, untimed
    rows.append(Row("deploy 100 changed of 100 files", deploy100, rsync100, recipe100, target="(context)"))

    big = Case(work, "big", big_files, big_bytes)
    changed = big.paths[:: max(1, len(big.paths) // (len(big.paths) // 100))][: len(big.paths) // 100]
    mutate(changed, "fill")  # untimed: this deploy's backup stores every production file once (the initial
    big.deploy()  # deploy replaced nothing); timed, it was the whole row at --runs 1 (2-6 s), not a 1% change
    big.rsync()
    big.recipe()
    deploy1, rsync1, recipe1, rollback10k = [], [], [], []
    for i in range(runs):
        mutate(changed, f"run {i}")
        deploy1.append(big.deploy())
        rsync1.append(big.rsync())
        recipe1.append(big.recipe())
        rollback10k.append(big.ours("rollback"))
        big.deploy()
    label = f"{len(big.paths):,} files"
    rows.append(Row(f"deploy 1% of {label} ({big_bytes >> 20} MB)", deploy1, rsync1, recipe1,
                    target="<= 2.5x rsync and <= 1.0x recipe",
                    passed=median(deploy1) <= 2.5 * median(rsync1) and median(deploy1) <= median(recipe1)))

    status0, rsync_n, noop = [], [], []
    for _ in range(runs):
        status0.append(big.ours("status"))
        rsync_n.append(big.rsync("-n"))
        noop.append(big.deploy())
    rows.append(Row(f"status, nothing changed, {label} (vs rsync -an)", status0, rsync_n,
                    target="<= 2x rsync -an", passed=median(status0) <= 2 * median(rsync_n)))
    rows.append(Row(f"deploy, nothing changed, {label} (vs rsync -an)", noop, rsync_n, target="(context)"))
    rows.append(Row("rollback 100 files", rollback100, target="(baseline)"))
    rows.append(Row(f"rollback 1% of {label}", rollback10k, target="<= 0.3 s and <= 2x rollback 100",
                    passed=median(rollback10k) <= 0.3 and median(rollback10k) <= 2 * median(rollback100)))
    floor, empty = [], []
    for _ in range(runs):
        floor.append(timed([*MCP_DEPLOY, "--version"]))
        empty.append(timed([sys.executable, "-c", "pass"]))
    rows.append(Row("start-up: `mcp-deploy --version` (vs `python -c pass` in rsync's column)", floor, empty,
                    target="<= 4x python -c pass", passed=median(floor) <= 4 * median(empty)))
    return rows, {"deploy10k": median(deploy1)}


def bench_large(work: Path, runs: int, files: int, total_bytes: int, deploy10k: float) -> list[Row]:
    """The 100,000-file tree: 1% changed, against the 10,000-file figure and a memory bound. The first deploy
    after the initial one is its own row: its backup stores every production file (the initial deploy
    replaced nothing, so backed up nothing), a once-per-target cost, not that of a 1% change."""
    case = Case(work, "large", files, total_bytes, recipe=False)
    changed = case.paths[:: 100][: files // 100]
    mutate(changed, "large fill")
    fill = case.deploy()
    case.rsync()  # in step, untimed
    deploys, rsyncs = [], []
    for i in range(runs):
        mutate(changed, f"large {i}")
        deploys.append(case.deploy())
        rsyncs.append(case.rsync())
    ok = median(deploys) <= 12 * deploy10k and peak(deploys) <= 150
    return [Row(f"first deploy after the initial one, {files:,} files (its backup stores them all)", [fill],
                target="(context)"),
            Row(f"deploy 1% of {files:,} files ({total_bytes >> 20} MB)", deploys, rsyncs,
                target=f"<= 12x the 10k deploy ({12 * deploy10k:.2f} s), peak <= 150 MiB", passed=ok)]


def bench_big_file(work: Path, runs: int, mb: int) -> list[Row]:
    """One file of `mb` MiB changed per run: one read of the source, no re-hash of what the tool wrote."""
    case = Case(work, "bigfile", 1, mb << 20, recipe=False)
    deploys, rsyncs = [], []
    for i in range(runs):
        mutate(case.paths, f"big {i}")
        deploys.append(case.deploy())
        rsyncs.append(case.rsync())
    return [Row(f"deploy one changed {mb:,} MiB file", deploys, rsyncs, target="<= 1.3x rsync",
                passed=median(deploys) <= 1.3 * median(rsyncs))]


def bench_mcp(work: Path, runs: int, files: int, total_bytes: int) -> list[Row]:
    """A warm `mcp-deploy mcp` server: preview + deploy of 1% of the tree, timed at the client, against
    rsync -a --delete of the same change (a whole process, start included)."""
    case = Case(work, "mcp", files, total_bytes, recipe=False)
    changed = case.paths[:: max(1, files // (files // 100))][: files // 100]
    warm: list[Sample] = []
    rsyncs: list[Sample] = []

    async def session() -> None:
        from mcp import ClientSession
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(command=MCP_DEPLOY[0], args=[*MCP_DEPLOY[1:], "mcp", "--config",
                                                                    str(case.config)], cwd=str(case.root))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as client:
                await client.initialize()
                tools = [t.name for t in (await client.list_tools()).tools]
                tool = next(t for t in tools if t.endswith("deploy"))

                async def preview_and_deploy() -> float:
                    started = time.perf_counter()
                    preview = await client.call_tool(tool, {})
                    digest = preview.structured_content["plan"]["digest"]
                    done = await client.call_tool(tool, {"plan_digest": digest})
                    if done.is_error:
                        raise SystemExit(f"bench: MCP deploy failed: {done.content}")
                    return time.perf_counter() - started

                await preview_and_deploy()  # warm-up: the server learns both trees
                for i in range(runs):
                    mutate(changed, f"mcp {i}")
                    warm.append(Sample(await preview_and_deploy(), float("nan")))
                    case.assert_synced("prod")
                    rsyncs.append(case.rsync())

    asyncio.run(session())
    return [Row(f"warm MCP server: preview + deploy of 1% of {files:,} files", warm, rsyncs,
                target="<= 1.0x rsync", passed=median(warm) <= median(rsyncs))]


def ansible_playbook() -> Path:
    """ansible-core in a bench-only venv (under the ignored .sandbox/), installed once."""
    venv = PEERS_DIR / "venv"
    playbook = venv / "bin" / "ansible-playbook"
    if not playbook.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "ansible-core"], check=True)
    return playbook


def bench_peers(work: Path, runs: int, rows: list[Row], files: int, total_bytes: int) -> None:
    """The Ansible column: a playbook copying the source into its own directory with ansible.builtin.copy
    (ansible-core has no synchronize module), for the 100-file case and (one run) the large tree."""
    playbook = ansible_playbook()
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
           # the bench venv's own Python: discovery may pick a `python3.x` shim that cannot run (pyenv)
           "ANSIBLE_PYTHON_INTERPRETER": str(playbook.parent / "python"),
           # its temp files and collections under the bench's directory, not ~/.ansible
           "ANSIBLE_HOME": str(work / "ansible"), "ANSIBLE_LOCAL_TEMP": str(work / "ansible" / "tmp"),
           "ANSIBLE_REMOTE_TEMP": str(work / "ansible" / "tmp")}
    for name, count, size, row, n in (("peer-small", 100, 100 * 4096, rows[0], runs),
                                      ("peer-big", files, total_bytes, rows[1], 1)):
        root = work / name
        paths = make_tree(root / "src", count, size)
        play = root / "deploy.yml"
        play.write_text(f"- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
                        f"    - ansible.builtin.copy: {{src: '{root / 'src'}/', dest: '{root / 'dest'}/', "
                        f"mode: preserve}}\n")
        timed([str(playbook), "-i", "localhost,", str(play)], env=env)
        for i in range(n):
            mutate(paths[:: max(1, count // max(1, count // 100))][: max(1, count // 100)] if count > 100
                   else paths, f"peer {i}")
            row.ansible.append(timed([str(playbook), "-i", "localhost,", str(play)], env=env))


def render(rows: list[Row], runs: int, peers: bool) -> str:
    head = ["case", "mcp-deploy", "rsync -a --delete", "recipe: cp -al + rsync + ln", *(["ansible"] if peers else []),
            "vs rsync", "vs recipe", "peak RSS ours / rsync", "target", "pass"]
    lines = ["| " + " | ".join(head) + " |", "| --- | " + " | ".join("---:" for _ in head[1:-2]) + " | --- | --- |"]

    def sec(samples: list[Sample]) -> str:
        return f"{median(samples):.3f} s" if samples else "-"

    def mib(samples: list[Sample]) -> str:
        value = peak(samples)
        return f"{value:.0f}" if samples and value == value else "-"

    for r in rows:
        cells = [r.case, sec(r.ours), sec(r.rsync), sec(r.recipe), *([sec(r.ansible)] if peers else []),
                 f"{median(r.ours) / median(r.rsync):.2f}x" if r.rsync else "-",
                 f"{median(r.ours) / median(r.recipe):.2f}x" if r.recipe else "-",
                 f"{mib(r.ours)} / {mib(r.rsync)} MiB", r.target,
                 "-" if r.passed is None else ("PASS" if r.passed else "FAIL")]
        lines.append("| " + " | ".join(cells) + " |")
    rsync_version = subprocess.run(["rsync", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    lines.append(f"\nMedians of {runs} runs; {platform.platform()}, {os.cpu_count()} CPUs, "
                 f"Python {platform.python_version()}, {rsync_version}.")
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
    parser.add_argument("--large", type=int, default=0, metavar="FILES",
                        help="also deploy 1%% of a tree of FILES files (the issue: 100000), 10x --mb in size")
    parser.add_argument("--big-file", type=int, default=0, metavar="MIB", help="also deploy one changed file of MIB")
    parser.add_argument("--mcp", action="store_true", help="also time a warm MCP server's preview + deploy")
    parser.add_argument("--peers", action="store_true", help="add an Ansible column (installs ansible-core into "
                                                             f"a bench-only venv under {PEERS_DIR})")
    args = parser.parse_args()
    if args.fleet:
        fleet_bench(args.runs, args.files, args.mb * 1_000_000)
        return
    ensure_rsync()
    with tempfile.TemporaryDirectory(prefix="mcp-deploy-bench-") as tmp:
        work = Path(tmp)
        rows, figures = bench(work, args.runs, args.files, args.mb << 20)
        if args.large:
            rows += bench_large(work, args.runs, args.large, (args.mb * args.large // args.files) << 20,
                                figures["deploy10k"])
        if args.big_file:
            rows += bench_big_file(work, args.runs, args.big_file)
        if args.mcp:
            rows += bench_mcp(work, args.runs, args.files, args.mb << 20)
        if args.peers:
            bench_peers(work, args.runs, rows, args.files, args.mb << 20)
    print(render(rows, args.runs, args.peers))


if __name__ == "__main__":
    main()
