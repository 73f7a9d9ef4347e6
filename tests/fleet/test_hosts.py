"""The test hosts themselves, before any fleet feature relies on them: reachable by alias with
strict host keys, each with its own /srv/mcp, cut and restored, one without python3, and gone
afterwards however the test ends."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import hosts
from .conftest import MakeFleet

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


@pytest.fixture(scope="module", autouse=True)
def nothing_left_by_this_module() -> Iterator[None]:
    """After the last test here: no namespace, link or process of any fleet this process made."""
    yield
    assert [item for run_id in hosts.CREATED for item in hosts.leftovers(run_id)] == []


def processes_with(marker: str) -> list[int]:
    """Pids (as seen here) whose command line contains marker: how a host process is found
    after its namespace is gone."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


def gone(marker: str, timeout: float = 10) -> bool:
    """No process with marker in its command line, within timeout (an ssh client whose host just
    died takes a moment to notice)."""
    deadline = time.monotonic() + timeout
    while processes_with(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_four_hosts_answer_in_parallel_by_alias_with_strict_host_keys(fleet: MakeFleet) -> None:
    four = fleet(4)
    known = four.known_hosts.read_text()
    config = four.ssh_config.read_text()
    assert "StrictHostKeyChecking yes" in config and "BatchMode yes" in config
    assert len(known.splitlines()) == 4

    started = time.monotonic()
    sessions = [subprocess.Popen(h.ssh_argv("python3 -c 'print(1)' && hostname && ip -4 -o addr show dev eth0"),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for h in four]
    results = [s.communicate(timeout=30) for s in sessions]
    assert time.monotonic() - started < hosts.CONNECT_TIMEOUT
    for host, session, (out, err) in zip(four, sessions, results):
        assert session.returncode == 0, err
        assert out.startswith(f"1\n{host.name}\n") and f" {host.address}/30 " in out  # that host, no other
    assert four.known_hosts.read_text() == known  # nothing learned on the way


def test_a_host_whose_key_is_not_known_is_refused_without_a_prompt(fleet: MakeFleet) -> None:
    two = fleet(2)
    lines = two.known_hosts.read_text().splitlines(keepends=True)
    two.known_hosts.write_text("".join(line for line in lines if not line.startswith("host2,")))

    refused = two[1].run("true", timeout=15)
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr
    assert two.known_hosts.read_text().count("\n") == 1  # not added either

    # a wrong key is refused as well: host2's line with host1's key
    host1_key = lines[0].split(" ", 1)[1]
    two.known_hosts.write_text(lines[0] + f"host2,{two[1].address} {host1_key}")
    assert "Host key verification failed" in two[1].run("true", timeout=15).stderr

    # the host itself is fine: only checking refuses it
    unchecked = hosts.run(two[1].ssh_argv("true", "-o", "StrictHostKeyChecking=no",
                                          "-o", "UserKnownHostsFile=/dev/null"), check=False)
    assert unchecked.returncode == 0, unchecked.stderr
    assert two[0].run("true").returncode == 0


def test_every_host_has_its_own_srv_mcp_that_this_namespace_cannot_see(fleet: MakeFleet) -> None:
    srv_here = sorted(os.listdir("/srv"))
    host1, host2 = fleet(2)

    assert host1.run("echo one > /srv/mcp/marker && cat /srv/mcp/marker").stdout == "one\n"
    assert (host1.root / "marker").read_text() == "one\n"
    assert not (host2.root / "marker").exists()
    assert host2.run("test -e /srv/mcp/marker").returncode == 1
    assert host1.exec_local("cat /srv/mcp/marker").stdout == "one\n"
    assert host2.exec_local("ls -A /srv/mcp").stdout == ""
    assert sorted(os.listdir("/srv")) == srv_here

    # /tmp is the host's own too, and what a remote command writes there stays in the test's dir
    name = f"mcpd-probe-{random.randrange(10**9)}"
    assert host1.run(f"echo x > /tmp/{name}").returncode == 0
    assert host2.run(f"test -e /tmp/{name}").returncode == 1
    assert not Path("/tmp", name).exists()

    # renames beside the target stay on one filesystem, as an atomic swap needs
    swap = host1.run("mkdir /srv/.mcp.stage && mv /srv/mcp /srv/.mcp.old && mv /srv/.mcp.stage /srv/mcp"
                     " && ls -A /srv")
    assert swap.returncode == 0 and swap.stdout.split() == [".mcp.old", "mcp"], swap.stderr


def test_cut_fails_new_connections_in_time_and_restore_brings_the_host_back(fleet: MakeFleet) -> None:
    host1, host2 = fleet(2)
    session = subprocess.Popen(host1.ssh_argv("echo up; sleep 2; echo survived"), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert session.stdout is not None and session.stdout.readline() == "up\n"

    host1.cut()
    started = time.monotonic()
    cut = host1.run("true", timeout=hosts.CONNECT_TIMEOUT + 10)
    assert cut.returncode == 255 and time.monotonic() - started < hosts.CONNECT_TIMEOUT + 1, cut.stderr
    route = hosts.ip("route", "get", host1.address, check=False)
    assert route.returncode != 0 and "No route to host" in route.stderr  # and not the default route
    assert host2.run("true").returncode == 0
    assert host1.exec_local("echo alive").stdout == "alive\n"

    host1.restore()
    assert host1.run("true").returncode == 0
    out, err = session.communicate(timeout=30)
    assert session.returncode == 0 and out == "survived\n", err  # the open session rode it out


def test_a_host_without_python3_fails_like_one_that_has_none(fleet: MakeFleet) -> None:
    with_python, without = fleet(2, without_python={"host2"})
    assert with_python.run(["python3", "-c", "print(1)"]).stdout == "1\n"

    missing = without.run(["python3", "-c", "print(1)"])
    assert missing.returncode == 127 and "python3: not found" in missing.stderr
    assert without.run(["/usr/bin/python3.11", "-V"]).returncode == 127
    assert without.run("echo the rest works").stdout == "the rest works\n"
    assert subprocess.run(["/usr/bin/python3", "-c", "pass"]).returncode == 0  # masked there only


def test_teardown_kills_every_host_process_and_removes_every_namespace_and_link(
        fleet_machine: None, tmp_path: Path) -> None:
    marker = f"3000.{random.randrange(10**9)}"
    with hosts.Fleet(tmp_path, 2) as two:
        session = subprocess.Popen(two[0].ssh_argv(f"echo up; exec sleep {marker}"), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert session.stdout is not None and session.stdout.readline() == "up\n"
        assert processes_with(marker)
        subnets = list(two.subnets)

    assert hosts.leftovers(two.run_id) == []
    assert session.wait(timeout=10) == 255  # the host died under it
    assert gone(marker)
    assert hosts.orphaned_claims(subnets) == []


def test_four_hosts_come_and_go_in_a_few_seconds(fleet_machine: None, tmp_path: Path) -> None:
    started = time.monotonic()
    with hosts.Fleet(tmp_path, 4):
        pass
    assert time.monotonic() - started < 10


class Output:
    """A process's output, read as it comes (in a thread), to wait for a line and to show all of
    it when something goes wrong."""

    def __init__(self, proc: subprocess.Popen[str]):
        assert proc.stdout is not None
        self.lines: queue.Queue[str] = queue.Queue()
        self.text = ""
        stdout = proc.stdout
        threading.Thread(target=lambda: [self.lines.put(line) for line in stdout], daemon=True).start()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain(0.1)
            if match := re.search(pattern, self.text):
                return match
        raise AssertionError(f"no {pattern!r} within {timeout}s in:\n{self.text}")

    def drain(self, wait: float = 0) -> str:
        with contextlib.suppress(queue.Empty):
            self.text += self.lines.get(timeout=wait) if wait else self.lines.get_nowait()
            while True:
                self.text += self.lines.get_nowait()
        return self.text


@pytest.mark.parametrize("end", ["fail", "SIGINT", "SIGTERM", "SIGKILL"])
def test_hosts_are_gone_however_the_run_holding_them_ends(end: str, fleet_machine: None) -> None:
    marker = f"3000.{random.randrange(10**9)}"
    run = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                            str(HERE / "held_fleet.py")], cwd=REPO, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                           env={**os.environ, "MCPD_HELD_FLEET": end, "MCPD_MARKER": marker})
    output = Output(run)
    try:
        held = json.loads(output.wait_for(r'\{"run_id".*\}', timeout=60).group(0))
        if end != "fail":
            os.kill(run.pid, getattr(signal, end))
        try:
            assert run.wait(timeout=60) != 0, output.drain(1)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running 60s after the {end}:\n{output.drain(1)}") from None
        if end != "SIGKILL":
            assert "left behind" not in output.drain(1), output.text
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()

    if end == "SIGKILL":  # no teardown ran: the hosts die with pytest, their names stay for sweep()
        deadline = time.monotonic() + 10
        while any(hosts._netns_pids(n) for n in held["netns"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        swept = hosts.sweep(max_age=0, stem=f"{hosts.PREFIX}{held['run_id']}-")
        assert sorted(swept[:2]) == sorted(f"netns {n}" for n in held["netns"])
    assert hosts.leftovers(held["run_id"]) == []
    assert hosts.orphaned_claims(held["subnets"]) == []
    assert gone(marker)
