"""User files are never moved (issue 10): the cases a hostile user found, each with real processes.

Production holds files the tool did not put there. Whatever happens (a signal at any state, a server
writing state by atomic renames, a user file that matches a glob, a mount, xattrs, checks that run
Python), they keep inode, bytes and metadata, and production's directory keeps its inode.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from conftest import REPO, Project, bump, ok, tree
from invariants import baseline, check

STATES = ["CHECKING", "BACKING_UP", "STAGING", "VALIDATING", "COMMITTING", "VERIFYING", "RECORDING", "COMPLETE"]


def with_user_files(project: Project) -> None:
    """A deployed release with user files, directories, links and xattrs beside the managed ones."""
    ok(project.run("deploy"))
    (project.target / "config.local.json").write_text('{"mine": true}')
    (project.target / "logs").mkdir()
    (project.target / "logs" / "server.log").write_text("line\n")
    os.symlink("logs/server.log", project.target / "current.log")
    os.setxattr(project.target / "logs", "user.owner", b"ops")
    os.setxattr(project.target / "config.local.json", "user.note", b"hand-tuned")
    os.setxattr(project.target, "user.role", b"production")
    bump(project)
    (project.source / "workflow" / "extra").mkdir()
    (project.source / "workflow" / "extra" / "new.py").write_text("X = 1\n")


def start(project: Project, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args, "--config", str(project.config)]
    return subprocess.Popen(cmd, cwd=project.root, env={**os.environ, **env}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def deploy_paused_at(project: Project, tmp_path: Path, point: str, meanwhile: Callable[[], object],
                     *args: str, timeout: float = 60) -> tuple[int, str]:
    """A deploy (or the command `args` name) held at fault point `point` while `meanwhile` changes production,
    then let go: its exit code and stderr (never a traceback). One that hangs is killed and fails the test."""
    pause = tmp_path / "pause"
    pause.mkdir()
    proc = start(project, *(args or ("deploy",)), env={"MCP_DEPLOY_PAUSE_AT": f"{point}:{pause}"})
    wait_for(pause / "reached")
    meanwhile()
    (pause / "go").touch()
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"{args or 'deploy'} hung after production changed at {point}") from None
    assert "Traceback" not in err, err
    return proc.returncode, err


def link_workflow_to(project: Project, outside: Path, moved: Path) -> Callable[[], None]:
    """Swap production's workflow/ for a link to the user's `outside` (the real directory kept as `moved`)."""
    def swap() -> None:
        workflow = project.target / "workflow"
        workflow.rename(moved)
        workflow.symlink_to(outside)
    return swap


@pytest.mark.parametrize("state", STATES)
def test_a_real_sigint_at_every_state(project: Project, state: str, tmp_path: Path) -> None:
    """Before verify passed: undone, exit 130, production exactly old. After: finished, exactly new."""
    with_user_files(project)
    base = baseline(project)
    pause = tmp_path / "pause"
    pause.mkdir()
    proc = start(project, "deploy", env={"MCP_DEPLOY_PAUSE_AT": f"{state}:{pause}"})
    wait_for(pause / "reached")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)
    (pause / "go").touch()
    out, err = proc.communicate(timeout=60)
    after = STATES.index(state) >= STATES.index("RECORDING")
    assert proc.returncode == (0 if after else 130), err
    assert "Traceback" not in err
    if after:
        assert "SIGINT arrived after verify passed: the release was finished, never undone" in out
    else:
        assert "interrupted by SIGINT" in err
        # interrupted right after the move to BACKING_UP was journaled, the backup had not started yet
        nothing = state in ("CHECKING", "BACKING_UP")
        assert ("nothing was changed" if nothing else "undone; production is as before") in err
    assert not (project.state / "journal.json").exists()
    check(project, base, expect="new" if after else "old")


def test_sigint_while_the_history_append_blocks_keeps_the_release_and_its_backup(project: Project) -> None:
    """Case 1: the log is a FIFO nobody reads, so recording blocks; Ctrl-C there must not undo anything."""
    with_user_files(project)
    base = baseline(project)
    os.mkfifo(project.log.with_suffix(".fifo"))
    project.write_config(log="history.fifo")
    proc = start(project, "deploy", env={})
    deadline = time.monotonic() + 30
    while (project.target / "workflow" / "extra" / "new.py").exists() is False or \
            list(project.target.parent.glob(".server.deploy-[drs]-*")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)  # now blocked opening the FIFO
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "interrupted during housekeeping: the release is live" in out
    code, listing = project.json("backups")
    assert code == 0 and len(listing["snapshots"]) == 1  # the backup survives
    project.write_config(log="history.jsonl")
    assert check(project, base, then_deploy=False) == "new"


WRITER = """
import os, sys, time
os.chdir(sys.argv[1])  # a server whose cwd is production
n = 0
while not os.path.exists(sys.argv[2]):
    n += 1
    with open("state.json.tmp", "w") as f:
        f.write('{"n": %d}' % n)
    os.replace("state.json.tmp", "state.json")  # the usual atomic save
    with open("events.log", "a") as f:
        f.write("%d\\n" % n)
    time.sleep(0.002)
print(n)
"""


def test_a_server_saving_state_by_atomic_renames_loses_nothing(project: Project, tmp_path: Path) -> None:
    """Case 2: through several deploys and a rollback, every byte the writer wrote is where it wrote it."""
    ok(project.run("deploy"))
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(project.target), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    try:
        for i in range(3):
            bump(project, text=f"# round {i}\n")
            ok(project.run("deploy"))
        ok(project.run("rollback"))
        ok(project.run("deploy"))
    finally:
        stop.touch()
        last = int(writer.communicate(timeout=30)[0])
    assert (project.target / "state.json").read_text() == f'{{"n": {last}}}'
    assert (project.target / "events.log").read_text() == "".join(f"{n}\n" for n in range(1, last + 1))
    assert last > 10


def test_a_user_file_matching_a_glob_is_never_adopted(project: Project) -> None:
    """Case 3: notes.json matches *.json but was never deployed: not adopted by a rollback, not deleted by the
    next deploy, its edits kept; a deploy that would overwrite it refuses unless --adopt."""
    project.write_config(include=project.profile["include"] + ["*.json"])
    ok(project.run("deploy"))
    notes = project.target / "notes.json"
    notes.write_text('{"todo": 1}')
    bump(project)
    ok(project.run("deploy"))
    notes.write_text('{"todo": 2}')
    ok(project.run("rollback"))
    assert notes.read_text() == '{"todo": 2}'
    bump(project, text="# again\n")
    ok(project.run("deploy"))
    assert notes.read_text() == '{"todo": 2}'
    (project.source / "notes.json").write_text('{"from": "dev"}')
    before = tree(project.target)
    proc = project.run("deploy")
    assert proc.returncode == 4
    assert "would overwrite 1 file(s) that MCP Deploy did not deploy: notes.json" in proc.stderr
    assert tree(project.target) == before
    ok(project.run("deploy", "--adopt", "notes.json"))
    assert notes.read_text() == '{"from": "dev"}'
    code, listing = project.json("backups")
    snapshot = listing["snapshots"][0]["id"]
    ok(project.run("rollback", "--to", snapshot))
    assert notes.read_text() == '{"todo": 2}'  # the backup kept the user's bytes


def test_a_rollback_adopts_nothing(project: Project) -> None:
    """A file the user put where an older release had a managed file is refused by the rollback (exit 4)."""
    ok(project.run("deploy"))
    (project.source / "templates" / "review.json").unlink()
    ok(project.run("deploy"))
    (project.target / "templates" / "review.json").write_text('{"user": true}')
    before = tree(project.target)
    proc = project.run("rollback")
    assert proc.returncode == 4
    assert "rollback would overwrite 1 file(s) that MCP Deploy did not deploy: templates/review.json" in proc.stderr
    assert tree(project.target) == before


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")


def test_a_mount_inside_production_stays_mounted_and_untouched(project: Project) -> None:
    """Case 5: a tmpfs mounted inside production survives deploys, a failed deploy and a rollback."""
    needs_root()
    with_user_files(project)
    data = project.target / "data"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(data)], check=True)
    try:
        (data / "db.sqlite").write_bytes(b"precious")
        base = baseline(project)
        project.profile["verify"].append({"type": "command", "run": "exit 1"})
        project.write_config()
        assert project.run("deploy").returncode == 1
        check(project, base, expect="old", then_deploy=False)
        project.profile["verify"].pop()
        project.write_config()
        ok(project.run("deploy"))
        ok(project.run("rollback"))
        assert os.path.ismount(data) and (data / "db.sqlite").read_bytes() == b"precious"
        # a managed file that would have to be renamed into the mount is refused before anything changes
        project.write_config(include=project.profile["include"] + ["data/*.json"])
        (project.source / "data").mkdir()
        (project.source / "data" / "seed.json").write_text("{}")
        before = tree(project.target)
        proc = project.run("deploy")
        assert proc.returncode == 4 and "is on another filesystem" in proc.stderr
        assert tree(project.target) == before
    finally:
        subprocess.run(["umount", "-l", str(data)], check=True)


def test_user_directories_keep_xattrs_and_mtimes_and_deleted_files_stay_deleted(project: Project) -> None:
    """Case 6: metadata of user paths is untouched; a user file deleted during a deploy does not come back."""
    with_user_files(project)
    (project.target / "old.txt").write_text("the user deletes this during the deploy")
    base = baseline(project)
    del base.unmanaged["old.txt"]
    logs = os.stat(project.target / "logs").st_mtime_ns
    project.profile["verify"].append({"type": "command", "run": 'rm "$MCP_DEPLOY_TARGET/old.txt"'})
    project.write_config()
    ok(project.run("deploy"))
    assert not (project.target / "old.txt").exists()
    assert os.getxattr(project.target / "logs", "user.owner") == b"ops"
    assert os.getxattr(project.target, "user.role") == b"production"
    assert os.stat(project.target / "logs").st_mtime_ns == logs
    project.profile["verify"].pop()
    project.write_config()
    assert check(project, base) == "new"


def test_checks_that_run_python_leave_no_bytecode_behind(project: Project) -> None:
    """Case 7: a refused deploy leaves production byte-identical, __pycache__ included; a good one too."""
    ok(project.run("deploy"))
    imports = f'{sys.executable} -c "import workflow.plan, server"'
    project.profile["validators"].append({"type": "command", "run": imports})
    project.profile["verify"].append({"type": "command", "run": imports + " && exit 1"})
    project.write_config()
    bump(project)
    before = tree(project.target)
    assert project.run("deploy").returncode == 1
    assert tree(project.target) == before
    project.profile["verify"][-1]["run"] = imports
    project.write_config()
    ok(project.run("deploy"))
    assert not [p for p in project.target.rglob("__pycache__")]


def test_a_directory_swapped_for_a_link_before_the_commit_is_never_written_through(
        project: Project, tmp_path: Path) -> None:
    """Preflight refuses a link where a managed directory is; but a user (or attacker) who swaps the
    directory for a link to their own directory after preflight (during backup, stage or validate) used to
    have the commit rename the new workflow/plan.py through it, replacing outside/plan.py, which no backup
    holds. Each put now checks the directories above it first: exit 5 naming the path, nothing written
    outside, and once the directory is back the next command finishes the undo."""
    ok(project.run("deploy"))
    bump(project)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "plan.py").write_text("the user's own plan.py\n")
    workflow = project.target / "workflow"
    code, err = deploy_paused_at(project, tmp_path, "COMMITTING",
                                 link_workflow_to(project, outside, tmp_path / "workflow-moved"))
    assert code == 5, err
    assert (f"{workflow}/plan.py: a directory above it became a link or not a directory during the commit or its undo; "
            "nothing was written through it") in err
    assert tree(outside) == {"plan.py": b"the user's own plan.py\n"}
    workflow.unlink()
    (tmp_path / "workflow-moved").rename(workflow)
    proc2 = ok(project.run("status"))
    assert "rolled it back; production is as before it started" in proc2.stdout + proc2.stderr
    ok(project.run("deploy"))
    assert (project.target / "workflow" / "plan.py").read_bytes() == (project.source / "workflow" / "plan.py").read_bytes()
    assert tree(outside) == {"plan.py": b"the user's own plan.py\n"}


def test_a_user_file_made_where_the_release_adds_one_after_preflight_is_never_replaced(
        project: Project, tmp_path: Path) -> None:
    """Preflight refuses a user's file where the release adds one (exit 4 unless --adopt); one made after
    preflight (during backup, stage or validate) used to be renamed over by the commit, its bytes in no
    backup. The commit now looks again right before each added file: exit 1, undone, the user's file kept."""
    ok(project.run("deploy"))
    base = baseline(project)
    (project.source / "templates" / "new.json").write_text('{"new": 1}\n')
    bump(project, "server.py")
    mine = project.target / "templates" / "new.json"
    code, err = deploy_paused_at(project, tmp_path, "COMMITTING", lambda: mine.write_text('{"the user": "own"}\n'))
    assert code == 1, err
    assert (f"deploy failed at commit: {mine}: appeared in production during the deploy, where the release adds a "
            "file; it is not MCP Deploy's to replace (no backup holds it): move it aside, or pass --adopt for it, "
            "and deploy again (undone; production is as before)") in err
    assert mine.read_text() == '{"the user": "own"}\n'
    mine.unlink()
    check(project, base, expect="old")


def test_a_managed_file_rewritten_with_its_mtime_put_back_is_drift_and_never_replaced(project: Project) -> None:
    """Was broken: the hash cache knew a file by its inode, size and mtime. A managed file rewritten in place
    at the same size with its old mtime put back (`cp -p`, `touch -r`, a restore) kept that key: status saw no
    drift, and the next deploy replaced the user's bytes with none kept (the store held the bytes the cache
    vouched for, so the backup stored nothing). The key now has the ctime, which no program can set."""
    ok(project.run("deploy"))
    bump(project, "server.py")
    ok(project.run("deploy"))
    ok(project.run("rollback"))  # the live server.py's bytes are in the store: a backup would skip them
    hour_ago = time.time() - 3600
    for path in project.target.rglob("*"):  # out of the racy window: the cache vouches for them
        os.utime(path, (hour_ago, hour_ago), follow_symlinks=False)
    ok(project.run("status"))  # learns production's hashes
    server = project.target / "server.py"
    st = server.stat()
    data = server.read_bytes()
    mine = data[:-1] + (b"!" if data[-1:] != b"!" else b"?")
    with open(server, "r+b") as f:  # in place: the same inode and size
        f.write(mine)
    os.utime(server, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (server.stat().st_ino, server.stat().st_size, server.stat().st_mtime_ns) == \
        (st.st_ino, st.st_size, st.st_mtime_ns)
    code, status = project.json("status")
    assert code == 0 and status["drift"] == ["server.py"]
    proc = project.run("deploy")
    assert proc.returncode == 4 and "1 managed file(s) were edited in production since they were deployed: " \
        "server.py" in proc.stderr, proc.stderr
    assert server.read_bytes() == mine


def test_a_file_edited_right_after_the_commit_put_it_with_its_mtime_put_back_is_drift(
        project: Project, tmp_path: Path) -> None:
    """Was broken: the stage's hash of a deployed file was kept under whatever ctime the file had once the
    whole commit was done, so an edit made after its rename and before then (seconds, with a large file in the
    release) with its mtime put back was vouched for: no drift, and the next deploy replaced it. The hash is
    now kept under the ctime the file has right after its own rename."""
    ok(project.run("deploy"))
    bump(project, "server.py")
    hour_ago = time.time() - 3600
    os.utime(project.source / "server.py", (hour_ago, hour_ago))  # the copy keeps it: the stage's hash is kept
    server = project.target / "server.py"
    mine: list[bytes] = []

    def edit() -> None:
        st = server.stat()
        data = server.read_bytes()
        mine.append(data[:-1] + (b"!" if data[-1:] != b"!" else b"?"))
        with open(server, "r+b") as f:
            f.write(mine[0])
        os.utime(server, ns=(st.st_atime_ns, st.st_mtime_ns))

    code, err = deploy_paused_at(project, tmp_path, "commit:1", edit)  # server.py is the commit's first change
    assert code == 0, err
    code, status = project.json("status")
    assert code == 0 and status["drift"] == ["server.py"]
    assert server.read_bytes() == mine[0]


def test_a_staged_file_a_hook_rewrote_with_its_mtime_put_back_is_not_vouched_for(project: Project) -> None:
    """A before_commit hook that rewrites a staged file in place with its mtime put back (same size) changes
    what production gets from what the stage hashed: the stage's hash must not be kept for it, or status
    would see no drift and the next backup would store those bytes under the other hash's name."""
    ok(project.run("deploy"))
    bump(project, "server.py")
    hour_ago = time.time() - 3600
    os.utime(project.source / "server.py", (hour_ago, hour_ago))  # the copy keeps it: the stage's hash is kept
    rewrite = ("import os, sys; p = os.path.join(os.environ['MCP_DEPLOY_STAGE'], 'server.py'); st = os.stat(p); "
               "d = open(p, 'rb').read(); open(p, 'r+b').write(d[:-1] + (b'!' if d[-1:] != b'!' else b'?')); "
               "os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))")
    project.write_config(hooks={"before_commit": [{"run": f"{sys.executable} -c \"{rewrite}\""}]})
    ok(project.run("deploy"))
    deployed = (project.source / "server.py").read_bytes()
    assert (project.target / "server.py").read_bytes() != deployed
    assert len((project.target / "server.py").read_bytes()) == len(deployed)
    code, status = project.json("status")
    assert code == 0 and status["drift"] == ["server.py"]


def edit_in_place(path: Path) -> None:
    """Same size, new bytes: only a hash tells (the mtime is now, within the racy window)."""
    data = path.read_bytes()
    path.write_bytes(data[:-1] + (b"!" if data[-1:] != b"!" else b"?"))


def save_like_an_editor(path: Path) -> None:
    """Written beside, renamed over: a new inode."""
    (path.parent / (path.name + ".tmp")).write_text("# the user's rewrite\n")
    (path.parent / (path.name + ".tmp")).rename(path)


EDITS: dict[str, Callable[[Path], None]] = {
    "appended": lambda path: path.write_text(path.read_text() + "# the user's line\n"),
    "edited in place, same size": edit_in_place,
    "saved by an editor": save_like_an_editor,
    "deleted": lambda path: path.unlink(),
    "replaced by a symlink": lambda path: (path.unlink(), path.symlink_to("server.py")),
    "replaced by a FIFO": lambda path: (path.unlink(), os.mkfifo(path)),  # never opened: the deploy cannot hang
}


@pytest.mark.parametrize("edit", EDITS)
def test_a_managed_file_changed_after_the_backup_is_never_overwritten(
        project: Project, tmp_path: Path, edit: str) -> None:
    """A managed file edited in production before a deploy is drift: refused unless --overwrite-drift, and then
    the backup keeps the edit. One edited after the backup (a running server writing it while validators ran,
    a hand edit during a long deploy) was overwritten by the commit's rename, the edit in no backup. The
    commit now looks again right before each file it replaces: exit 1, undone, the file as the user left it;
    the next deploy sees the drift, and with --overwrite-drift its backup holds the user's bytes."""
    ok(project.run("deploy"))
    bump(project, "server.py")
    bump(project)
    plan = project.target / "workflow" / "plan.py"
    before = tree(project.target)
    users: dict[str, bytes | str] = {}

    def change() -> None:
        EDITS[edit](plan)
        users.update({p: b for p, b in tree(project.target).items() if p == "workflow/plan.py"})

    code, err = deploy_paused_at(project, tmp_path, "COMMITTING", change)
    assert code == 1, err
    assert (f"deploy failed at commit: {plan}: changed in production during the deploy, after its backup; it is "
            "left as it is now and the deploy is undone: look at the change, then deploy again") in err
    expected = {**{p: b for p, b in before.items() if p != "workflow/plan.py"}, **users}
    assert tree(project.target) == expected  # the user's file as they left it, every other file as before
    ok(project.run("status"))
    assert project.leftovers() == []
    assert tree(project.target) == expected
    refused = project.run("deploy")
    assert refused.returncode == 4 and "edited in production since they were deployed: workflow/plan.py" in \
        refused.stderr, refused.stderr
    forced = project.run("deploy", "--overwrite-drift")
    if edit == "replaced by a FIFO":  # not a file the tool deploys over, even then
        assert forced.returncode == 4 and f"{plan}: is a fifo in production" in forced.stderr, forced.stderr
        return
    ok(forced)
    if isinstance(users.get("workflow/plan.py"), bytes):
        kept = [p for p in (project.backups / "objects").rglob("*")
                if p.is_file() and p.read_bytes() == users["workflow/plan.py"]]
        assert kept, "the backup of the --overwrite-drift deploy holds the user's edit"


def test_a_file_the_release_drops_edited_after_the_backup_is_kept(project: Project, tmp_path: Path) -> None:
    """The commit removed a file the new release drops whatever it held by then: an edit made after the
    backup was lost with it. Now refused like a replaced file: exit 1, the file kept as the user left it."""
    extra = project.source / "workflow" / "extra.py"
    extra.write_text("X = 1\n")
    ok(project.run("deploy"))
    extra.unlink()
    live = project.target / "workflow" / "extra.py"
    code, err = deploy_paused_at(project, tmp_path, "COMMITTING", lambda: live.write_text("X = 2  # the user's\n"))
    assert code == 1, err
    assert f"{live}: changed in production during the deploy, after its backup" in err
    assert live.read_text() == "X = 2  # the user's\n"
    ok(project.run("status"))
    assert project.leftovers() == []


def test_a_file_changed_during_a_rollback_is_never_overwritten(project: Project, tmp_path: Path) -> None:
    """A rollback replaces production's files with a snapshot's; one the user edited after the rollback's own
    backup was overwritten, the edit in no backup. Refused the same way: exit 1, undone, the edit kept."""
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    plan = project.target / "workflow" / "plan.py"
    new = tree(project.target)
    code, err = deploy_paused_at(project, tmp_path, "COMMITTING",
                                 lambda: plan.write_text(plan.read_text() + "# the user's line\n"), "rollback")
    assert code == 1, err
    assert f"rollback failed at commit: {plan}: changed in production during the deploy, after its backup" in err
    assert tree(project.target) == {**new, "workflow/plan.py": new["workflow/plan.py"] + b"# the user's line\n"}
    ok(project.run("status"))
    assert project.leftovers() == []


@pytest.mark.parametrize("swapped_for", ["a link", "a FIFO"])
def test_a_file_swapped_before_the_backup_copies_is_never_read_through_nor_waited_on(
        project: Project, tmp_path: Path, swapped_for: str) -> None:
    """Preflight saw a regular file; a user who can write production swapped it (after preflight, before the
    backup copied it) for a link to a file only the deployer may read: the backup's copy followed the link,
    and that file's bytes became a world-readable object in the store. Or for a FIFO: the backup's kernel
    copy waited on it, holding the lock, until someone wrote to it. Now every read by path opens without
    following a link or waiting: the deploy stops at once, undone, nothing of the file is stored, and what
    the user put there stays."""
    ok(project.run("deploy"))
    bump(project)
    secret = tmp_path / "only-root-reads-this"
    secret.write_bytes(b"the deployer's secret\n")
    secret.chmod(0o600)
    plan = project.target / "workflow" / "plan.py"

    def swap() -> None:
        plan.unlink()
        plan.symlink_to(secret) if swapped_for == "a link" else os.mkfifo(plan)

    code, err = deploy_paused_at(project, tmp_path, "BACKING_UP", swap, timeout=30)
    assert code == 1, err
    stored = [p for p in project.backups.rglob("*") if p.is_file() and b"the deployer's secret" in p.read_bytes()]
    assert stored == []
    why = ("a symlink stands where a regular file was (not followed)" if swapped_for == "a link"
           else "not a regular file (a FIFO, socket or device stands there)")
    assert f"deploy failed at backup: {why}: {plan} (undone; production is as before)" in err
    assert os.readlink(plan) == str(secret) if swapped_for == "a link" else plan.is_fifo()  # as the user made it
    ok(project.run("status"))
    assert project.leftovers() == []


def test_a_directory_swapped_for_a_link_during_the_undo_is_never_written_through(
        project: Project, tmp_path: Path) -> None:
    """The undo checked every path before it began; a directory swapped for a link after that (between two
    of its renames) had the undo restore the old workflow files through the link, over the user's own."""
    ok(project.run("deploy"))
    old = tree(project.target)
    for rel in ("workflow/plan.py", "workflow/registry.py", "workflow/review.py"):
        bump(project, rel)
    project.write_config(verify=[{"type": "command", "run": "exit 1"}])
    outside = tmp_path / "outside"
    outside.mkdir()
    mine = {name: f"the user's own {name}\n".encode() for name in ("plan.py", "registry.py", "review.py")}
    for name, data in mine.items():
        (outside / name).write_bytes(data)
    workflow = project.target / "workflow"
    code, err = deploy_paused_at(project, tmp_path, "undo:1",
                                 link_workflow_to(project, outside, tmp_path / "workflow-moved"))
    assert code == 5, err
    assert "a directory above it became a link or not a directory during the commit or its undo" in err
    assert tree(outside) == {name: data for name, data in mine.items()}
    workflow.unlink()
    (tmp_path / "workflow-moved").rename(workflow)
    done = ok(project.run("status"))
    assert "rolled it back; production is as before it started" in done.stdout + done.stderr
    assert tree(project.target) == old
    assert tree(outside) == {name: data for name, data in mine.items()}
