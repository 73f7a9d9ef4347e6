"""Notifications (deploy.yaml `notify:`) against a real local HTTP server and real commands: they say what
happened, and whatever goes wrong with them never changes the deploy's outcome or exit code."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import MANAGED, Project, bump, ok


class Webhook:
    """A real HTTP server on 127.0.0.1 recording each POST; `status` and `delay` shape its answers."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.delay = 0.0
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(data)})
                if hook.delay:
                    hook.release.wait(hook.delay)
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"boom\nmore\n" if hook.status >= 400 else b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def test_a_deploy_posts_its_outcome_as_json(project: Project, webhook: Webhook) -> None:
    ok(project.run("deploy"))
    url = f"{webhook.base}/services/T0KEN/secret-part?x=1"
    project.write_config(notify=[{"type": "webhook", "url": url.replace("T0KEN", "${HOOK_TOKEN}"),
                                  "headers": {"Authorization": "Bearer ${HOOK_AUTH}"}, "timeout": 5}])
    bump(project)
    env = {"HOOK_TOKEN": "T0KEN", "HOOK_AUTH": "s3cret"}
    code, result = project.json("deploy", env=env)
    assert code == 0
    [post] = webhook.received
    assert post["path"] == "/services/T0KEN/secret-part?x=1"
    assert post["headers"]["Authorization"] == "Bearer s3cret"
    assert post["headers"]["Content-Type"] == "application/json"
    body = post["body"]
    assert body["event"] == "success" and body["ok"] is True and body["operation"] == "deploy"
    assert body["id"] == result["deploy_id"] and body["version"] == result["version"] == "0.1.0"
    assert body["previous_version"] == "0.1.0" and body["profile"] == "default"
    assert body["target"] == str(project.target)
    assert body["counts"] == {"added": 0, "changed": 1, "removed": 0, "unchanged": len(MANAGED) - 1}
    assert body["text"] == f"default: deployed 0.1.0 to {project.target} on {body['host']} ({result['deploy_id']})"
    assert result["notifications"] == [{"type": "webhook", "to": webhook.base, "event": "success", "ok": True,
                                        "problem": None}]
    ok(project.run("deploy", env=env))  # nothing to deploy: nothing to say
    assert len(webhook.received) == 1


def test_failure_and_rollback_are_sent_only_to_who_wants_them(project: Project, webhook: Webhook) -> None:
    project.write_config(notify=[{"type": "webhook", "url": f"{webhook.base}/ops", "on": ["failure", "rollback"]}])
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    assert webhook.received == []
    project.write_config(verify=[{"type": "command", "name": "smoke", "run": "exit 3"}])
    bump(project, text="\n# again\n")
    proc = project.run("deploy")
    assert proc.returncode == 1
    [failure] = [r["body"] for r in webhook.received]
    assert failure["event"] == "failure" and failure["ok"] is False and failure["failed_step"] == "verify"
    assert failure["error"].startswith("deploy failed at verify: verify smoke: `exit 3` exited 3")
    assert failure["text"].startswith("default: deploy failed at verify")
    project.write_config(verify=[])
    code, result = project.json("rollback")
    assert code == 0
    rollback = webhook.received[-1]["body"]
    assert rollback["event"] == "rollback" and rollback["operation"] == "rollback"
    assert rollback["version"] == "0.1.0" and rollback["restored_from"] == result["restored_from"]


def test_a_failing_webhook_is_a_note_and_never_an_exit_code(project: Project, webhook: Webhook) -> None:
    webhook.status = 500
    closed = Webhook()
    closed.close()  # nothing listens on its port any more
    project.write_config(notify=[{"type": "webhook", "url": f"{webhook.base}/services/T0KEN"},
                                 {"type": "webhook", "url": f"{closed.base}/services/T0KEN"}])
    proc = ok(project.run("deploy"))
    assert (f"note: notify webhook {webhook.base}: HTTP 500 Internal Server Error: boom "
            "(only the notification failed)") in proc.stdout
    assert f"note: notify webhook {closed.base}: [Errno 111] Connection refused" in proc.stdout
    assert "T0KEN" not in proc.stdout + proc.stderr  # the path (where tokens live) is never printed
    assert proc.stdout.rstrip().endswith("Success.")
    for rel in MANAGED:
        assert (project.target / rel).read_bytes() == (project.source / rel).read_bytes()
    project.write_config(verify=[{"type": "command", "run": "exit 1"}])
    bump(project)
    failed = project.run("deploy", "--verbose")
    assert failed.returncode == 1  # the deploy's own failure, unchanged by the notification's
    assert f"note: notify webhook {webhook.base}: HTTP 500" in failed.stderr


def test_a_hanging_webhook_costs_at_most_its_timeout(project: Project, webhook: Webhook) -> None:
    webhook.delay = 120
    project.write_config(notify=[{"type": "webhook", "url": webhook.base, "timeout": 1}])
    started = time.monotonic()
    code, result = project.json("deploy")
    assert code == 0 and result["changed"]
    assert time.monotonic() - started < 20
    assert len(webhook.received) == 1
    assert result["notifications"][0]["problem"] == "no answer within 1s"


def test_a_command_gets_the_notification_and_its_failure_is_a_note(project: Project, tmp_path: Path) -> None:
    out = tmp_path / "notified.json"
    save = (f"{sys.executable} -c \"import os, sys; open(sys.argv[1], 'w').write(os.environ['MCP_DEPLOY_EVENT'] + "
            f"chr(10) + os.environ['MCP_DEPLOY_NOTIFICATION'])\" {out}")
    project.write_config(notify=[{"type": "command", "run": save}, {"type": "command", "run": "echo nope; exit 2"}])
    code, result = project.json("deploy")
    assert code == 0
    event, body = out.read_text().split("\n", 1)
    assert event == "success" and json.loads(body)["id"] == result["deploy_id"]
    assert [n["ok"] for n in result["notifications"]] == [True, False]
    assert "notify command `echo nope; exit 2`: `echo nope; exit 2` exited 2: nope (only the notification failed)" \
        in result["notes"]


@pytest.mark.parametrize("entry, message", [
    ({"type": "webhook", "url": "${NO_SUCH_HOOK_URL}"},
     "profiles.default.notify[0].url: environment variable ${NO_SUCH_HOOK_URL} is not set"),
    ({"type": "webhook", "url": "file:///etc/passwd"},
     "profiles.default.notify[0].url: expected an http:// or https:// URL, not one starting 'file:'"),
    ({"type": "webhook", "url": "http://x", "on": ["deployed"]}, "profiles.default.notify[0].on[0]: must be one of"),
    ({"type": "command"}, "profiles.default.notify[0]: 'run' is required here"),
])
def test_a_bad_notify_entry_is_a_config_error(project: Project, entry: dict[str, Any], message: str) -> None:
    project.write_config(notify=[entry])
    proc = project.run("deploy")
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not project.target.exists()
