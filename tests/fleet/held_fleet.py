"""Not collected on its own: test_hosts.py runs this file in a pytest of its own to end that run
badly (a failing test, SIGINT, SIGTERM, SIGKILL) while it holds hosts and an ssh session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from .conftest import MakeFleet


def test_hold_a_fleet(fleet: MakeFleet) -> None:
    end = os.environ.get("MCPD_HELD_FLEET")
    if not end:
        pytest.skip("driven by test_hosts.py")
    # what a terminal's Ctrl-C gets; a run started in the background by a non-interactive shell
    # inherits SIGINT ignored, and this one would then just go on sleeping
    signal.signal(signal.SIGINT, signal.default_int_handler)
    hosts = fleet(2)
    session = subprocess.Popen(hosts[0].ssh_argv(f"echo up; exec sleep {os.environ['MCPD_MARKER']}"),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    assert session.stdout is not None and session.stdout.readline() == "up\n"
    print(json.dumps({"run_id": hosts.run_id, "netns": [h.netns for h in hosts], "subnets": hosts.subnets}), flush=True)
    if end == "fail":
        raise AssertionError("failing on purpose")
    time.sleep(120)
