"""The `fleet` fixture: `fleet(n)` gives n real test hosts reachable over SSH (see hosts.py), and
removes them after the test whatever happens: failure, Ctrl-C, SIGTERM (SIGKILL: see sweep)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import pytest

from . import hosts

MakeFleet = Callable[..., hosts.Fleet]


@pytest.fixture(scope="session")
def fleet_machine() -> None:
    """Skip when this machine cannot have test hosts at all (not root; namespaces refused);
    once per session, remove what earlier runs killed with SIGKILL left."""
    reason = hosts.unavailable()
    if reason:
        pytest.skip(reason)
    hosts.sweep()


@pytest.fixture
def fleet(fleet_machine: None, tmp_path: Path) -> Iterator[MakeFleet]:
    """fleet(n, without_python=("host2",), target="/srv/mcp") -> hosts.Fleet of host1..hostN,
    each in this test's tmp dir; every fleet made is torn down after the test."""
    counter = itertools.count(1)
    with contextlib.ExitStack() as stack:
        stack.enter_context(hosts.interrupts_tear_down())

        def make(n: int, *, without_python: Collection[str] = (), target: str = hosts.TARGET) -> hosts.Fleet:
            base = tmp_path / f"fleet{next(counter)}"
            return stack.enter_context(hosts.Fleet(base, n, without_python=without_python, target=target))

        yield make
