"""Preflight refuses a deploy that cannot fit, on a real small filesystem."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from conftest import Project, ok, tree


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; run the suite as root (CI does) to exercise disk-full preflight")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_preflight_refuses_when_stage_and_backup_do_not_fit(project: Project, small_fs: Path) -> None:
    project.write_config(target=str(small_fs / "server"), backup_dir=str(small_fs / "backups"),
                         state_dir=str(small_fs / "state"))
    ok(project.run("deploy"))
    before = tree(small_fs / "server")
    (project.source / "templates" / "big.json").write_text('{"pad": "' + "x" * 12 * 1024 * 1024 + '"}')
    proc = project.run("deploy")
    assert proc.returncode == 4, proc.stderr
    assert "deploy failed at preflight" in proc.stderr and "not enough free disk space" in proc.stderr
    assert "nothing was changed" in proc.stderr
    assert tree(small_fs / "server") == before
    assert sorted(p.name for p in small_fs.iterdir()) == ["server", "state"]
