"""The fleet bench's scenario: redeploy 1% of a tree to 4 hosts and to 1 host, then roll the 4 back.

One scenario, two users: `invoke bench --fleet` (bench/run.py: 10,000 files, several runs, a table of
times and bytes with PASS/FAIL against the issue's targets) and tests/fleet/test_fleet_bench.py (a few
hundred files, one run, asserting only behaviour: the objects and bytes each host was sent). Speed
targets are read from the bench's table, never asserted in the suite, where a shared or small CI
machine would make them flaky; and the test keeps the bench honest, since it runs the very code
whose numbers the table prints.

The one-host deploys go to host1 too, to a target of their own (a per-host `target` in a second
profile, with its own controller state): both deployments see the same change, and the 4-host
runs and the 1-host runs alternate which goes first.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import hosts
from .fleetproj import FleetProject

STEP = 100  # every 100th file changes: 1%


@dataclass
class Timed:
    seconds: float  # the whole CLI process, start-up included, as a user runs it
    out: dict[str, Any]  # its --json


@dataclass
class Outcome:
    hosts: int
    files: int
    size: int  # bytes per file
    changed_files: int  # per run
    changed_bytes: int  # per run
    four: list[Timed] = field(default_factory=list)
    one: list[Timed] = field(default_factory=list)
    rollback: Timed | None = None

    def per_host(self, runs: list[Timed], key: str) -> list[int]:
        return [h[key] for r in runs for h in r.out["hosts"]]

    @staticmethod
    def median(runs: list[Timed]) -> float:
        return statistics.median(r.seconds for r in runs)


def path(i: int) -> str:
    return f"data/{i // 100:03}/{i:05}.bin"


def one_target(fleet: hosts.Fleet) -> str:
    return str(Path(fleet.target).parent / "mcp-one")


def measure(root: Path, fleet: hosts.Fleet, *, files: int, size: int, runs: int,
            say: Any = lambda line: None) -> Outcome:
    """Deploy `files` random files of `size` bytes everywhere (untimed), then `runs` times: change
    1% and deploy it with the 4-host profile and with the 1-host one (timed, order alternating);
    then roll the fleet back once (timed). Raises unless every command succeeded and every host
    holds exactly what it should: a benchmark of a command that did nothing is void."""
    if files < STEP or files % STEP:
        raise ValueError(f"files: a multiple of {STEP}, so that 1% is a whole number of files")
    proj = FleetProject(root, fleet, include=["data/**"], validators=[], verify=[],
                        rollout={"parallel": len(fleet), "confirm_timeout": 30})
    proj.add_profile("one", hosts=[{"host": fleet[0].name, "target": one_target(fleet)}],
                     controller_state_dir=str(root / "controller-one"))
    proj.write_source({path(i): os.urandom(size) for i in range(files)})
    say(f"first deploy: {files:,} files of {size:,} bytes to {len(fleet)} hosts and to one")
    for profile in ("fleet", "one"):
        run(proj, profile)
    changed = range(0, files, STEP)
    result = Outcome(len(fleet), files, size, len(changed), len(changed) * size)
    for i in range(runs):
        new = {path(j + 1 + i % (STEP - 1)): os.urandom(size) for j in changed}
        proj.write_source(new)
        for profile in (("fleet", "one") if i % 2 == 0 else ("one", "fleet")):
            timed = run(proj, profile)
            (result.four if profile == "fleet" else result.one).append(timed)
        check(proj, fleet, new)
        say(f"run {i + 1}/{runs}: {len(fleet)} hosts {result.four[-1].seconds:.2f} s, "
            f"1 host {result.one[-1].seconds:.2f} s")
    result.rollback = run(proj, "fleet", "rollback")
    if runs:  # back to the release before the last: none of the last run's bytes are live
        for host in fleet:
            for rel, data in new.items():
                if (host.root / rel).read_bytes() == data:
                    raise AssertionError(f"{host.name}: {rel} is still the new release after the rollback")
    return result


def run(proj: FleetProject, profile: str, command: str = "deploy") -> Timed:
    started = time.monotonic()
    code, out = proj.json(command, profile=profile, timeout=1800)
    seconds = time.monotonic() - started
    if code != 0:
        raise AssertionError(f"{command} --profile {profile}: exit {code}: {out.get('message') or out}")
    return Timed(seconds, out)


def check(proj: FleetProject, fleet: hosts.Fleet, new: dict[str, bytes]) -> None:
    """Every host of the fleet, and host1's one-host target, holds the new bytes of every changed file."""
    roots = [(h.name, h.root) for h in fleet] + [(f"{fleet[0].name}:{one_target(fleet)}",
                                                  fleet[0].fs / one_target(fleet).lstrip("/"))]
    for name, root in roots:
        for rel, data in new.items():
            if (root / rel).read_bytes() != data:
                raise AssertionError(f"{name}: {rel} is not the deployed bytes; the measurement is void")
