"""A large file's outgoing version becomes its own backup (issue 13): swapped out of production at the commit
(renameat2 RENAME_EXCHANGE) and moved into the store, never copied. Killed at any point of that, changed by a
user meanwhile, hard-linked meanwhile: production ends exactly old or exactly new, the user's bytes kept."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import pytest

from conftest import Project, ok
from invariants import baseline, check
from test_user_files import deploy_paused_at

from deploylib.store import TAKE_MIN

BIG = "data/model.bin"


def write_big(path: Path, seed: str) -> bytes:
    """A file just over the size the commit takes, settled an hour ago (so the hash cache vouches for it)."""
    path.parent.mkdir(exist_ok=True)
    block = hashlib.sha256(seed.encode()).digest() * 2048  # 64 KiB
    data = block * (TAKE_MIN // len(block) + 1)
    path.write_bytes(data)
    hour_ago = time.time() - 3600
    os.utime(path, (hour_ago, hour_ago))
    return data


def object_path(project: Project, data: bytes) -> Path:
    sha = hashlib.sha256(data).hexdigest()
    return project.backups / "objects" / sha[:2] / sha


@pytest.fixture
def big(project: Project) -> tuple[bytes, bytes]:
    return deployed_big(project)


def deployed_big(project: Project) -> tuple[bytes, bytes]:
    """The example plus a large file, deployed, with user files beside it; the source holds the next version.
    The old and the new bytes of the large file."""
    project.write_config(include=project.profile["include"] + ["data/**"])
    old = write_big(project.source / BIG, "old")
    ok(project.run("deploy"))
    (project.target / "config.local.json").write_text('{"mine": true}')
    (project.target / "data" / "cache.db").write_bytes(b"user state")
    new = write_big(project.source / BIG, "new")
    return old, new


def test_the_outgoing_version_is_moved_into_the_store_not_copied(project: Project, big: tuple[bytes, bytes]) -> None:
    old, new = big
    inode = os.stat(project.target / BIG).st_ino
    base = baseline(project)
    ok(project.run("deploy"))
    assert (project.target / BIG).read_bytes() == new
    stored = object_path(project, old)
    assert stored.read_bytes() == old
    assert os.stat(stored).st_ino == inode, "the backup copied the file instead of taking it"
    assert oct(os.stat(stored).st_mode & 0o777) == "0o444"
    assert (project.target / "data" / "cache.db").read_bytes() == b"user state"
    ok(project.run("rollback"))
    assert (project.target / BIG).read_bytes() == old
    check(project, base, expect="old", then_deploy=False)


@pytest.mark.parametrize("point", ["take:1", "commit:1", "COMMITTING", "VERIFYING"])
def test_killed_around_the_take_recovers_to_the_old_version(project: Project, big: tuple[bytes, bytes],
                                                            point: str) -> None:
    old, _ = big
    inode = os.stat(project.target / BIG).st_ino
    base = baseline(project)
    proc = project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": point})
    assert proc.returncode == -signal.SIGKILL
    check(project, base, expect="old", then_deploy=False)
    assert (project.target / BIG).read_bytes() == old
    if point == "take:1":  # swapped out, not yet taken: the very file goes back
        assert os.stat(project.target / BIG).st_ino == inode
    ok(project.run("deploy"))


def test_a_recovery_killed_after_swapping_back_finishes_on_the_next_run(project: Project,
                                                                        big: tuple[bytes, bytes]) -> None:
    """The undo swaps the staged file back in: a second undo sees it where it was and leaves it."""
    old, _ = big
    base = baseline(project)
    assert project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": "take:1"}).returncode == -signal.SIGKILL
    assert project.run("status", env={"MCP_DEPLOY_CRASH_AT": "undo:1"}).returncode == -signal.SIGKILL
    assert (project.target / BIG).read_bytes() == old
    check(project, base, expect="old", then_deploy=False)


def test_a_verify_failure_after_the_take_restores_from_the_store(project: Project, big: tuple[bytes, bytes]) -> None:
    old, _ = big
    project.profile["verify"].append({"type": "command", "run": "exit 1"})
    project.write_config()
    base = baseline(project)
    proc = project.run("deploy")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert (project.target / BIG).read_bytes() == old
    check(project, base, expect="old", then_deploy=False)


def test_a_file_edited_in_production_after_the_backup_is_kept_and_the_deploy_refused(
        project: Project, big: tuple[bytes, bytes], tmp_path: Path) -> None:
    def edit() -> None:
        with open(project.target / BIG, "ab") as f:
            f.write(b"edited by hand")

    code, err = deploy_paused_at(project, tmp_path, "VALIDATING", edit)
    assert code == 1
    assert f"{project.target / BIG}: changed in production during the deploy" in err
    assert (project.target / BIG).read_bytes() == big[0] + b"edited by hand"
    assert (project.target / "config.local.json").read_text() == '{"mine": true}'
    assert project.leftovers() == []


def test_a_file_replaced_in_production_after_the_backup_is_kept_and_the_deploy_refused(
        project: Project, big: tuple[bytes, bytes], tmp_path: Path) -> None:
    """A server that rewrites the file by rename: another inode stands there; it stays, byte for byte."""
    def replace() -> None:
        (project.target / "data" / "tmp").write_bytes(b"written by the server")
        os.rename(project.target / "data" / "tmp", project.target / BIG)

    inode_before: list[int] = []
    code, err = deploy_paused_at(project, tmp_path, "VALIDATING",
                                 lambda: (replace(), inode_before.append(os.stat(project.target / BIG).st_ino)))
    assert code == 1 and "changed in production during the deploy" in err
    assert (project.target / BIG).read_bytes() == b"written by the server"
    assert os.stat(project.target / BIG).st_ino == inode_before[0]
    assert project.leftovers() == []


def test_a_hard_link_made_meanwhile_keeps_the_users_name_on_the_old_bytes(
        project: Project, big: tuple[bytes, bytes], tmp_path: Path) -> None:
    """A second name on the file would make the store share it with a user: it is copied instead."""
    old, new = big
    mine = project.root / "my-copy.bin"
    inode = os.stat(project.target / BIG).st_ino
    code, err = deploy_paused_at(project, tmp_path, "VALIDATING", lambda: os.link(project.target / BIG, mine))
    assert code == 0, err
    assert (project.target / BIG).read_bytes() == new
    assert mine.read_bytes() == old and os.stat(mine).st_ino == inode and os.stat(mine).st_nlink == 1
    assert os.stat(object_path(project, old)).st_ino != inode
    ok(project.run("rollback"))
    assert (project.target / BIG).read_bytes() == old
    assert mine.read_bytes() == old and os.stat(mine).st_ino == inode


def test_a_large_file_rewritten_with_its_mtime_put_back_is_read_before_it_is_replaced(
        project: Project, big: tuple[bytes, bytes], tmp_path: Path) -> None:
    """A rewrite in place with the old mtime put back moves only the ctime: the cache stops vouching for the
    file, so it is not taken but copied into the store. Where the store holds its old bytes already (another
    target sharing the store stored them meanwhile), nothing is copied, and only reading the file again can
    tell it changed: exit 1, undone, the user's bytes kept."""
    old, _new = big
    live = project.target / BIG
    st = live.stat()
    mine = bytes([old[0] ^ 1]) + old[1:]

    def meanwhile() -> None:
        stored = object_path(project, old)
        stored.parent.mkdir(exist_ok=True)
        stored.write_bytes(old)
        stored.chmod(0o444)
        with open(live, "r+b") as f:
            f.write(mine[:1])
        os.utime(live, ns=(st.st_atime_ns, st.st_mtime_ns))

    code, err = deploy_paused_at(project, tmp_path, "VALIDATING", meanwhile)
    assert code == 1 and f"{live}: changed in production during the deploy, after its backup" in err, err
    assert live.read_bytes() == mine and live.stat().st_ino == st.st_ino


def test_a_recently_written_file_is_copied_as_before(project: Project, big: tuple[bytes, bytes]) -> None:
    """Within the racy window the cache vouches for nothing, so nothing is taken: the backup copies it."""
    old, new = big
    (project.target / BIG).touch()  # a fresh mtime: same bytes, hash no longer vouched for by the cache
    inode = os.stat(project.target / BIG).st_ino
    ok(project.run("deploy"))
    assert (project.target / BIG).read_bytes() == new
    assert object_path(project, old).read_bytes() == old
    assert os.stat(object_path(project, old)).st_ino != inode


def test_killed_after_the_swap_with_the_new_file_edited_meanwhile_keeps_the_edit_and_the_old_bytes(
        project: Project, big: tuple[bytes, bytes]) -> None:
    """Was broken: killed right after the swap, the new file in production then appended to (a server writing
    its file before any command ran), the recovery renamed the outgoing file over it: the appended bytes were
    in no backup, and gone. A file changed since the commit put it stays as it is, and is named, as in every
    other undo; the outgoing version becomes its backup object."""
    old, new = big
    inode = os.stat(project.target / BIG).st_ino
    assert project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": "take:1"}).returncode == -signal.SIGKILL
    live = project.target / BIG
    assert live.read_bytes() == new
    with open(live, "ab") as f:
        f.write(b"the server's own line\n")
    proc = ok(project.run("status"))
    assert ("rolled it back; production is as before it started, but for 1 file(s) changed there after the commit "
            f"put them, left as they are (no backup holds those changes): {BIG}") in proc.stdout, proc.stdout
    assert live.read_bytes() == new + b"the server's own line\n"
    stored = object_path(project, old)
    assert stored.read_bytes() == old and os.stat(stored).st_ino == inode  # the outgoing file itself
    assert project.leftovers() == []
    assert (project.target / "data" / "cache.db").read_bytes() == b"user state"


def test_killed_after_the_swap_with_the_release_record_gone_swaps_back_as_before(
        project: Project, big: tuple[bytes, bytes]) -> None:
    """Without the release record nothing can tell the staged file from a change made since: the outgoing
    file goes back over whatever stands, as any restore does then (`Commit._is_ours`), never kept aside."""
    old, _ = big
    inode = os.stat(project.target / BIG).st_ino
    assert project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": "take:1"}).returncode == -signal.SIGKILL
    [record] = [p for p in (project.state / "releases").iterdir() if p.stem.startswith("d-")
                and p.stem != project.version()["deploy_id"]]
    record.unlink()
    proc = ok(project.run("status"))
    assert "rolled it back; production is as before it started\n" in proc.stdout, proc.stdout
    assert (project.target / BIG).read_bytes() == old and os.stat(project.target / BIG).st_ino == inode


def test_killed_after_the_swap_with_the_new_file_deleted_meanwhile_still_recovers(
        project: Project, big: tuple[bytes, bytes]) -> None:
    """Nothing stands in production to swap back with: the outgoing file is renamed back instead."""
    old, _ = big
    inode = os.stat(project.target / BIG).st_ino
    assert project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": "take:1"}).returncode == -signal.SIGKILL
    os.unlink(project.target / BIG)
    proc = ok(project.run("status"))
    assert "recovered interrupted deploy" in proc.stdout
    assert (project.target / BIG).read_bytes() == old and os.stat(project.target / BIG).st_ino == inode
    assert project.leftovers() == []
    assert (project.target / "data" / "cache.db").read_bytes() == b"user state"


def test_two_large_files_killed_between_their_takes_recover_both(project: Project, big: tuple[bytes, bytes]) -> None:
    """The first outgoing file is already the store's, the second still in the stage: each undone its way."""
    old, _ = big
    second = "data/weights.bin"
    write_big(project.source / BIG, "old")
    old2 = write_big(project.source / second, "old 2")
    ok(project.run("deploy"))
    write_big(project.source / BIG, "new")
    write_big(project.source / second, "new 2")
    base = baseline(project)
    assert project.run("deploy", env={"MCP_DEPLOY_CRASH_AT": "take:2"}).returncode == -signal.SIGKILL
    check(project, base, expect="old", then_deploy=False)
    assert (project.target / BIG).read_bytes() == old
    assert (project.target / second).read_bytes() == old2


def test_a_rollback_takes_too_and_a_kill_there_leaves_the_release_it_started_from(
        project: Project, big: tuple[bytes, bytes]) -> None:
    old, new = big
    ok(project.run("deploy"))
    inode = os.stat(project.target / BIG).st_ino
    assert project.run("rollback", env={"MCP_DEPLOY_CRASH_AT": "take:1"}).returncode == -signal.SIGKILL
    assert "recovered interrupted rollback" in ok(project.run("status")).stdout
    assert (project.target / BIG).read_bytes() == new and os.stat(project.target / BIG).st_ino == inode
    ok(project.run("rollback"))
    assert (project.target / BIG).read_bytes() == old
    assert os.stat(object_path(project, new)).st_ino == inode  # the rollback took the outgoing file too


def test_a_store_directory_swapped_for_a_link_stops_the_take_and_nothing_lands_outside(
        project: Project, big: tuple[bytes, bytes], tmp_path: Path) -> None:
    old, _ = big
    inode = os.stat(project.target / BIG).st_ino
    prefix = object_path(project, old).parent
    outside = tmp_path / "outside"
    outside.mkdir()

    def link_prefix() -> None:
        if prefix.exists():
            os.rename(prefix, tmp_path / "moved-prefix")
        prefix.symlink_to(outside)

    code, err = deploy_paused_at(project, tmp_path, "VALIDATING", link_prefix)
    assert code == 5 and "is not a directory of the store" in err, err
    assert list(outside.iterdir()) == []
    assert (project.target / BIG).read_bytes() == old and os.stat(project.target / BIG).st_ino == inode
    assert project.leftovers() == []


def test_a_writer_holding_the_old_file_open_damages_only_the_backup_and_rollback_says_so(
        project: Project, big: tuple[bytes, bytes]) -> None:
    """The limit of taking: a process that keeps the replaced file open and writes into it writes into the
    backup object (with a copy it would write into a file nobody can name). Every restore re-hashes, so the
    rollback refuses (exit 5) naming the object, and production stays the new release."""
    old, new = big
    with open(project.target / BIG, "r+b") as held:
        ok(project.run("deploy"))
        held.write(b"late write")
    proc = project.run("rollback")
    assert proc.returncode == 5 and "Traceback" not in proc.stderr
    assert "cannot be restored" in proc.stderr and f"{object_path(project, old).name[-6:]} is damaged" in proc.stderr
    assert "production untouched" in proc.stderr
    assert (project.target / BIG).read_bytes() == new
    assert (project.target / "data" / "cache.db").read_bytes() == b"user state"
