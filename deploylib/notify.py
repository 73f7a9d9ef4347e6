"""Notifications (deploy.yaml `notify:`): tell a webhook or a command that an operation succeeded, failed or
was rolled back.

They are sent once the outcome is final and can never change it: a refused
connection, an HTTP error or a timeout becomes a note, never an exit code.
Webhooks get a JSON POST from the standard library (`urllib.request`) inside a
hard deadline that also covers name resolution (which socket timeouts do not),
so an unreachable endpoint costs at most its `timeout`.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from . import __version__, report, shell, signals
from .profile import Notifier
from .context import Operation

if TYPE_CHECKING:
    import urllib.error

Result = dict[str, Any]
READ_LIMIT = 4096  # bytes of an answer read (and quoted in a problem); the body itself is never needed


def body(op: Operation, event: str, record: dict[str, Any], previous_version: str | None) -> dict[str, Any]:
    """The JSON a webhook receives (and a command finds in $MCP_DEPLOY_NOTIFICATION), from the history record."""
    facts = {key: record.get(key) for key in ("operation", "id", "ok", "profile", "version", "restored_from",
                                              "failed_step", "error", "counts", "finished")}
    facts.update(event=event, target=str(op.target), host=socket.gethostname(), previous_version=previous_version)
    return {"event": event, "text": report.notification_text(facts), **facts}


def send(op: Operation, event: str, message: dict[str, Any], env: dict[str, str], cwd: Path) -> list[Result]:
    """Send `message` to every notifier that wants `event`; problems become notes. A signal stops the sending."""
    return deliver(op.profile.notify, event, message, env, cwd, op.emit, op.note)


def deliver(notifiers: Sequence[Notifier], event: str, message: dict[str, Any], env: dict[str, str], cwd: Path,
            emit: Callable[[str, Any], None], note: Callable[[str], None]) -> list[Result]:
    """send() for whoever holds the notifiers: an operation on one target, or a fleet's controller."""
    results: list[Result] = []
    stopped: list[str] = []
    with signals.stopping(stopped):
        for notifier in notifiers:
            if event not in notifier.on:
                continue
            if notifier.type == "webhook":
                problem = post(notifier, message)
            else:
                problem = _command(notifier, message, env, cwd)
            results.append({"type": notifier.type, "to": where(notifier), "event": event, "ok": problem is None,
                            "problem": problem})
            emit("notify", results[-1])
            if problem:
                note(report.notify_note(results[-1]))
    if stopped:
        note(report.notify_stopped(stopped[0]))
    return results


def where(notifier: Notifier) -> str:
    """A webhook shown without its path and query (they often carry the token), or the command."""
    if notifier.type != "webhook":
        return f"`{notifier.run}`"
    assert notifier.url is not None
    parts = urllib.parse.urlsplit(notifier.url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


def post(notifier: Notifier, message: dict[str, Any]) -> str | None:
    """POST the message as JSON; the problem, or None when the endpoint answered 2xx within the timeout."""
    import urllib.error  # http.client, ssl and email load only when a webhook is sent
    import urllib.request

    assert notifier.url is not None
    request = urllib.request.Request(
        notifier.url, data=json.dumps(message).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"mcp-deploy/{__version__}", **notifier.headers})
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            with urllib.request.urlopen(request, timeout=notifier.timeout) as answer:
                answer.read(READ_LIMIT)
            outcome.append(None)
        except urllib.error.HTTPError as exc:
            outcome.append(report.http_problem(exc.code, exc.reason, _answer(exc)))
        except urllib.error.URLError as exc:
            outcome.append(str(exc.reason))
        except Exception as exc:  # a broken connection, a malformed answer: a note, whatever it is
            outcome.append(str(exc) or type(exc).__name__)

    worker = threading.Thread(target=attempt, name="mcp-deploy-notify", daemon=True)  # daemon: a hung
    worker.start()  # resolver must not keep the process alive once the deploy is done
    worker.join(notifier.timeout)
    return outcome[0] if outcome else report.no_answer(notifier.timeout)


def _answer(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read(READ_LIMIT)
    except Exception:  # the error page itself broke off: the status line is enough
        return b""


def _command(notifier: Notifier, message: dict[str, Any], env: dict[str, str], cwd: Path) -> str | None:
    assert notifier.run is not None
    done = shell.run(notifier.run, cwd, notifier.timeout,
                     {**env, "MCP_DEPLOY_EVENT": message["event"], "MCP_DEPLOY_NOTIFICATION": json.dumps(message)})
    return None if done.ok else done.describe()
