"""Scenario 3: a nearly full disk, on a real small tmpfs. Preflight refuses what cannot fit; if space runs
out mid-copy anyway, production is untouched and the stage is removed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from conftest import REPO, Project, ok, tree
from invariants import baseline, check


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; run the suite as root (CI does) to exercise a full disk")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def on_small_fs(project: Project, fs: Path) -> None:
    project.write_config(target=str(fs / "server"), backup_dir=str(fs / "backups"), state_dir=str(fs / "state"))


def test_preflight_refuses_when_stage_and_backup_do_not_fit(project: Project, small_fs: Path) -> None:
    on_small_fs(project, small_fs)
    ok(project.run("deploy"))
    before = tree(small_fs / "server")
    (project.source / "templates" / "big.json").write_text('{"pad": "' + "x" * 12 * 1024 * 1024 + '"}')
    proc = project.run("deploy")
    assert proc.returncode == 4, proc.stderr
    assert "deploy failed at preflight" in proc.stderr and "not enough free disk space" in proc.stderr
    assert "nothing was changed" in proc.stderr
    assert tree(small_fs / "server") == before
    assert sorted(p.name for p in small_fs.iterdir()) == [".server.deploy-lock", "backups", "server", "state"]
    assert sorted(p.name for p in (small_fs / "backups").iterdir()) == ["lock", "mcp-deploy-store.json"]


def test_space_running_out_mid_copy_leaves_production_untouched(project: Project, small_fs: Path,
                                                                tmp_path: Path) -> None:
    on_small_fs(project, small_fs)
    ok(project.run("deploy"))
    (project.target / "config.local.json").write_text('{"mine": 1}')
    (project.source / "templates" / "big.json").write_text('{"pad": "' + "x" * 2 * 1024 * 1024 + '"}')
    base = baseline(project)
    gate = tmp_path / "gate"
    gate.mkdir()
    cmd = [sys.executable, "-m", "invoke", "--search-root", str(REPO), "deploy", "--config", str(project.config)]
    proc = subprocess.Popen(cmd, cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MCP_DEPLOY_PAUSE_AT": f"STAGING:{gate}"})
    while not (gate / "reached").exists():  # preflight passed; the copy has not started
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        time.sleep(0.02)
    filler = small_fs / "filler"  # another program fills the disk now
    free = os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * (free - 256 * 1024))
    (gate / "go").touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "deploy failed at stage: No space left on device" in err
    assert "undone; production is as before" in err
    assert project.leftovers() == []  # the stage is gone
    filler.unlink()
    check(project, base, expect="old")


def test_a_full_backup_disk_names_backup_dir(project: Project, small_fs: Path, tmp_path: Path) -> None:
    """The backup store on its own small filesystem fills up mid-backup: the message names backup_dir."""
    project.write_config(backup_dir=str(small_fs / "backups"))
    (project.source / "templates" / "big.json").write_text('{"pad": "' + "x" * 2 * 1024 * 1024 + '"}')
    ok(project.run("deploy"))
    base = baseline(project)
    (project.source / "templates" / "big.json").write_text('{"pad": "' + "y" * 2 * 1024 * 1024 + '"}')
    gate = tmp_path / "gate"
    gate.mkdir()
    cmd = [sys.executable, "-m", "invoke", "--search-root", str(REPO), "deploy", "--config", str(project.config)]
    proc = subprocess.Popen(cmd, cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MCP_DEPLOY_PAUSE_AT": f"BACKING_UP:{gate}"})
    while not (gate / "reached").exists():
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        time.sleep(0.02)
    filler = small_fs / "filler"
    free = os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * (free - 64 * 1024))
    (gate / "go").touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert f"deploy failed at backup: backup_dir {small_fs / 'backups'}: no space left for the backup" in err
    assert "undone; production is as before" in err
    filler.unlink()
    check(project, base, expect="old")
