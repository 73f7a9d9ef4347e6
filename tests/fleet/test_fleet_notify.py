"""`notify:` on a fleet profile, against the real local HTTP server of tests/test_notify.py: one
notification per fleet operation, sent by the controller, with every host's outcome in it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_notify import Webhook  # tests/ is on sys.path (tests/fleet is a package): the same server

from .conftest import MakeFleet
from .fleetproj import FleetProject


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def test_each_fleet_operation_sends_one_notification_with_every_hosts_outcome(
        fleet: MakeFleet, tmp_path: Path, webhook: Webhook) -> None:
    two = fleet(2)
    proj = FleetProject(tmp_path / "proj", two, rollout={"batch": 1, "confirm_timeout": 6}, notify=[
        {"type": "webhook", "url": f"{webhook.base}/hooks/T0KEN", "timeout": 5},
        {"type": "command", "on": ["failure"],
         "run": 'printf "%s" "$MCP_DEPLOY_NOTIFICATION" > failure.json; echo "$MCP_DEPLOY_OUTCOME" > outcome'}])
    code, v1 = proj.json("deploy")
    assert code == 0, v1
    [post] = webhook.received
    assert post["path"] == "/hooks/T0KEN"
    body = post["body"]
    assert body["event"] == "success" and body["ok"] is True and body["operation"] == "fleet-deploy"
    assert body["id"] == v1["fleet_id"] and body["outcome"] == "new" and body["profile"] == "fleet"
    keys = ("state", "phase", "changed", "error", "version", "release")
    assert body["hosts"] == {h["host"]: {k: h[k] for k in keys} for h in v1["hosts"]}
    assert {(h["state"], h["phase"], h["release"]) for h in body["hosts"].values()} == {("new", "confirmed", v1["fleet_id"])}
    assert body["text"] == f"fleet: {v1['message'][0].lower()}{v1['message'][1:]}"
    assert v1["notifications"] == [{"type": "webhook", "to": webhook.base, "event": "success", "ok": True,
                                    "problem": None}]  # the command wants failures only
    assert proj.json("deploy")[0] == 0 and len(webhook.received) == 1  # nothing deployed: nothing to say

    proj.write_source({"server.py": b"print('v2')\n"})
    code, v2 = proj.json("deploy")
    assert code == 0 and len(webhook.received) == 2 and webhook.received[1]["body"]["id"] == v2["fleet_id"]

    code, back = proj.json("rollback")
    assert code == 0, back
    [rollback] = [r["body"] for r in webhook.received[2:]]
    assert rollback["event"] == "rollback" and rollback["operation"] == "fleet-rollback"
    assert rollback["id"] == back["fleet_id"] and set(rollback["hosts"]) == {"host1", "host2"}

    proj.write_source({"server.py": b"print('v3')\n"})
    (two[1].fs / "srv" / "fail-verify").write_text("")  # host2's verify fails: the whole fleet ends old
    code, failed = proj.json("deploy")
    assert code == 1, failed
    [failure] = [r["body"] for r in webhook.received[3:]]
    assert failure["event"] == "failure" and failure["ok"] is False and failure["exit_code"] == 1
    assert failure["outcome"] == "old" and failure["error"] == failed["message"]
    assert failure["hosts"]["host1"]["state"] == "old" and failure["hosts"]["host1"]["phase"] == "rolled back"
    assert failure["hosts"]["host2"]["state"] == "old" and "verify" in failure["hosts"]["host2"]["error"]
    # the command ran once, on the controller, in the config's directory, with the same message
    assert json.loads((proj.root / "failure.json").read_text()) == failure
    assert (proj.root / "outcome").read_text() == "old\n"
    assert len(webhook.received) == 4
    assert [r["operation"] for r in proj.history()] == ["fleet-deploy"] * 3 + ["fleet-rollback", "fleet-deploy"]


def test_a_failing_webhook_is_a_note_and_never_the_fleets_exit_code(
        fleet: MakeFleet, tmp_path: Path, webhook: Webhook) -> None:
    two = fleet(2)
    webhook.status = 500
    proj = FleetProject(tmp_path / "proj", two, notify=[{"type": "webhook", "url": f"{webhook.base}/hooks/T0KEN"}])
    proc = proj.cli("deploy")
    assert proc.returncode == 0, proc.stderr
    assert len(webhook.received) == 1
    assert (f"notify webhook {webhook.base}: HTTP 500 Internal Server Error: boom (only the notification failed)"
            in proc.stdout + proc.stderr)
    assert "T0KEN" not in proc.stdout + proc.stderr
    for host in two:
        assert proj.managed(host) == proj.expected()
