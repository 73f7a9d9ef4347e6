"""One SSH session per host, through the system OpenSSH client.

OpenSSH rather than Fabric/Paramiko: it is what the user's ~/.ssh/config, ProxyJump, IdentityFile,
ssh-agent, ControlMaster and known_hosts already mean, with no second implementation of any of them
to disagree. Strict host keys and no prompts are forced (`-o` beats ssh_config); one long-lived
`ssh host python3 ...` process per host carries the whole operation as `wire` messages.
"""

from __future__ import annotations

import queue
import shlex
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..errors import DeployError
from . import payload, wire
from .model import Fleet, Host

EOF_ = object()


class HostUnreachable(DeployError):
    """ssh could not reach a host, or the host could not run the agent (no python3 >= 3.11)."""

    exit_code = 9


class Lost(Exception):
    """The session ended (or fell silent) in the middle of an exchange."""


def ssh_argv(fleet: Fleet, host: Host, remote: str) -> list[str]:
    alive = max(1, round(fleet.rollout.confirm_timeout / 6))  # a dead link is noticed within half the timeout
    argv = ["ssh", "-T", "-e", "none", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"ServerAliveInterval={alive}", "-o", "ServerAliveCountMax=3"]
    if fleet.ssh_config is not None:
        argv += ["-F", str(fleet.ssh_config)]
    for option in fleet.ssh_options:
        argv += ["-o", option]
    if host.port is not None:
        argv += ["-p", str(host.port)]
    return argv + ["--", host.destination, remote]


class Session:
    """A running agent on one host; messages in and out, every byte sent counted."""

    def __init__(self, fleet: Fleet, host: Host) -> None:
        self.fleet = fleet
        self.host = host
        self.name = host.name
        self.sent = 0  # bytes written to the host (protocol, agent, objects)
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.stderr: deque[str] = deque(maxlen=40)
        self._write = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.hello: dict[str, Any] = {}

    def start(self) -> None:
        """Connect, ship the agent if the host's cache lacks it, and wait for its hello."""
        data, sha = payload.agent()
        state_dir = str(self.host.profile.state_dir)
        remote = shlex.join(["python3", "-I", "-S", "-c", payload.BOOT, sha, payload.cache_dir(state_dir)])
        self.proc = subprocess.Popen(ssh_argv(self.fleet, self.host, remote), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        msg, _ = self._first()
        if msg["op"] == "need-agent":
            self._raw(f"{len(data)}\n".encode() + data)
            msg, _ = self._first()
        if msg["op"] == "error":
            self.close()
            fix = "; install Python >= 3.11 there" if msg.get("kind") == "python" else ""
            raise HostUnreachable(f"{self.name}: {msg.get('error')}{fix}")
        if msg["op"] != "hello":
            self.close()
            raise HostUnreachable(f"{self.name}: the agent did not start (said {msg['op']!r})")
        self.hello = msg

    def _first(self) -> tuple[dict[str, Any], bytes | None]:
        try:
            return self.get(timeout=60)
        except Lost:
            raise self._why_not_started() from None

    def _why_not_started(self) -> HostUnreachable:
        code = self.proc.wait(timeout=10) if self.proc else None
        time.sleep(0.05)  # the stderr reader drains what ssh said last
        said = " ".join(line.strip() for line in self.stderr if line.strip())[-600:]
        if code == 255 and "host key verification failed" in said.lower():
            if "HOST IDENTIFICATION HAS CHANGED" in said or "key for" in said and "has changed" in said:
                return HostUnreachable(f"{self.name}: refused: its host key is not the one known_hosts holds for "
                                       f"it (ssh: {said}); if the host was reinstalled, check its new key's "
                                       "fingerprint on the host and replace the old line")
            return HostUnreachable(f"{self.name}: refused: its host key is not in known_hosts, and a fleet never "
                                   f"trusts a key on first use (StrictHostKeyChecking=yes; ssh: {said}); check the "
                                   f"key's fingerprint on the host and add it to known_hosts")
        if code == 255:
            return HostUnreachable(f"{self.name}: ssh failed: {said or 'exit 255'}; check that "
                                   f"`ssh {self.host.destination}` works without a prompt (key, known_hosts)")
        if code == 127 or "not found" in said:
            return HostUnreachable(f"{self.name}: python3 not found on the host ({said or f'exit {code}'}); "
                                   "the agent needs Python >= 3.11 and nothing else: install it there")
        return HostUnreachable(f"{self.name}: the agent did not start (exit {code}): {said}")

    # -- the pipes --

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            while (got := wire.recv(self.proc.stdout)) is not None:
                self.inbox.put(got)
        except (OSError, wire.ProtocolError) as exc:
            self.stderr.append(f"protocol: {exc}")
        self.inbox.put(EOF_)

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.decode(errors="replace"))

    def _raw(self, data: bytes) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        with self._write:
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                raise Lost(f"{self.name}: connection lost") from None
            self.sent += len(data)

    def send(self, msg: dict[str, Any], data: bytes | None = None) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        with self._write:
            try:
                self.sent += wire.send(self.proc.stdin, msg, data)
            except (BrokenPipeError, ValueError, OSError):
                raise Lost(f"{self.name}: connection lost") from None

    def try_send(self, msg: dict[str, Any]) -> bool:
        try:
            self.send(msg)
            return True
        except Lost:
            return False

    def get(self, timeout: float | None = None) -> tuple[dict[str, Any], bytes | None]:
        """The next message; Lost when the session ended (or nothing came within timeout)."""
        try:
            got = self.inbox.get(timeout=timeout)
        except queue.Empty:
            raise Lost(f"{self.name}: no answer within {timeout:g}s") from None
        if got is EOF_:
            self.inbox.put(EOF_)
            raise Lost(f"{self.name}: connection lost ({self.last_words()})")
        problem = malformed(got[0])
        if problem:  # a host that says what no agent says is treated as lost, never trusted (nor a crash)
            raise Lost(f"{self.name}: sent a malformed {str(got[0]['op'])[:40]!r} message ({problem})")
        return got

    def last_words(self) -> str:
        said = " ".join(line.strip() for line in self.stderr if line.strip())
        return said[-300:] or "no message"

    def close(self, timeout: float = 10) -> None:
        if self.proc is None:
            return
        self.try_send({"op": "bye"})
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _plan_problem(plan: Any) -> str | None:
    if plan is None:
        return None
    counts = plan.get("counts") if isinstance(plan, dict) else None
    if not (isinstance(counts, dict) and all(isinstance(counts.get(k), int) for k in ("added", "changed", "removed"))
            and isinstance(plan.get("digest"), str)):
        return "its plan lacks counts or digest"
    return None


def malformed(msg: dict[str, Any]) -> str | None:
    """Why a host's message lacks what the controller reads from it, else None."""
    op = msg["op"]
    if "exit_code" in msg and not (msg["exit_code"] is None or type(msg["exit_code"]) is int):
        return "exit_code is not a number"
    if "error" in msg and not (msg["error"] is None or isinstance(msg["error"], str)):
        return "error is not text"
    if "notes" in msg and not (msg["notes"] is None or (isinstance(msg["notes"], list)
                                                        and all(isinstance(n, str) for n in msg["notes"]))):
        return "notes is not a list of text"
    if op == "need" and not (isinstance(msg.get("objects"), list) and all(isinstance(o, str) for o in msg["objects"])):
        return "objects is not a list of names"
    if op in ("prepared", "done"):
        return _plan_problem(msg.get("plan"))
    if op == "status":
        if not isinstance(msg.get("drift"), list):
            return "drift is not a list"
        return _plan_problem(msg.get("pending")) or (None if msg.get("pending") is not None else "pending is missing")
    return None


def known_path(path: Path | None) -> str:
    return str(path) if path else "~/.ssh/config"
