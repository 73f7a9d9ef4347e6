"""The host side of a fleet operation: `python3 agent.pyz` over ssh, one per host and operation.

It speaks `wire` on stdin/stdout with its controller and runs the ordinary pipeline (`pipeline.run`)
in its main thread, holding it at two checkpoints:

    prepared  validated, nothing in production changed yet: wait for "commit" (or "abort")
    verified  committed and verified, but provisional: wait for "confirm" (or "rollback")

Anything but the awaited word undoes the operation through the pipeline's own undo (and the journal, if
this process is killed): "abort"/"rollback", the controller hanging up (end of input), or silence
longer than `confirm_timeout` (the network cut: the controller pings every waiting host meanwhile).
That is deploy-rs's magic rollback, for every host of the fleet. Stdlib only.
"""

from __future__ import annotations

import os
import queue
import socket
import sys
import threading
from typing import IO, Any

from .. import pipeline
from ..context import Operation
from ..errors import DeployError, FleetAborted, LockHeld
from ..ids import new_id
from ..globs import PatternSet
from ..journal import Journal, Record, State
from ..layout import hash_cache_path, is_op_id, release_path, stage_path
from ..lock import DeployLock, current_holder
from ..manifest import Entry, HashCache, load_release, manifest_problem
from ..profile import Profile
from ..sources import SnapshotSource
from ..steps.preflight import survey
from ..store import Store, store_for
from ..version import read_version
from . import wire
from .pushed import PushedSource, write_object

FLEET_LOCK = "fleet-lock"  # in the host's state dir: taken first, in the controller's one global host order
EOF_ = object()  # the controller hung up


class Agent:
    def __init__(self, inp: IO[bytes], out: IO[bytes]) -> None:
        self.out = out
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.send_lock = threading.Lock()
        self.fleet_lock: DeployLock | None = None
        self.confirm_timeout = 30.0
        threading.Thread(target=self._read, args=(inp,), daemon=True).start()

    # -- the wire --

    def _read(self, inp: IO[bytes]) -> None:
        try:
            while (got := wire.recv(inp)) is not None:
                self.inbox.put(got)
        except (OSError, wire.ProtocolError):
            pass
        self.inbox.put(EOF_)

    def send(self, msg: dict[str, Any], payload: bytes | None = None) -> None:
        with self.send_lock:
            try:
                wire.send(self.out, msg, payload)
            except (BrokenPipeError, ValueError):  # the controller is gone: what we say is lost, not fatal
                pass

    def next(self, timeout: float | None) -> tuple[dict[str, Any], bytes | None]:
        """The next message other than a ping; FleetAborted on end of input or `timeout` of silence."""
        while True:
            try:
                got = self.inbox.get(timeout=timeout)
            except queue.Empty:
                raise FleetAborted(f"no word from the controller for {timeout:g}s (connection lost?)") from None
            if got is EOF_:
                self.inbox.put(EOF_)  # every later wait sees it too
                raise FleetAborted("the controller hung up")
            if got[0]["op"] != "ping":
                return got

    # -- the session --

    def serve(self) -> int:
        self.send({"op": "hello", "protocol": wire.PROTOCOL, "python": sys.version.split()[0],
                   "host": socket.gethostname(), "pid": os.getpid()})
        while True:
            try:
                msg, payload = self.next(None)
            except FleetAborted:
                return 0
            kind = msg["op"]
            try:
                if kind == "bye":
                    return 0
                if kind == "lock":
                    self.lock(msg)
                elif kind == "prepare":
                    self.prepare(msg)
                elif kind == "status":
                    self.status(msg)
                else:
                    self.send({"op": "error", "error": f"unexpected message {kind!r}"})
            except DeployError as exc:
                self.send({"op": "failed", **exc.to_json()})
            except Exception as exc:  # a bug: tell the controller, keep the traceback on stderr
                import traceback

                traceback.print_exc()
                self.send({"op": "failed", "ok": False, "error": f"internal error on the host: {exc!r}",
                           "exit_code": 70, "step": None, "error_type": type(exc).__name__})

    def lock(self, msg: dict[str, Any]) -> None:
        """The host's fleet lock, without waiting: a second fleet operation fails fast naming its holder."""
        prof = _profile(msg)
        lock = DeployLock(prof.state_dir / FLEET_LOCK, msg["holder"], private_dir=True)
        try:
            lock.acquire()
        except LockHeld as exc:
            self.send({"op": "failed", **exc.to_json()})
            return
        self.fleet_lock = lock
        self.send({"op": "locked"})
        # after the answer: the controller takes the next host's lock meanwhile (hashing a 10,000-file
        # record takes a while, and the locks are taken one host after the other)
        self.send({"op": "base", "base": _live_digest(prof)})

    def prepare(self, msg: dict[str, Any]) -> None:
        """Run the whole operation; the checkpoints wait for the controller's word."""
        prof = _profile(msg)
        self.confirm_timeout = _confirm_timeout(msg.get("confirm_timeout"))
        op_id = msg["op_id"]
        if msg["operation"] not in ("deploy", "rollback") or not is_op_id(op_id) or op_id[0] != msg["operation"][0]:
            # it names the stage beside production and the release record: "../x" would put them elsewhere
            raise FleetAborted(f"the controller sent {msg['operation']!r} with the operation id {str(op_id)[:80]!r}, "
                               "which MCP Deploy never makes; nothing was changed (controller and host versions "
                               "differ?)")
        store = store_for(prof)
        source: PushedSource | SnapshotSource
        if msg["operation"] == "deploy":
            manifest = self.manifest(prof, msg)
            sizes = {e.sha256: e.size for e in manifest.values() if e.link is None}
            source = PushedSource(manifest, msg["release"], store, lambda shas: self.receive_objects(store, shas, sizes))
        else:
            source = SnapshotSource(store, msg.get("to"))
        record = Record(op_id=op_id, operation=source.operation, state=State.IDLE.value, target=str(prof.target),
                        stage=str(stage_path(prof.target, op_id)))
        op = Operation(profile=prof, source=source, record=record, journal=Journal(prof.state_dir), store=store,
                       cache=HashCache(hash_cache_path(prof.state_dir), [prof.target]),
                       emit=self.progress, checkpoint=self.checkpoint,
                       adopt=PatternSet(tuple(msg.get("adopt") or ())), overwrite_drift=bool(msg.get("overwrite_drift")))
        out = pipeline.run(op)
        info = out.staged.version_info if out.staged else {}
        prev = (out.survey.previous if out.survey else None) or {}
        self.send({"op": "done", "changed": out.changed, "deploy_id": op_id if out.changed else None,
                   "version": info.get("version") or prev.get("version"),
                   "release": info.get("release") or prev.get("release"),
                   "previous_version": prev.get("version"), "previous_release": prev.get("release"),
                   "plan": out.survey.plan.summary() if out.survey else None, "notes": op.notes,
                   "timings": out.timings, "hooks": out.hooks})

    def manifest(self, prof: Profile, msg: dict[str, Any]) -> dict[str, Entry]:
        """The release's manifest: sent whole, or as changes against the release this host has live."""
        if "manifest" in msg:
            found = _entries(msg["manifest"])
        else:
            base = _live_manifest(prof)
            try:
                found = wire.apply_delta(base, msg["delta"]) if base is not None else {}
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise FleetAborted(f"the controller sent a manifest this host refuses ({str(exc)[:120]}); "
                                   "nothing was changed") from None
            if base is None or wire.manifest_digest(base) != msg["base"] or wire.manifest_digest(found) != msg["digest"]:
                self.send({"op": "need-manifest"})
                reply, _ = self.next(self.confirm_timeout)
                if reply["op"] != "manifest":
                    raise FleetAborted(f"expected the manifest from the controller, got {reply['op']!r}")
                found = _entries(reply["manifest"])
        if wire.manifest_digest(found) != msg["digest"]:
            raise FleetAborted("the manifest arrived damaged (digest mismatch); nothing was changed")
        return _held(found)  # a delta's result too

    def progress(self, kind: str, data: dict[str, Any]) -> None:
        if kind in ("step", "undo", "note"):  # never per file: a 10,000-file deploy would flood the link
            self.send({"op": "progress", "event": kind, **{k: v for k, v in data.items() if k != "plan"}})

    def receive_objects(self, store: Store, shas: list[str], sizes: dict[str, int]) -> None:
        """Ask for what the store lacks and write each object as it comes (re-hashed)."""
        self.send({"op": "need", "objects": shas})
        while True:
            msg, payload = self.next(self.confirm_timeout)
            if msg["op"] == "objects-done":
                return
            if msg["op"] == "abort":
                raise FleetAborted(msg.get("reason") or "aborted by the controller")
            if msg["op"] != "object" or payload is None:
                raise FleetAborted(f"expected objects from the controller, got {msg['op']!r}")
            if msg.get("sha") not in sizes:
                raise FleetAborted("the controller sent an object the release does not name; nothing was changed")
            write_object(store, msg["sha"], payload, bool(msg.get("z")), sizes[msg["sha"]])

    def checkpoint(self, point: str, data: dict[str, Any]) -> None:
        awaited, refusal = {"prepared": ("commit", "abort"), "verified": ("confirm", "rollback")}[point]
        self.send({"op": point, **data})
        msg, _ = self.next(self.confirm_timeout)
        if msg["op"] == awaited:
            return
        if msg["op"] == refusal:
            raise FleetAborted(msg.get("reason") or f"{refusal} requested by the controller")
        raise FleetAborted(f"expected {awaited!r} from the controller, got {msg['op']!r}")

    def status(self, msg: dict[str, Any]) -> None:
        """What this host has, what a deploy of the controller's manifest would change, what drifted."""
        prof = _profile(msg)
        store = store_for(prof)
        manifest = _entries(msg["manifest"])
        source = PushedSource(manifest, msg["release"], store, None)
        op_id = new_id("d")
        record = Record(op_id=op_id, operation="deploy", state=State.IDLE.value, target=str(prof.target),
                        stage=str(stage_path(prof.target, op_id)))
        op = Operation(profile=prof, source=source, record=record, journal=Journal(prof.state_dir), store=store,
                       cache=HashCache(hash_cache_path(prof.state_dir), [prof.target]))
        found = survey(op)
        op.cache.save()
        prev, problem = read_version(prof.target, prof.version_file)
        holder = current_holder(prof) or _fleet_holder(prof)
        self.send({"op": "status", "deployed": prev is not None, "version": (prev or {}).get("version"),
                   "release": (prev or {}).get("release"), "deploy_id": (prev or {}).get("deploy_id"),
                   "deployed_at": (prev or {}).get("deployed"), "git_commit": (prev or {}).get("git_commit"),
                   "pending": found.plan.summary(), "drift": found.plan.drift,
                   "lock": holder.__dict__ if holder else None, "recovery_pending": op.journal.exists(),
                   "notes": op.notes + ([problem] if problem else [])})


def _profile(msg: dict[str, Any]) -> Profile:
    """The profile the controller sent, refused (nothing done) unless it is one its config check passes."""
    try:
        return wire.profile_from_json(msg["profile"])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise FleetAborted(f"the controller sent a profile this host refuses ({str(exc)[:120]}); "
                           "nothing was changed") from None


def _entries(data: Any) -> dict[str, Entry]:
    """A manifest from the controller, held to what a scan makes: every path inside the target, no link
    out of it, nothing inside another file or link (the stage would write through it)."""
    try:
        found = {p: Entry.from_json(e) for p, e in data.items()}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise FleetAborted(f"the controller sent a manifest this host refuses ({str(exc)[:120]}); "
                           "nothing was changed") from None
    return _held(found)


def _held(found: dict[str, Entry]) -> dict[str, Entry]:
    problem = manifest_problem(found)
    if problem:
        raise FleetAborted(f"the controller sent a manifest this host refuses ({problem}); nothing was changed")
    return found


def _live_manifest(prof: Profile) -> dict[str, Entry] | None:
    """The files of the release in production, from its record (None when there is none, or it is unreadable)."""
    try:
        version, _ = read_version(prof.target, prof.version_file)
        deploy_id = (version or {}).get("deploy_id")
        if not is_op_id(deploy_id):
            return None
        release = load_release(release_path(prof.state_dir, str(deploy_id)))
    except DeployError:
        return None
    return release.files if release is not None else None


def _live_digest(prof: Profile) -> str | None:
    found = _live_manifest(prof)
    return wire.manifest_digest(found) if found is not None else None


def _fleet_holder(prof: Any) -> Any:
    from ..lock import _holder_of

    return _holder_of(prof.state_dir / FLEET_LOCK)


def _confirm_timeout(value: object) -> float:
    """How long a committed host waits for the controller's word: a finite number of seconds, 1 s to a day."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 86400:
        raise FleetAborted(f"the controller sent confirm_timeout {str(value)[:40]!r}, not 1 to 86400 seconds; "
                           "nothing was changed (controller and host versions differ?)")
    return float(value)


def main() -> int:
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must never corrupt the protocol
    return Agent(sys.stdin.buffer, out).serve()


if __name__ == "__main__":
    sys.exit(main())

