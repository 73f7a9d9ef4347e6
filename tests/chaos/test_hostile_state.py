"""Issue 11, security and state: planted links, other users' files, shared targets and stores, paths and
fields read back from state files. Each case: a clear message, a non-zero exit where the user must act,
and nothing outside the tool's own files touched."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, Project, bump, ok, read_manifest, tree, write_manifest
from deploylib.layout import lock_path, store_lock_path, store_marker_path, target_lock_path
from invariants import baseline, check

VICTIM = b"somebody's precious file\n"


def locks(project: Project) -> dict[str, Path]:
    return {"state": lock_path(project.state), "target": target_lock_path(project.target),
            "store": store_lock_path(project.backups)}


@pytest.mark.parametrize("which", ["state", "target", "store"])
def test_a_lock_file_planted_as_a_symlink_is_refused_and_what_it_points_at_is_untouched(
        project: Project, tmp_path: Path, which: str) -> None:
    ok(project.run("deploy"))
    base = baseline(project)
    victim = tmp_path / "victim"
    victim.write_bytes(VICTIM)
    lock = locks(project)[which]
    lock.unlink()
    lock.symlink_to(victim)
    bump(project)
    proc = project.run("deploy")
    assert proc.returncode == 5, proc.stderr
    assert f"{lock}: is a symlink where MCP Deploy keeps its lock; remove the link" in proc.stderr
    assert victim.read_bytes() == VICTIM
    lock.unlink()
    check(project, base, expect="old")  # then deploys
    assert victim.read_bytes() == VICTIM


def test_a_lock_file_owned_by_another_user_is_refused(project: Project) -> None:
    ok(project.run("deploy"))
    lock = locks(project)["target"]
    os.chown(lock, 54321, 54321)
    bump(project)
    proc = project.run("deploy")
    assert proc.returncode == 5, proc.stderr
    assert f"{lock}: owned by uid 54321, so it is not MCP Deploy's lock file of this user" in proc.stderr


def test_the_state_dir_is_created_private(project: Project) -> None:
    ok(project.run("deploy"))
    assert stat.S_IMODE(os.stat(project.state).st_mode) == 0o700
    for lock in locks(project).values():
        assert stat.S_IMODE(os.lstat(lock).st_mode) == 0o600


FORGE = """
import json, os, sys, hashlib
state, rid, name, data = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].encode()
rec = json.load(open(f"{state}/releases/{rid}.json"))
entry = (name, len(data), 0o644, hashlib.sha256(data).hexdigest())
for column, value in zip(("paths", "sizes", "modes", "sha256"), entry):
    rec["files"][column].append(value)  # the record's manifest is held as columns (format 3)
os.rename(f"{state}/releases", f"{state}/releases.old")  # root's directory, but in a directory we can write
os.mkdir(f"{state}/releases")
with open(f"{state}/releases/{rid}.json", "w") as f:
    json.dump(rec, f)
"""


@pytest.mark.parametrize("how", ["owned by another user", "group-writable", "world-writable"])
def test_a_state_dir_another_user_can_write_is_refused_before_it_is_trusted(project: Project, how: str) -> None:
    """Another user who can write in state_dir rewrote the live release's record to claim notes.txt (the
    user's file in production, never deployed): the next deploy, as root, removed it from production.
    A state dir another user owns or can write is now refused (exit 5) before anything in it is read."""
    ok(project.run("deploy"))
    notes = project.target / "notes.txt"
    notes.write_text("the user's notes\n")
    rid = project.version()["deploy_id"]
    os.chmod(project.state, 0o777)
    # what the other user does (here as root: pytest's tmp_path is not searchable by another uid)
    subprocess.run([sys.executable, "-I", "-c", FORGE, str(project.state), rid, "notes.txt", notes.read_text()],
                   check=True, cwd="/")
    mode = {"owned by another user": 0o755, "group-writable": 0o770, "world-writable": 0o777}[how]
    os.chmod(project.state, mode)
    if how == "owned by another user":
        os.chown(project.state, 65534, 65534)
    why = "owned by uid 65534" if how == "owned by another user" else f"writable by other users (mode {mode:o})"
    bump(project)
    before = tree(project.target.parent)
    for args in (("deploy",), ("rollback",), ("deploy", "--dry-run")):
        proc = project.run(*args)
        if args[-1] == "--dry-run":  # a preview takes no lock and changes nothing: it may read
            continue
        assert proc.returncode == 5, (args, proc.stdout, proc.stderr)
        assert (f"{project.state}: the state_dir is {why}: whoever can write there can rewrite the release "
                "records that tell MCP Deploy's files from yours") in proc.stderr
        assert f"make it uid {os.geteuid()}'s own and writable by no one else (chmod go-w)" in proc.stderr
        assert "Traceback" not in proc.stderr
    lock = target_lock_path(project.target).name
    assert {k: v for k, v in tree(project.target.parent).items() if k != lock} == \
        {k: v for k, v in before.items() if k != lock}
    assert notes.read_text() == "the user's notes\n"


HOLD = """
import sys, time
from pathlib import Path
from deploylib.lock import DeployLock
DeployLock(Path(sys.argv[1]), "deploy").acquire()
print("locked", flush=True)
time.sleep(60)
"""


def second_config(project: Project, **overrides: str) -> Path:
    """Another deploy.yaml: its own state and store unless `overrides` share one with the first."""
    profile = {**project.profile, "state_dir": "other-state", "backup_dir": "other-backups",
               "log": "other-history.jsonl", **overrides}
    path = project.root / "other.yaml"
    path.write_text(json.dumps({"profiles": {"default": profile}}))
    return path


@pytest.mark.parametrize("shared", ["target", "backup_dir"])
def test_two_configs_sharing_a_target_or_a_store_never_run_at_once(project: Project, shared: str) -> None:
    """Two deploy.yaml files naming one target (or one backup_dir): the lock is the target's (the store's),
    not the state dir's, so the second waits for the first or fails at once naming it."""
    other = second_config(project) if shared == "target" else \
        second_config(project, target="other-prod", backup_dir=project.profile["backup_dir"])
    ok(project.run("deploy"))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(locks(project)[
        "target" if shared == "target" else "store"])], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = tree(project.target)
        proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), "deploy",
                               "--config", str(other)], capture_output=True, text=True, cwd=project.root)
        assert proc.returncode == 3, proc.stderr
        assert f"pid {holder.pid}" in proc.stderr and "running deploy" in proc.stderr
        assert tree(project.target) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_backup_dir_that_is_not_a_store_is_never_written_or_collected(project: Project) -> None:
    """backup_dir pointed at somebody's directory that happens to have an objects/ subdirectory."""
    mine = project.root / "photos"
    (mine / "objects" / "ab").mkdir(parents=True)
    (mine / "objects" / "ab" / "holiday.jpg").write_bytes(VICTIM)
    (mine / "notes.txt").write_bytes(VICTIM)
    before = tree(mine)
    project.write_config(backup_dir="photos")
    for args in (("deploy",), ("prune",), ("status",), ("backups",), ("rollback",)):
        proc = project.run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert f"backup_dir {mine}: holds files that are not MCP Deploy backups" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert tree(mine) == before and not project.target.exists()


def test_a_store_made_before_the_marker_is_adopted(project: Project) -> None:
    ok(project.run("deploy"))
    store_marker_path(project.backups).unlink()
    bump(project)
    ok(project.run("deploy"))
    assert json.loads(store_marker_path(project.backups).read_text()) == {"format": 1}
    ok(project.run("rollback"))


def test_prune_never_builds_a_path_from_a_hostile_object_name(project: Project, tmp_path: Path) -> None:
    """A snapshot manifest naming the object '../../../victim': corrupt state, and nothing deleted."""
    project.write_config(retention={"keep_last": 1})
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    victim = project.backups / "victim"
    victim.write_bytes(VICTIM)
    for manifest in (project.backups / "snapshots").glob("*.files.json"):
        files = read_manifest(manifest)
        for entry in files.values():
            entry["sha256"] = "../../victim"
        write_manifest(manifest, files)
    proc = project.run("prune")
    assert "Traceback" not in proc.stderr
    assert victim.read_bytes() == VICTIM
    proc = project.run("rollback")
    assert proc.returncode == 5 and "snapshot manifest is damaged" in proc.stderr
    assert victim.read_bytes() == VICTIM


@pytest.mark.parametrize("created", [5, None, "yesterday", ["2026"]])
def test_a_snapshot_header_with_a_bad_created_field_is_reported_not_a_crash(project: Project,
                                                                            created: object) -> None:
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    header = sorted(p for p in (project.backups / "snapshots").glob("*.json")
                    if not p.name.endswith(".files.json"))[-1]
    data = json.loads(header.read_text())
    data["created"] = created
    header.write_text(json.dumps(data))
    for args in (("status",), ("backups",)):
        proc = project.run(*args)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (args, proc.stderr)
    proc = project.run("prune", "--dry-run")  # it cannot know which objects that snapshot needs
    assert proc.returncode == 5 and "prune refuses to collect objects until it is repaired" in proc.stderr
    proc = project.run("backups")
    assert f"{header}: snapshot manifest is damaged" in proc.stdout + proc.stderr
    proc = project.run("rollback", "--to", data["id"])
    assert proc.returncode == 5 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("field,value", [("deployed", "yesterday"), ("deployed", 5), ("deploy_id", "../x"),
                                         ("version", {"a": 1})])
def test_a_version_file_with_wrong_types_is_a_note_not_a_crash(project: Project, field: str,
                                                                value: object) -> None:
    ok(project.run("deploy"))
    data = project.version()
    data[field] = value
    (project.target / "VERSION").write_text(json.dumps(data))
    proc = ok(project.run("status"))
    assert "VERSION is damaged" in proc.stdout and "Traceback" not in proc.stderr
    bump(project)
    ok(project.run("deploy"))  # the sole release record still says which files are ours
    assert project.version()["deploy_id"] != data.get("deploy_id")


def test_set_id_bits_are_stripped_unless_allowed(project: Project) -> None:
    tool = project.source / "bin" / "helper"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho hi\n")
    os.chown(tool, 65534, 65534)
    os.chmod(tool, 0o6755)  # after chown, which clears the bits
    project.write_config(include=[*project.profile["include"], "bin/*"])
    proc = ok(project.run("deploy"))
    deployed = project.target / "bin" / "helper"
    assert stat.S_IMODE(os.stat(deployed).st_mode) == 0o755 and os.stat(deployed).st_uid == os.geteuid()
    assert "deployed 1 file(s) without their setuid/setgid bits: bin/helper" in proc.stdout
    ok(project.run("status"))
    assert ok(project.run("deploy")).stdout.count("Nothing to deploy") == 1  # the stripped mode is the plan
    project.write_config(allow_setid=["bin/helper"])
    ok(project.run("deploy"))
    assert stat.S_IMODE(os.stat(deployed).st_mode) == 0o6755


def test_a_source_file_named_like_the_version_file_is_refused_not_dropped(project: Project) -> None:
    (project.source / "VERSION").write_text("1.2.3\n")
    project.write_config(include=[*project.profile["include"], "VERSION"])
    proc = project.run("deploy")
    assert proc.returncode == 4, proc.stderr
    assert (f"{project.source / 'VERSION'}: the release has a file of the name MCP Deploy gives its version file "
            "(version_file: VERSION); exclude or rename it, or set version_file to another name") in proc.stderr
    assert not project.target.exists()
    project.write_config(version_file=".mcp-deploy-release.json")
    ok(project.run("deploy"))
    assert (project.target / "VERSION").read_text() == "1.2.3\n"  # the user's file, deployed as it is
    first = json.loads((project.target / ".mcp-deploy-release.json").read_text())
    bump(project)
    ok(project.run("deploy"))
    code, status = project.json("status")
    assert code == 0 and status["deploy_id"] != first["deploy_id"] and status["drift"] == []
    ok(project.run("rollback"))
    assert json.loads((project.target / ".mcp-deploy-release.json").read_text())["restored_from"]
    assert (project.target / "VERSION").read_text() == "1.2.3\n"


@pytest.mark.parametrize("name", ["a/b", "..", ""])
def test_a_version_file_name_that_is_not_a_plain_name_is_a_config_error(project: Project, name: str) -> None:
    project.write_config(version_file=name)
    proc = project.run("deploy")
    assert proc.returncode == 2 and "version_file" in proc.stderr and "Traceback" not in proc.stderr
    assert not project.target.exists()


@pytest.mark.parametrize("which", ["hashcache", "history"])
def test_a_state_file_that_is_a_directory_is_a_clear_message(project: Project, which: str) -> None:
    """hashcache.json or the history log replaced by a directory: the deploy still works (the cache is only
    a cache; the history records it could not write), and every command answers without a traceback."""
    ok(project.run("deploy"))
    path = project.state / "hashcache.json" if which == "hashcache" else project.log
    path.unlink()
    path.mkdir()
    bump(project)
    proc = project.run("deploy")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert project.managed()["workflow/plan.py"] == (project.source / "workflow/plan.py").read_bytes()
    for args in (("status",), ("history",), ("backups",), ("prune",), ("rollback",)):
        proc = project.run(*args)
        assert "Traceback" not in proc.stderr and proc.returncode in (0, 5), (args, proc.stderr)
        if proc.returncode:
            assert str(path) in proc.stderr, (args, proc.stderr)
    assert path.is_dir()



def test_a_recovery_on_a_read_only_filesystem_keeps_the_journal_and_says_so(project: Project) -> None:
    """Killed mid-deploy, then production's filesystem turns read-only: the recovery cannot undo, so it
    keeps the journal, exits 5 with one clear line, and finishes the job once the filesystem is writable."""
    ok(project.run("deploy"))
    base = baseline(project)
    bump(project)
    assert project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": "VERIFYING"}).returncode == -9
    mounted = subprocess.run(["mount", "--bind", str(project.target), str(project.target)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(project.target)], check=True)
        proc = project.run("status")
        assert proc.returncode == 5 and "Traceback" not in proc.stderr, proc.stderr
        assert "recovering the interrupted deploy" in proc.stderr
        assert "Read-only file system" in proc.stderr or "Invalid cross-device link" in proc.stderr  # a bind mount
        assert "the journal at" in proc.stderr and "is kept" in proc.stderr
    finally:
        subprocess.run(["umount", str(project.target)], check=True)
    assert (project.state / "journal.json").exists()
    check(project, base, expect="old")


def test_a_version_file_naming_a_user_file_or_directory_is_refused(project: Project) -> None:
    """version_file pointed at a file the user keeps in production: refused, never overwritten (the
    version file is not backed up, so an overwrite could not be undone by a rollback)."""
    ok(project.run("deploy"))
    settings = project.target / "settings.yaml"
    settings.write_text("user: precious\n")
    (project.target / "logs").mkdir()
    bump(project)
    before = tree(project.target)
    for name, what in (("settings.yaml", "a file"), ("logs", "a directory or link")):
        project.write_config(version_file=name)
        proc = project.run("deploy", "--adopt", "**")
        assert proc.returncode == 4, proc.stderr
        assert (f"{project.target / name}: production has {what} of the name MCP Deploy writes its version file "
                f"to (version_file: {name}), and MCP Deploy did not write it") in proc.stderr
        assert tree(project.target) == before
    project.write_config(version_file="RELEASE.json")
    ok(project.run("deploy"))
    assert settings.read_text() == "user: precious\n"


def test_dirs_the_tool_made_are_never_removed_through_a_link_the_user_put_in_their_place(
        project: Project, tmp_path: Path) -> None:
    """A directory the tool created, moved elsewhere by the user and replaced by a symlink: when the
    release drops it, the directory behind the link is not the tool's to remove."""
    data = project.source / "data" / "cache"
    data.mkdir(parents=True)
    (data / "a.json").write_text("{}")
    project.write_config(include=[*project.profile["include"], "data/**"])
    ok(project.run("deploy"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(str(project.target / "data"), elsewhere / "data")
    (elsewhere / "data" / "cache" / "a.json").unlink()
    (project.target / "data").symlink_to(elsewhere / "data")
    shutil.rmtree(project.source / "data")
    bump(project)
    ok(project.run("deploy"))
    assert (elsewhere / "data" / "cache").is_dir()


def test_atomic_writes_never_follow_a_planted_temp_link(project: Project, tmp_path: Path) -> None:
    """State files are written via a temp file beside them; a link planted at a predictable temp name must
    not turn the write into an overwrite of the link's target."""
    ok(project.run("deploy"))
    victim = tmp_path / "victim"
    victim.write_bytes(VICTIM)
    bump(project)
    script = (f"ln -s {victim} {project.state}/.journal.json.tmp-$$; "
              f"ln -s {victim} {project.backups}/.mcp-deploy-store.json.tmp-$$; "
              f"exec {sys.executable} -m invoke --search-root {REPO} deploy --config {project.config}")
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, cwd=project.root)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_bytes() == VICTIM


@pytest.mark.parametrize("sub", ["objects", "snapshots"])
def test_a_store_directory_replaced_by_a_link_is_refused_and_prune_deletes_nothing_behind_it(
        project: Project, tmp_path: Path, sub: str) -> None:
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "tmp-important.log").write_bytes(VICTIM)
    (victim / "ab").mkdir()
    (victim / "ab" / ("ab" + "c" * 62)).write_bytes(VICTIM)
    shutil.move(str(project.backups / sub), tmp_path / "real")
    (project.backups / sub).symlink_to(victim)
    before = tree(victim)
    for args in (("prune",), ("deploy",), ("rollback",)):
        proc = project.run(*args)
        assert proc.returncode == 5, (args, proc.stderr)
        assert f"{project.backups / sub}: is a symlink; a store's directories must be its own" in proc.stderr
    assert tree(victim) == before


def _forged_journal(project: Project, commit: dict[str, object], snapshot: str | None = None) -> None:
    op_id = "d-20261124T180000.000000Z-abcdef"
    record = {"op_id": op_id, "operation": "deploy", "state": "COMMITTING", "target": str(project.target),
              "stage": str(project.target.parent / f".{project.target.name}.deploy-{op_id}"),
              "previous_id": None, "snapshot_id": snapshot, "commit": commit, "failed_state": None,
              "error": None, "transitions": []}
    (project.state / "journal.json").write_text(json.dumps(record))


def test_a_forged_commit_plan_is_never_undone_through_links_or_onto_user_files(
        project: Project, tmp_path: Path) -> None:
    """A journal planted to make the undo write through a user's symlink, delete the user's files, or
    restore a setuid file: exit 5, the journal is kept, nothing is touched."""
    ok(project.run("deploy"))
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_bytes(VICTIM)
    (project.target / "data").symlink_to(victim)
    (project.target / "config.yaml").write_text("mine: 1\n")
    (project.target / "userempty").mkdir()
    sha = next(p.name for p in (project.backups / "objects").rglob("*") if p.is_file()) \
        if (project.backups / "objects").exists() else "0" * 64
    before, outside = tree(project.target), tree(victim)
    plans = [
        {"removes": [], "rmdirs": [["data/madedir", 4095]], "mkdirs": [], "puts": [], "version_kept": False},
        {"removes": [], "rmdirs": [], "mkdirs": [], "puts": [["data/keep.txt", None]], "version_kept": False},
        {"removes": [], "rmdirs": [], "mkdirs": [["userempty", 493]], "puts": [], "version_kept": False},
        {"removes": [], "rmdirs": [], "mkdirs": [], "version_kept": False,
         "puts": [["config.yaml", {"path": "config.yaml", "size": 1, "mode": 2541, "sha256": sha}]]},
        {"removes": [], "rmdirs": [], "mkdirs": [], "puts": [["config.yaml", None]], "version_kept": False},
    ]
    for plan in plans:
        _forged_journal(project, plan)
        proc = project.run("status")
        assert proc.returncode == 5, (plan, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr and "nothing was touched" in proc.stderr, proc.stderr
        assert (project.state / "journal.json").exists()
        assert tree(project.target) == before and tree(victim) == outside
        assert not (victim / "madedir").exists()


def test_sigterm_while_housekeeping_blocks_reports_the_live_release(project: Project) -> None:
    """The history log is a FIFO nobody reads: the record step blocks after verify passed. SIGTERM then
    must not kill the run silently: exit 0, the JSON result, the release live."""
    os.mkfifo(project.root / "history.fifo")
    project.write_config(log="history.fifo")
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(REPO), "deploy", "--json",
                             "--config", str(project.config)], cwd=project.root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not (project.target / "VERSION").exists() or \
            list(project.target.parent.glob(f".{project.target.name}.deploy-[drs]-*")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)  # blocked opening the FIFO
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["changed"] and any("interrupted during housekeeping" in n for n in result["notes"])
    assert project.version()["deploy_id"] == result["deploy_id"]


@pytest.mark.parametrize("forged, column", [("sub/\ud800.py", "paths"), ("sub/" + "a" * 5000, "paths"),
                                            (10**4000, "sizes")],
                         ids=["a lone surrogate", "a 5000-byte name", "a size of 10**4000"])
def test_a_record_naming_a_file_no_filesystem_can_hold_is_damaged_state_not_an_internal_error(
        project: Project, forged: object, column: str) -> None:
    """A lone surrogate (no file name decodes to one), a 5,000-byte name, a size of 10**4000: `status`,
    `diff` and `rollback --dry-run` used to stop with exit 70 (an encoding error, ENAMETOOLONG, an
    OverflowError) and a deploy with the raw error; now the record is refused as damaged when read."""
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    record = project.state / "releases" / f"{project.version()['deploy_id']}.json"
    data = json.loads(record.read_text())
    files = data["files"]
    entry = {"paths": "sub/x.py", "sizes": 1, "modes": 0o644, "sha256": "0" * 64, column: forged}
    for name in ("paths", "sizes", "modes", "sha256"):
        files[name].append(entry[name])
    record.write_text(json.dumps(data))
    before = tree(project.target.parent)
    for args in (("status",), ("diff",), ("rollback", "--dry-run"), ("deploy",)):
        proc = project.run(*args)
        assert proc.returncode == 5, (args, proc.stdout, proc.stderr)
        assert f"{record}: release record is damaged (bad manifest entry" in proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr) < 1000
    lock = target_lock_path(project.target).name
    assert {k: v for k, v in tree(project.target.parent).items() if k != lock} == \
        {k: v for k, v in before.items() if k != lock}
