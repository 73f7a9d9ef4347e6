"""The controller of a fleet operation: two phases over every host, all or nothing.

    connect (parallel) -> lock (one global order: sorted host names; fail fast naming the holder)
    phase 1, parallel: prepare = lock, recover, preflight, push the objects a host lacks, backup, stage,
                       validate; every host then waits at "prepared"
    phase 2, batch by batch, canary first: commit + verify; each verified host waits at "verified"
    then "confirm" to all of them; or, past max_failures, on_host_failure: roll back every provisional host
    (rollback_fleet) or keep the verified ones and stop (isolate)

A host is provisional until confirmed, and undoes its commit by itself if its controller hangs up or
falls silent (deploy-rs's magic rollback), so a controller that dies never leaves a half-committed host.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import notify, report
from ..context import EventSink, Operation
from ..errors import DeployError, PreflightFailed, ValidationFailed
from ..fsutil import read_regular
from ..history import append
from ..ids import new_id, utc_now
from ..journal import Journal, Record, State
from ..layout import hash_cache_path, stage_path
from ..lock import DeployLock
from ..manifest import Entry, HashCache
from ..profile import clip
from ..results import Result
from ..secrets import scan_file
from ..sources import TreeSource
from ..store import Store
from ..validators import Directory, validate
from . import wire
from .model import Fleet
from .transport import HostUnreachable, Lost, Session

# Where each host ended (the exit code follows from them).
NEW, OLD, UNKNOWN = "new", "old", "unknown"
EXIT_MIXED = 8  # some hosts on the new release, some on the old one
COMPRESS_MIN = 256  # smaller objects go as they are
PUSH_CACHE = 64 << 20  # compressed objects kept for the next host


@dataclass
class HostOutcome:
    host: str
    state: str = OLD  # new | old | unknown
    phase: str = "connect"  # how far it got: connect, lock, prepare, prepared, commit, verified, confirmed
    changed: bool = False
    error: str | None = None
    exit_code: int | None = None
    version: str | None = None
    release: str | None = None
    previous_version: str | None = None
    plan: dict[str, Any] | None = None
    bytes_sent: int = 0
    objects_sent: int = 0
    object_bytes: int = 0  # uncompressed size of the objects sent
    notes: list[str] = field(default_factory=list)


@dataclass
class FleetResult(Result):
    ok: bool
    operation: str
    profile: str
    fleet_id: str
    dry_run: bool
    outcome: str  # new | old | mixed | unknown
    exit_code: int
    message: str
    version: str | None = None
    hosts: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)


class FleetFailed(DeployError):
    """A fleet operation did not bring every host to the new release; `result` says where each ended."""

    def __init__(self, message: str, result: FleetResult, kind: str = "FleetFailed") -> None:
        super().__init__(message)
        self.exit_code = result.exit_code
        self.result = result
        self._kind = kind

    @property
    def kind(self) -> str:
        return self._kind

    def to_json(self) -> dict[str, object]:
        return {**self.result.to_json(), **super().to_json()}


# --- the release, once, on the controller --------------------------------------------------------

@dataclass
class Release:
    manifest: dict[str, Entry]
    info: dict[str, Any]  # version, git_commit, git_dirty, deployed_from, fleet
    notes: list[str]

    def by_sha(self) -> dict[str, Entry]:
        return {e.sha256: e for e in self.manifest.values() if e.link is None}


def _local_op(fleet: Fleet, source: TreeSource, op_id: str, emit: EventSink) -> Operation:
    prof = fleet.local
    record = Record(op_id=op_id, operation="deploy", state=State.IDLE.value, target=str(prof.target),
                    stage=str(stage_path(prof.target, op_id)))
    return Operation(profile=prof, source=source, record=record, journal=Journal(prof.state_dir),
                     store=Store(prof.backup_dir), cache=HashCache(hash_cache_path(prof.state_dir), [prof.source]),
                     emit=emit)


def scan_release(fleet: Fleet, fleet_id: str, emit: EventSink, check: bool = True) -> Release:
    """The source's managed files, checked once for every host: secrets by name and content, the
    release's own version file, and the file validators (json, yaml, json_schema, python_syntax)."""
    prof = fleet.local
    source = TreeSource(prof.source)
    op = _local_op(fleet, source, fleet_id, emit)
    scan = source.desired(op, None)
    prof.state_dir.mkdir(parents=True, exist_ok=True)
    op.cache.save()
    if scan.withheld:
        op.note(f"withheld {len(scan.withheld)} secret-looking file(s) from the sync set: "
                f"{', '.join(scan.withheld[:5])}")
    if not check:
        return Release(scan.entries, _release_info(source, fleet_id), op.notes)
    if prof.version_file in scan.entries:
        raise PreflightFailed(f"{prof.source / prof.version_file}: the release has a file of the name MCP Deploy "
                              f"gives its version file (version_file: {prof.version_file}); exclude or rename it")
    allowed = prof.rules.secrets_allowed
    findings = [f for e in scan.entries.values() if e.link is None and not allowed.matches(e.path)
                for f in scan_file(prof.source / e.path, e.path)]
    if findings:
        raise PreflightFailed(f"{prof.source}/{findings[0].describe()}; remove it, or list the file under "
                              "unsafe_allow_secrets if it must ship (no host was touched)")
    if fleet.file_validators:
        env = {"MCP_DEPLOY_ID": fleet_id, "MCP_DEPLOY_OPERATION": "deploy", "MCP_DEPLOY_SOURCE": str(prof.source)}
        try:
            validate(fleet.file_validators, Directory(prof.source), sorted(scan.entries), env, emit)
        except ValidationFailed as exc:
            raise ValidationFailed(f"{exc.message} (checked on the controller; no host was touched)",
                                   detail=exc.detail) from None
    return Release(scan.entries, _release_info(source, fleet_id), op.notes)


def _release_info(source: TreeSource, fleet_id: str) -> dict[str, Any]:
    commit, dirty = source.git()
    return {"version": source.next_version(), "git_commit": commit, "git_dirty": dirty,
            "deployed_from": f"{socket.gethostname()}:{source.root}", "fleet": fleet_id}


manifest_json, manifest_digest = wire.manifest_json, wire.manifest_digest
KEEP_MANIFESTS = 8  # manifests remembered by the controller, to send the next deploy as changes


class Manifests:
    """The manifests this controller sent, by digest: a host that reports the one it has live gets only
    the changes against it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def remember(self, manifest: dict[str, Entry]) -> str:
        digest = manifest_digest(manifest)
        path = self.root / f"{digest}.json"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmp.write_text(json.dumps(manifest_json(manifest), separators=(",", ":")))
            os.replace(tmp, path)
            for old in sorted(self.root.glob("*.json"), key=lambda p: p.stat().st_mtime)[:-KEEP_MANIFESTS]:
                old.unlink(missing_ok=True)
        return digest

    def get(self, digest: str | None) -> dict[str, Entry] | None:
        if not digest or not re_hex(digest):
            return None
        try:
            data = json.loads((self.root / f"{digest}.json").read_text())
            found = {p: Entry.from_json(e) for p, e in data.items()}
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return found if manifest_digest(found) == digest else None


def re_hex(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


# --- the run ---------------------------------------------------------------------------------------

class Run:
    def __init__(self, fleet: Fleet, operation: str, emit: EventSink, to: str | None = None,
                 adopt: tuple[str, ...] = (), overwrite_drift: bool = False) -> None:
        self.fleet = fleet
        self.adopt, self.overwrite_drift = adopt, overwrite_drift
        self.expected_digest: str | None = None
        self.operation = operation
        self.emit = emit
        self.to = to
        self.fleet_id = new_id("d" if operation == "deploy" else "r")
        self.names = sorted(h.name for h in fleet.hosts)  # the one global order
        self.out = {name: HostOutcome(name) for name in self.names}
        self.sessions: dict[str, Session] = {}
        self.release: Release | None = None
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        self.started = time.time()
        self._stop_pinging = threading.Event()
        self._pushed: dict[str, tuple[bytes, bool]] = {}
        self._pushed_bytes = 0
        self._push_lock = threading.Lock()
        self.bases: dict[str, str | None] = {}  # digest of the manifest each host has live
        self.manifests = Manifests(fleet.local.state_dir / "manifests")

    # -- helpers --

    def pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=max(1, min(self.fleet.rollout.parallel, len(self.names))))

    def each(self, names: list[str], work: Callable[[str], None]) -> None:
        with self.pool() as pool:
            for future in [pool.submit(work, name) for name in names]:
                future.result()

    def say(self, host: str, kind: str, **data: Any) -> None:
        self.emit("fleet", {"host": host, "kind": kind, **data})

    def timed(self, name: str, started: float) -> None:
        self.timings[name] = round(time.monotonic() - started, 4)

    def _ping(self) -> None:
        """Every waiting host hears from its controller well within its confirm_timeout."""
        interval = max(0.2, self.fleet.rollout.confirm_timeout / 5)
        while not self._stop_pinging.wait(interval):
            for session in list(self.sessions.values()):
                session.try_send({"op": "ping"})

    # -- connect and lock --

    def connect(self) -> None:
        started = time.monotonic()
        failures: list[HostUnreachable] = []

        def one(name: str) -> None:
            session = Session(self.fleet, self.fleet.host(name))
            try:
                session.start()
            except HostUnreachable as exc:
                self.out[name].error, self.out[name].exit_code = exc.message, exc.exit_code
                failures.append(exc)
                return
            self.sessions[name] = session
            self.out[name].phase = "lock"
            self.say(name, "connected", python=session.hello.get("python"))

        self.each(self.names, one)
        self.timed("connect", started)
        if failures:
            first = min(failures, key=lambda e: e.message)
            raise _Stop(first.message, first.exit_code, type(first).__name__)
        threading.Thread(target=self._ping, daemon=True).start()

    def lock(self) -> None:
        """Host by host in the one global order, without waiting: two fleet operations cannot each hold
        part of the fleet; the second fails at the first host they share, naming the holder."""
        started = time.monotonic()
        holder = f"fleet {self.operation} {self.fleet_id} from {socket.gethostname()} pid {os.getpid()}"
        for name in self.names:
            session = self.sessions[name]
            session.send({"op": "lock", "profile": wire.profile_to_json(self.fleet.host(name).profile),
                          "holder": holder})
            msg, _ = session.get(timeout=60)
            if msg["op"] != "locked":
                self.out[name].error, self.out[name].exit_code = msg.get("error"), msg.get("exit_code", 3)
                raise _Stop(f"{name}: {msg.get('error')}", int(msg.get("exit_code") or 3), "LockHeld")
            self.out[name].phase = "prepare"
        self.timed("lock", started)

    # -- phase 1 --

    def prepare_all(self) -> list[str]:
        started = time.monotonic()
        self.each(self.names, self.prepare)
        self.timed("prepare", started)
        return [n for n in self.names if self.out[n].phase == "prepared"]

    def prepare(self, name: str) -> None:
        session, out = self.sessions[name], self.out[name]
        prof = self.fleet.host(name).profile
        msg: dict[str, Any] = {"op": "prepare", "operation": self.operation, "op_id": self.fleet_id,
                               "profile": wire.profile_to_json(prof),
                               "confirm_timeout": self.fleet.rollout.confirm_timeout,
                               "adopt": list(self.adopt), "overwrite_drift": self.overwrite_drift}
        try:
            base_msg, _ = session.get(timeout=120)  # what the host has live, sent right after "locked"
        except Lost as exc:
            out.error, out.exit_code = f"lost before prepare: {exc}", 1
            return
        self.bases[name] = base_msg.get("base") if base_msg["op"] == "base" else None
        if self.operation == "deploy":
            assert self.release is not None
            base = self.manifests.get(self.bases.get(name))
            msg.update(release=self.release.info, digest=manifest_digest(self.release.manifest))
            if base is not None:
                msg.update(base=self.bases[name], delta=wire.delta(base, self.release.manifest))
            else:
                msg.update(manifest=manifest_json(self.release.manifest))
        else:
            msg.update(to=self.to)
        try:
            session.send(msg)
            while True:
                reply, _ = session.get()
                kind = reply["op"]
                if kind == "need":
                    self.push(session, out, reply["objects"])
                elif kind == "need-manifest":  # the host's record did not match: the whole manifest then
                    assert self.release is not None
                    session.send({"op": "manifest", "manifest": manifest_json(self.release.manifest)})
                elif kind == "progress":
                    self.say(name, "progress", **{k: v for k, v in reply.items() if k != "op"})
                elif kind == "prepared":
                    out.phase, out.plan = "prepared", reply.get("plan")
                    out.version = _said(reply.get("version"))
                    self.say(name, "prepared", plan=out.plan)
                    return
                elif kind == "done":  # nothing to change on this host
                    self._done(out, reply)
                    return
                elif kind == "failed":
                    self._failed(out, reply)
                    return
        except Lost as exc:
            out.error, out.exit_code = f"lost during prepare: {exc}; it undoes what it did by itself", 1
            self.say(name, "lost", error=out.error)

    def push(self, session: Session, out: HostOutcome, shas: list[str]) -> None:
        """Send each object the host lacks, compressed unless that does not help."""
        assert self.release is not None
        by_sha = self.release.by_sha()
        for sha in shas:
            entry = by_sha.get(sha)
            if entry is None:
                continue  # not ours to send: the host then refuses its deploy
            data, z = self._object(entry)
            session.send({"op": "object", "sha": sha, "z": z}, data)
            out.objects_sent += 1
            out.object_bytes += entry.size
        session.send({"op": "objects-done"})
        out.bytes_sent = session.sent

    def _object(self, entry: Entry) -> tuple[bytes, bool]:
        with self._push_lock:
            hit = self._pushed.get(entry.sha256)
        if hit is not None:
            return hit
        assert self.release is not None
        try:  # never through a link swapped in since the scan, nor waiting on a FIFO: see `open_regular`
            raw = read_regular(self.fleet.source / entry.path)
        except OSError:
            raw = b""
        if hashlib.sha256(raw).hexdigest() != entry.sha256:
            raise _Stop(f"{self.fleet.source / entry.path}: changed while being deployed; rerun once edits "
                        "have settled", 1, "SourceChanged")
        packed = zlib.compress(raw, 1) if len(raw) >= COMPRESS_MIN else raw
        found = (packed, True) if len(packed) < len(raw) else (raw, False)
        with self._push_lock:
            if self._pushed_bytes + len(found[0]) <= PUSH_CACHE:
                self._pushed[entry.sha256] = found
                self._pushed_bytes += len(found[0])
        return found

    # -- phase 2 --

    def commit(self, name: str) -> None:
        session, out = self.sessions[name], self.out[name]
        try:
            session.send({"op": "commit"})
            out.phase = "commit"
            while True:
                reply, _ = session.get()
                if reply["op"] == "progress":
                    self.say(name, "progress", **{k: v for k, v in reply.items() if k != "op"})
                elif reply["op"] == "verified":
                    out.phase = "verified"
                    self.say(name, "verified")
                    return
                elif reply["op"] == "failed":
                    self._failed(out, reply)
                    return
        except Lost as exc:
            out.phase = "lost"
            out.error = (f"lost during commit: {exc}; a host never confirmed undoes its commit by itself within "
                         f"{self.fleet.rollout.confirm_timeout:g}s")
            out.exit_code = 1
            self.say(name, "lost", error=out.error)

    def confirm(self, name: str) -> None:
        session, out = self.sessions[name], self.out[name]
        try:
            session.send({"op": "confirm"})
            while True:
                reply, _ = session.get()
                if reply["op"] == "done":
                    self._done(out, reply)
                    return
                if reply["op"] == "failed":
                    self._failed(out, reply)
                    return
        except Lost as exc:
            out.state, out.error, out.exit_code = UNKNOWN, f"lost while confirming: {exc}; see `status`", 5

    def call_off(self, name: str, reason: str) -> None:
        """A prepared host is told to abort, a verified one to roll back: it undoes and says so."""
        session, out = self.sessions[name], self.out[name]
        word = "rollback" if out.phase == "verified" else "abort"
        try:
            session.send({"op": word, "reason": reason})
            while True:
                reply, _ = session.get()
                if reply["op"] in ("failed", "done"):
                    if reply["op"] == "done":
                        self._done(out, reply)
                    else:
                        out.state, out.phase = OLD, "rolled back" if word == "rollback" else "aborted"
                        out.error = out.error or _said(reply.get("error"))
                        if reply.get("exit_code") == 5:
                            out.state, out.exit_code = UNKNOWN, 5
                    self.say(name, out.phase)
                    return
        except Lost as exc:
            out.error = f"lost while {word}ing: {exc}; it undoes by itself within its confirm_timeout"
            out.state = OLD

    def _done(self, out: HostOutcome, reply: dict[str, Any]) -> None:
        out.state, out.phase, out.changed = NEW, "confirmed" if reply.get("changed") else "up to date", \
            bool(reply.get("changed"))
        out.version, out.release = _said(reply.get("version")), _said(reply.get("release"))
        out.previous_version, out.plan = _said(reply.get("previous_version")), reply.get("plan") or out.plan
        out.notes += [_said(n) or "" for n in reply.get("notes") or []]
        self.say(out.host, "done", changed=out.changed)

    def _failed(self, out: HostOutcome, reply: dict[str, Any]) -> None:
        out.state = UNKNOWN if reply.get("exit_code") == 5 else OLD
        out.error, out.exit_code = _said(reply.get("error")), reply.get("exit_code")
        out.phase = "failed"
        self.say(out.host, "failed", error=out.error)

    def failures(self) -> list[str]:
        return [n for n in self.names if self.out[n].error is not None]

    def close(self) -> None:
        self._stop_pinging.set()
        for name, session in self.sessions.items():
            session.close()
            self.out[name].bytes_sent = session.sent


class _Stop(Exception):
    """The run stops before phase 2 with nothing changed anywhere."""

    def __init__(self, message: str, exit_code: int, kind: str) -> None:
        super().__init__(message)
        self.message, self.exit_code, self.kind = message, exit_code, kind


def run(fleet: Fleet, operation: str = "deploy", *, to: str | None = None, adopt: tuple[str, ...] = (),
        overwrite_drift: bool = False, plan_digest: str | None = None,
        on_event: EventSink | None = None) -> FleetResult:
    """Deploy (or roll back) every host of the fleet, all or nothing; raise FleetFailed unless all are new.
    With plan_digest, only if every host's plan is still the one previewed (else exit 6, nothing changed)."""
    emit = on_event or (lambda kind, data: None)
    r = Run(fleet, operation, emit, to, adopt, overwrite_drift)
    r.expected_digest = plan_digest
    fleet.local.state_dir.mkdir(parents=True, exist_ok=True)
    ctl_lock = DeployLock(fleet.local.state_dir / "fleet-lock", f"fleet {operation} {r.fleet_id}", private_dir=True)
    ctl_lock.acquire()
    try:
        return _run(r)
    finally:
        ctl_lock.release()


def _run(r: Run) -> FleetResult:
    fleet = r.fleet
    started = time.monotonic()
    try:
        if r.operation == "deploy":
            r.release = scan_release(fleet, r.fleet_id, r.emit)
            r.notes += r.release.notes
            r.manifests.remember(r.release.manifest)
            r.timings["scan"] = round(time.monotonic() - started, 4)
        r.connect()
        r.lock()
        prepared = r.prepare_all()
        failed = r.failures()
        if r.expected_digest is not None and not failed:
            found = fleet_digest({n: (r.out[n].plan or {}).get("digest", "") for n in r.names})
            if found != r.expected_digest:
                raise _Stop(f"the fleet's plans changed since they were previewed (expected {clip(r.expected_digest, 64)}, "
                            f"now {found}); preview again (deploy --dry-run) and deploy the new digest", 6,
                            "PlanMismatch")
        if len(failed) > fleet.rollout.max_failures:
            reason = f"{failed[0]} failed during prepare: {r.out[failed[0]].error}"
            r.each(prepared, lambda n: r.call_off(n, f"fleet aborted: {reason}"))
            return _finish(r, cause=failed[0])
        policy_hit = False
        for batch in fleet.rollout.batches(prepared):
            phase = time.monotonic()
            r.each(batch, r.commit)
            r.timings[f"commit[{batch[0]}..]"] = round(time.monotonic() - phase, 4)
            failed = r.failures()
            if len(failed) > fleet.rollout.max_failures:
                policy_hit = True
                break
        waiting = [n for n in r.names if r.out[n].phase == "verified"]
        pending = [n for n in r.names if r.out[n].phase == "prepared"]
        if policy_hit and fleet.on_host_failure == "rollback_fleet":
            reason = f"fleet rolled back: {failed[0]} failed: {r.out[failed[0]].error}"
            r.each(waiting + pending, lambda n: r.call_off(n, reason))
            return _finish(r, cause=failed[0])
        if policy_hit:  # isolate: keep what verified, commit no more
            r.each(pending, lambda n: r.call_off(n, f"rollout stopped: {failed[0]} failed"))
        phase = time.monotonic()
        r.each(waiting, r.confirm)
        r.timed("confirm", phase)
        return _finish(r, cause=failed[0] if failed else None)
    except _Stop as stop:
        for name in list(r.sessions):
            if r.out[name].phase in ("prepared", "verified"):
                r.call_off(name, f"fleet aborted: {stop.message}")
        return _finish(r, cause=None, stop=stop)
    finally:
        r.close()
        r.timings["total"] = round(time.monotonic() - started, 4)


def _finish(r: Run, cause: str | None, stop: _Stop | None = None) -> FleetResult:
    states = {o.state for o in r.out.values()}
    outcome = states.pop() if len(states) == 1 else ("unknown" if UNKNOWN in states else "mixed")
    if outcome == NEW:
        code = 0
    elif outcome == UNKNOWN or UNKNOWN in states:
        code = 5
    elif outcome == "mixed":
        code = EXIT_MIXED
    elif stop is not None:
        code = stop.exit_code
    else:
        first = r.out[cause] if cause else None
        code = (first.exit_code or 1) if first and first.exit_code in (2, 3, 4, 6, 7, 9) else 1
    version = r.release.info.get("version") if r.release else None
    result = FleetResult(ok=code == 0, operation=r.operation, profile=r.fleet.name, fleet_id=r.fleet_id,
                         dry_run=False, outcome=outcome, exit_code=code, message="", version=version,
                         hosts=[r.out[n].__dict__ for n in r.names], timings=r.timings, notes=r.notes)
    result.message = fleet_message(result, stop.message if stop else (f"{cause}: {r.out[cause].error}"
                                                                         if cause else None))
    _record(r, result)
    _notify(r, result)
    if code != 0:
        raise FleetFailed(result.message, result, stop.kind if stop else "FleetFailed")
    return result


def _record(r: Run, result: FleetResult) -> None:
    rec = {"event": f"fleet-{r.operation}" if result.ok else "failure", "operation": f"fleet-{r.operation}",
           "id": r.fleet_id, "ok": result.ok, "profile": r.fleet.name, "started": report_time(r.started),
           "finished": utc_now(), "duration": r.timings.get("total"), "outcome": result.outcome,
           "exit_code": result.exit_code, "version": result.version, "steps": r.timings,
           "hosts": {o["host"]: {k: o[k] for k in ("state", "phase", "changed", "error", "version", "release",
                                                    "bytes_sent", "objects_sent")} for o in result.hosts}}
    try:
        append(r.fleet.local.log, rec)
    except OSError as exc:
        result.notes.append(f"{r.fleet.local.log}: fleet history not written ({exc.strerror})")


def _notify(r: Run, result: FleetResult) -> None:
    """The profile's `notify:`, sent by the controller once per fleet operation with every host's outcome (the
    hosts send none: one message says where the whole fleet ended). Like a local run's, only once the outcome
    is final, and whatever goes wrong with it is a note, never the exit code. A deploy that changed no host
    says nothing."""
    fleet = r.fleet
    if not fleet.local.notify or result.ok and not any(h["changed"] for h in result.hosts):
        return
    event = "failure" if not result.ok else ("rollback" if r.operation == "rollback" else "success")
    previous = {h.get("previous_version") for h in result.hosts}
    hosts = {h["host"]: {k: h.get(k) for k in ("state", "phase", "changed", "error", "version", "release")}
             for h in result.hosts}
    message = {"event": event, "text": f"{fleet.name}: {result.message[:1].lower()}{result.message[1:]}",
               "operation": f"fleet-{r.operation}", "id": r.fleet_id, "ok": result.ok, "profile": fleet.name,
               "version": result.version, "previous_version": previous.pop() if len(previous) == 1 else None,
               "outcome": result.outcome, "exit_code": result.exit_code,
               "error": None if result.ok else result.message, "finished": utc_now(),
               "host": socket.gethostname(), "hosts": hosts}
    env = {"MCP_DEPLOY_OPERATION": f"fleet-{r.operation}", "MCP_DEPLOY_ID": r.fleet_id,
           "MCP_DEPLOY_PROFILE": fleet.name, "MCP_DEPLOY_SOURCE": str(fleet.source),
           "MCP_DEPLOY_CONFIG_DIR": str(fleet.config_path.parent), "MCP_DEPLOY_VERSION": str(result.version or ""),
           "MCP_DEPLOY_OUTCOME": result.outcome}
    result.notifications = notify.deliver(fleet.local.notify, event, message, env, fleet.config_path.parent,
                                          r.emit, result.notes.append)


def report_time(t: float) -> str:
    from ..ids import iso

    return iso(t)


def fleet_message(r: FleetResult, why: str | None) -> str:
    counts = {s: sum(1 for h in r.hosts if h["state"] == s) for s in (NEW, OLD, UNKNOWN)}
    n = len(r.hosts)
    if r.outcome == NEW:
        changed = sum(1 for h in r.hosts if h["changed"])
        if not changed:
            return f"Nothing to {r.operation}: all {n} hosts already have {r.version or 'this release'}."
        return (f"{r.operation.capitalize()}ed {report.version_label(r.version)} to {changed} of {n} hosts "
                f"as {r.fleet_id} ({n - changed} already up to date).")
    because = f" ({why})" if why else ""
    if r.outcome == OLD:
        return f"fleet {r.operation} failed; every host ({n}) is on its old release{because}"
    if r.outcome == "mixed":
        return (f"fleet {r.operation} stopped with a mixed fleet: {counts[NEW]} host(s) new, {counts[OLD]} old"
                f"{because}")
    return (f"fleet {r.operation} failed and {counts[UNKNOWN]} host(s) could not confirm where they ended"
            f"{because}; run status")


def fleet_digest(plans: dict[str, str]) -> str:
    """One digest for the plans of every host: `deploy --plan` refuses if any host's plan differs."""
    return hashlib.sha256(json.dumps(sorted(plans.items())).encode()).hexdigest()[:16]


# --- read-only: status and the preview ------------------------------------------------------------

@dataclass
class FleetStatusResult(Result):
    profile: str
    summary: str
    dry_run: bool = False  # a deploy preview: the same table, what each host would get
    version: str | None = None  # what the source would deploy
    hosts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    message: str = ""
    plan_digest: str | None = None  # of every host's plan: deploy --plan takes it (None: a host unreachable)


def status(fleet: Fleet, *, dry_run: bool = False, on_event: EventSink | None = None) -> FleetStatusResult:
    """Every host's release, what a deploy would change there (its plan), drift and locks; changes nothing.
    An unreachable host is a row saying so, not a failure of the whole table."""
    emit = on_event or (lambda kind, data: None)
    r = Run(fleet, "deploy", emit)
    release = scan_release(fleet, r.fleet_id, emit, check=False)
    rows: dict[str, dict[str, Any]] = {}

    def one(name: str) -> None:
        host = fleet.host(name)
        session = Session(fleet, host)
        try:
            session.start()
            session.send({"op": "status", "profile": wire.profile_to_json(host.profile),
                          "manifest": manifest_json(release.manifest), "release": release.info})
            reply, _ = session.get(timeout=120)
            if reply["op"] == "status":
                rows[name] = {"host": name, **{k: v for k, v in reply.items() if k != "op"}}
            else:
                rows[name] = {"host": name, "error": _said(reply.get("error"))}
        except (HostUnreachable, Lost) as exc:
            rows[name] = {"host": name, "error": getattr(exc, "message", None) or str(exc)}
        finally:
            session.close()

    r.each(r.names, one)
    hosts = [rows[n] for n in r.names]
    reachable = [h for h in hosts if not h.get("error")]
    pending = sum(1 for h in reachable if report.touched(h["pending"]))
    releases = {h.get("release") for h in reachable}
    summary = (f"{len(hosts)} hosts: {len(hosts) - len(reachable)} unreachable, "
               f"{len(releases)} release(s) live, {pending} with changes pending"
               f"{', drift on ' + str(sum(1 for h in reachable if h['drift'])) if any(h['drift'] for h in reachable) else ''}.")
    digest = fleet_digest({h["host"]: h["pending"]["digest"] for h in reachable}) \
        if len(reachable) == len(hosts) else None
    result = FleetStatusResult(profile=fleet.name, summary=summary, dry_run=dry_run,
                               version=release.info.get("version"), hosts=hosts, notes=release.notes,
                               plan_digest=digest)
    result.message = summary
    lost = [h for h in hosts if h.get("error")]
    if dry_run and lost:  # a preview that leaves a host out is no plan: a CI check on it must not pass
        raise HostUnreachable(f"{lost[0]['host']}: {lost[0]['error']}; no plan for the fleet "
                              f"({len(lost)} of {len(hosts)} hosts unreachable), nothing was changed")
    return result


HOST_TEXT_LIMIT = 4000  # characters of a host's error or note: enough for a command's output tail


def _said(text: object) -> str | None:
    """Text a host sent, as the controller may print it: one line (a newline or escape from a host must
    not forge lines on this terminal or in a CI log), of bounded length; None stays None."""
    return None if text is None else clip(str(text), HOST_TEXT_LIMIT)
