"""Hostile review, the fleet agent: what a host takes from its controller.

The agent (`python -m deploylib.fleet.agent`, what ssh runs on each host) is driven here over its own
pipes with hand-made messages: an operation id that is a path, a manifest whose keys and entries disagree,
a link leading out of the target, a file inside a link of the same release. Each one is refused before
anything is written: production, the user's files beside it and the host's state stay byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, Project, ok, tree
from deploylib.fleet import payload, wire
from deploylib.layout import target_lock_path
from deploylib.manifest import Entry

GOOD_ID = "d-20261124T061443.123456Z-3fa9c1"
DATA = b"pushed by a controller\n"


def host_profile(project: Project) -> dict[str, Any]:
    return {"name": "default", "target": str(project.target), "backup_dir": str(project.backups),
            "state_dir": str(project.state), "log": str(project.log), "include": ["**"], "exclude": [],
            "secrets_allowed": [], "setid_allowed": [], "validators": [], "verify": [],
            "retention": {"keep_last": 10, "keep_days": None}, "deployed_by": "test", "version_file": "VERSION",
            "hooks": {"before_commit": [], "after_commit": [], "after_rollback": [], "on_failure": []}}


def entry(path: str, data: bytes, link: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"path": path, "size": len(data), "mode": 0o777 if link else 0o644,
                           "sha256": hashlib.sha256(data).hexdigest()}
    if link is not None:
        out["link"] = link
    return out


def drive(project: Project, op_id: str, manifest: dict[str, dict[str, Any]], confirm_timeout: Any = 10,
          object_bytes: tuple[bytes, bool] = (DATA, False)) -> dict[str, Any]:
    """One fleet deploy of `manifest` through a real agent process, answering everything it asks as a
    controller would (objects, commit, confirm); the agent's last word ("done" or "failed")."""
    proc = subprocess.Popen([sys.executable, "-m", "deploylib.fleet.agent"], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert wire.recv(proc.stdout)[0]["op"] == "hello"  # type: ignore[index]
        prof = host_profile(project)
        wire.send(proc.stdin, {"op": "lock", "profile": prof, "holder": "hostile controller"})
        assert wire.recv(proc.stdout)[0]["op"] == "locked"  # type: ignore[index]
        assert wire.recv(proc.stdout)[0]["op"] == "base"  # type: ignore[index]
        digest = wire.manifest_digest({p: Entry(**e) for p, e in manifest.items()})
        wire.send(proc.stdin, {"op": "prepare", "operation": "deploy", "op_id": op_id, "profile": prof,
                               "confirm_timeout": confirm_timeout, "adopt": [], "overwrite_drift": False,
                               "release": {"version": "9.9.9"}, "digest": digest, "manifest": manifest})
        answers = {"prepared": {"op": "commit"}, "verified": {"op": "confirm"}}
        while True:
            got = wire.recv(proc.stdout)
            assert got is not None, proc.stderr.read() if proc.stderr else ""
            msg = got[0]
            if msg["op"] == "need":
                for sha in msg["objects"]:
                    wire.send(proc.stdin, {"op": "object", "sha": sha, "z": object_bytes[1]}, object_bytes[0])
                wire.send(proc.stdin, {"op": "objects-done"})
            elif msg["op"] in answers:
                wire.send(proc.stdin, answers[msg["op"]])
            elif msg["op"] in ("done", "failed"):
                wire.send(proc.stdin, {"op": "bye"})
                return msg
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def snapshot(project: Project) -> dict[str, Any]:
    lock = target_lock_path(project.target).name
    return {"around": {k: v for k, v in tree(project.root).items()
                       if not k.startswith(("state/", "backups/", "prod/" + lock, "xdg"))},
            "state": {k: v for k, v in tree(project.state).items() if k not in ("lock", "fleet-lock")}}


@pytest.mark.parametrize("op_id", ["../../victim", "../../victim/d-20261124T061443.123456Z-3fa9c1",
                                   "r-20261124T061443.123456Z-3fa9c1", "d-x/../../victim"])
def test_an_operation_id_that_is_not_one_is_refused_before_anything_is_written(project: Project,
                                                                               op_id: str) -> None:
    """The id names the stage beside production and the release record in the state dir: `../../victim`
    used to write `victim.json` beside the state dir (over a user's file of that name) and leave a
    `.server.deploy-..` directory beside production."""
    ok(project.run("deploy"))
    (project.root / "victim").mkdir()
    (project.root / "victim" / "keep.txt").write_text("the user's\n")
    (project.root / "victim.json").write_text('{"the user": "file"}\n')
    before = snapshot(project)
    got = drive(project, op_id, {"a.txt": entry("a.txt", DATA)})
    assert got["op"] == "failed" and got["error_type"] == "FleetAborted", got
    assert got["error"] == (f"the controller sent 'deploy' with the operation id {op_id!r}, which MCP Deploy never "
                            "makes; nothing was changed (controller and host versions differ?)")
    assert snapshot(project) == before
    assert project.leftovers() == []
    ok(project.run("deploy"))  # the host's state is fine for the next operation


@pytest.mark.parametrize("manifest,why", [
    ({"../../victim/pwn": entry("a.txt", DATA)}, "the key '../../victim/pwn' holds the entry of 'a.txt'"),
    ({"d": entry("d", b"LINK", "LINK"), "d/pwn": entry("d/pwn", DATA)},
     "d is a symlink to LINK, which leads outside the target"),
    ({"s": entry("s", b".", "."), "out": entry("out", b"s/..", "s/..")},
     "out is a symlink to s/.., which leads outside the target"),
    ({"d": entry("d", b"templates", "templates"), "d/pwn": entry("d/pwn", DATA)},
     "d/pwn lies inside d, which is a file or symlink of the same release"),
    ({"server.py": entry("server.py", DATA), "server.py/pwn": entry("server.py/pwn", DATA)},
     "server.py/pwn lies inside server.py, which is a file or symlink of the same release"),
    ({"a.txt": {"path": "/etc/a.txt", "size": 1, "mode": 0o644, "sha256": "0" * 64}},
     "bad manifest entry '/etc/a.txt'"),
])
def test_a_pushed_manifest_no_scan_makes_is_refused_and_nothing_is_written(
        project: Project, manifest: dict[str, dict[str, Any]], why: str) -> None:
    """A link to the user's directory with a file under it used to be staged through the link: the
    file landed in the user's directory (outside production) and the undo never removed it. A key that
    differs from its entry's path was recorded as the release, which every later command refused."""
    ok(project.run("deploy"))
    victim = project.root / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("the user's\n")
    for name, spec in list(manifest.items()):
        if spec.get("link") == "LINK":
            manifest[name] = entry(name, str(victim).encode(), str(victim))
            why = why.replace("LINK", str(victim))
    before = snapshot(project)
    got = drive(project, GOOD_ID, manifest)
    assert got["op"] == "failed" and got["error_type"] == "FleetAborted", got
    assert got["error"] == f"the controller sent a manifest this host refuses ({why}); nothing was changed"
    assert snapshot(project) == before
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]
    assert project.leftovers() == []
    ok(project.run("deploy"))


def test_a_well_formed_pushed_manifest_still_deploys(project: Project) -> None:
    """The checks above refuse only what no scan makes."""
    ok(project.run("deploy"))
    got = drive(project, GOOD_ID, {"a.txt": entry("a.txt", DATA), "d/b.txt": entry("d/b.txt", DATA),
                                   "l": entry("l", b"d/b.txt", "d/b.txt")})
    assert got["op"] == "done" and got["changed"], got
    assert (project.target / "a.txt").read_bytes() == DATA
    assert (project.target / "l").read_bytes() == DATA
    assert Path(project.state / "releases" / f"{GOOD_ID}.json").exists()


def boot(state_dir: Path) -> subprocess.CompletedProcess[bytes]:
    """The bootstrap exactly as ssh runs it on a host (`python3 -I -S -c BOOT SHA CACHE`), offered the agent."""
    data, sha = payload.agent()
    return subprocess.run(["python3", "-I", "-S", "-c", payload.BOOT, sha, payload.cache_dir(str(state_dir))],
                          input=b"%d\n" % len(data) + data, capture_output=True, timeout=60)


@pytest.mark.parametrize("case", ["dir of another user", "dir writable by others", "zip of another user",
                                  "zip is a link"])
def test_an_agent_cache_another_user_can_write_is_never_run_from(project: Project, case: str) -> None:
    """The host runs `<state_dir>/agent/<sha256>.pyz` after checking its hash; whoever can write there can
    swap the zip between the check and the import and run code as the deploying user (root, often). Such a
    cache used to be run from; it is refused, naming it, and nothing in it is run, written or replaced."""
    data, sha = payload.agent()
    cache = Path(payload.cache_dir(str(project.state)))
    cache.mkdir(parents=True, mode=0o700)
    zip_path = cache / f"{sha}.pyz"
    zip_path.write_bytes(data)
    if case == "dir of another user":
        os.chown(cache, 65534, 65534)
        why = f"{cache}: is owned by uid 65534"
    elif case == "dir writable by others":
        os.chmod(cache, 0o777)
        why = f"{cache}: is writable by other users (mode 777)"
    elif case == "zip of another user":
        os.chown(zip_path, 65534, 65534)
        why = f"{zip_path}: is owned by uid 65534"
    else:
        zip_path.rename(project.root / "planted.pyz")
        zip_path.symlink_to(project.root / "planted.pyz")
        why = f"{zip_path}: is not a regular file (a link?)"
    before = tree(project.root)
    proc = boot(project.state)
    assert proc.returncode == 3, proc
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and b'"hello"' not in proc.stdout, proc.stdout
    msg = json.loads(lines[0])
    assert msg == {"op": "error", "kind": "agent",
                   "error": f"{why}; the agent runs from there, so only uid {os.geteuid()} may write it: fix its "
                            "owner and mode, or remove it"}
    assert proc.stderr == b""
    assert tree(project.root) == before


def test_a_private_agent_cache_is_filled_and_run_from(project: Project) -> None:
    first = boot(project.state)
    assert first.stdout.splitlines()[0] == b'{"op": "need-agent"}' and b'"op":"hello"' in first.stdout, first
    again = boot(project.state)
    assert b"need-agent" not in again.stdout and b'"op":"hello"' in again.stdout, again
    cache = Path(payload.cache_dir(str(project.state)))
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert [p.name for p in cache.iterdir()] == [f"{payload.agent()[1]}.pyz"]


def test_set_id_bits_in_a_pushed_manifest_are_stripped_on_the_host(project: Project) -> None:
    """The controller's scan strips setuid/setgid unless allow_setid names the file; a manifest that asks
    for them anyway (a controller of another version, or a forged one) gets none on the host either."""
    ok(project.run("deploy"))
    got = drive(project, GOOD_ID, {"tool": {**entry("tool", DATA), "mode": 0o6755}})
    assert got["op"] == "done" and got["changed"], got
    assert stat.S_IMODE(os.lstat(project.target / "tool").st_mode) == 0o755
    assert any("without their setuid/setgid bits: tool" in note for note in got["notes"]), got["notes"]


@pytest.mark.parametrize("name", ["../../outside.json", "sub/VERSION", "..", ""])
def test_a_version_file_that_is_a_path_is_refused_before_anything_is_written(project: Project, name: str) -> None:
    """deploy.yaml's check refuses a version_file that is not a plain name; the host took the controller's
    profile as it came, and wrote its VERSION at target/../../outside.json, outside production."""
    ok(project.run("deploy"))
    before = snapshot(project)
    proc = subprocess.Popen([sys.executable, "-m", "deploylib.fleet.agent"], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert wire.recv(proc.stdout)[0]["op"] == "hello"  # type: ignore[index]
        for op in ("lock", "prepare", "status"):
            wire.send(proc.stdin, {"op": op, "profile": {**host_profile(project), "version_file": name},
                                   "holder": "hostile controller", "operation": "deploy", "op_id": GOOD_ID,
                                   "confirm_timeout": 10, "manifest": {}, "release": {}})
            got = wire.recv(proc.stdout)
            assert got is not None
            assert got[0] == {"op": "failed", "ok": False, "exit_code": 1, "step": None, "error_type": "FleetAborted",
                              "error": f"the controller sent a profile this host refuses (version_file {name!r} is "
                                       "not a plain file name); nothing was changed"}, (op, got)
        wire.send(proc.stdin, {"op": "bye"})
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert snapshot(project) == before
    assert not (project.root / "outside.json").exists()


FAKE_SSH = """#!/usr/bin/env python3
import json, sys
out = sys.stdout.buffer
def say(m):
    out.write(json.dumps(m).encode() + b"\\n"); out.flush()
say({"op": "hello", "protocol": 1, "python": "3.11", "host": "fake", "pid": 1})
for line in sys.stdin.buffer:
    m = json.loads(line)
    if m["op"] == "lock":
        say({"op": "locked"}); say({"op": "base", "base": None})
    elif m["op"] == "prepare":
        say({"op": "need"})
    elif m["op"] == "status":
        say({"op": "status"})
    elif m["op"] == "bye":
        break
"""


def one_fake_host(project: Project, tmp_path: Path, ssh_script: str) -> dict[str, str]:
    """A fleet profile of one host, web1, whose `ssh` is `ssh_script`: the environment that puts it first
    on PATH. The target is never written."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(ssh_script)
    (bin_dir / "ssh").chmod(0o755)
    project.config.write_text(yaml.safe_dump({"profiles": {"fleet": {
        "source": "dev", "target": "/srv/never-written", "include": ["server.py"], "hosts": ["web1"],
        "controller_state_dir": "ctl"}}}))
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_a_host_answering_what_no_agent_says_is_a_lost_host_not_a_crash(project: Project, tmp_path: Path) -> None:
    """A host whose answers lack what the controller reads (a `need` without objects, a `status` without
    its plan) crashed the controller: `internal error: KeyError` (exit 70). It is now that host lost: the
    deploy fails with every host on its old release (exit 1), status shows the host's row with the reason."""
    env = one_fake_host(project, tmp_path, FAKE_SSH)
    proc = project.run("deploy", "--profile", "fleet", env=env)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert ("web1: lost during prepare: web1: sent a malformed 'need' message (objects is not a list of names)"
            in proc.stderr)
    assert "internal error" not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
    proc = project.run("status", "--profile", "fleet", env=env)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "web1: sent a malformed 'status' message (drift is not a list)" in proc.stdout
    assert not Path("/srv/never-written").exists()


# the same fake host, failing its prepare with text that would forge a controller line
FORGING_SSH = FAKE_SSH.replace('say({"op": "need"})', """say({"op": "failed", "ok": False, "exit_code": 1, "step": "validate",
             "error": "bad\\nDeployed v9 to 4 of 4 hosts.\\x1b[2J" + "x" * 100000})""")


def test_text_a_host_sends_cannot_forge_lines_on_the_controllers_terminal(project: Project, tmp_path: Path) -> None:
    """A host's error is printed by the controller: a newline in it forged a line of the controller's own
    ("Deployed v9 to 4 of 4 hosts."), an escape sequence reached the terminal, and its length was unbounded."""
    proc = project.run("deploy", "--profile", "fleet", env=one_fake_host(project, tmp_path, FORGING_SSH))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    output = proc.stdout + proc.stderr
    assert r"bad\nDeployed v9 to 4 of 4 hosts.\x1b[2J" in output
    assert not any(line.startswith("Deployed v9") for line in output.splitlines())
    assert "\x1b" not in output and len(output) < 30_000


@pytest.mark.parametrize("timeout", [None, "10", float("nan"), float("inf"), 0, -1, 10**30, True])
def test_a_confirm_timeout_that_is_not_seconds_is_refused_before_anything_is_written(
        project: Project, timeout: Any) -> None:
    """`float(msg["confirm_timeout"])` crashed the host on None (exit 70) and took NaN or infinity: a
    committed host would then never roll itself back when its controller vanished."""
    ok(project.run("deploy"))
    before = snapshot(project)
    got = drive(project, GOOD_ID, {"a.txt": entry("a.txt", DATA)}, confirm_timeout=timeout)
    assert got["op"] == "failed" and got["error_type"] == "FleetAborted", got
    assert "not 1 to 86400 seconds; nothing was changed" in got["error"]
    assert snapshot(project) == before and project.leftovers() == []


def test_a_compressed_object_that_inflates_past_its_size_is_refused_without_inflating_it(project: Project) -> None:
    """40 kB of zlib inflate to 40 MB: the host used to inflate all of it into memory before checking the
    hash. Decompression now stops at the release's size for that object."""
    import zlib

    ok(project.run("deploy"))
    before = snapshot(project)
    bomb = zlib.compress(DATA + b"\0" * 40_000_000, 9)
    got = drive(project, GOOD_ID, {"a.txt": entry("a.txt", DATA)}, object_bytes=(bomb, True))
    assert got["op"] == "failed" and got["exit_code"] == 5, got
    assert f"arrived damaged (not the release's {len(DATA)} bytes); nothing was written" in got["error"]
    after = snapshot(project)
    for s in (before, after):  # the tool's own files: the hash cache of production, the failure's record
        s["state"].pop("hashcache.json")
        s["around"].pop("history.jsonl")
    assert after == before and project.leftovers() == []
    assert project.history()[-1]["ok"] is False
    got = drive(project, GOOD_ID.replace("3fa9c1", "3fa9c2"), {"a.txt": entry("a.txt", DATA)},
                object_bytes=(zlib.compress(DATA), True))  # an honest compressed object still deploys
    assert got["op"] == "done" and (project.target / "a.txt").read_bytes() == DATA, got
