"""The filesystem primitives the commit's first-law promise rests on: adding, swapping and checking a file."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from deploylib import fsutil


def test_rename_noreplace_never_replaces_what_stands_there(tmp_path: Path) -> None:
    src, dst = tmp_path / "staged", tmp_path / "notes.json"
    src.write_bytes(b"release\n")
    dst.write_bytes(b"the user's\n")
    with pytest.raises(FileExistsError):
        fsutil.rename_noreplace(src, dst)
    assert dst.read_bytes() == b"the user's\n" and src.read_bytes() == b"release\n"
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")  # a dangling link stands there too
    with pytest.raises(FileExistsError):
        fsutil.rename_noreplace(src, link)
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()
    fresh = tmp_path / "new.json"
    fsutil.rename_noreplace(src, fresh)
    assert fresh.read_bytes() == b"release\n" and not src.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_on_linux_the_kernel_decides(tmp_path: Path) -> None:
    """No check-then-rename window where renameat2(RENAME_NOREPLACE) exists (glibc >= 2.28)."""
    assert fsutil._find_renameat2()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_rename_exchange_swaps_two_files_keeping_their_inodes(tmp_path: Path) -> None:
    """The commit's take rests on this: both names stay filled, each inode moves whole."""
    a, b = tmp_path / "staged", tmp_path / "live"
    a.write_bytes(b"new\n")
    b.write_bytes(b"old\n")
    ia, ib = a.stat().st_ino, b.stat().st_ino
    assert fsutil.rename_exchange(a, b)
    assert (a.read_bytes(), a.stat().st_ino) == (b"old\n", ib)
    assert (b.read_bytes(), b.stat().st_ino) == (b"new\n", ia)
    with pytest.raises(FileNotFoundError):  # nothing to swap with: an error, never a plain rename
        fsutil.rename_exchange(a, tmp_path / "absent")
    assert a.read_bytes() == b"old\n" and not (tmp_path / "absent").exists()


def test_sha256_regular_hashes_only_a_regular_file_and_never_blocks(tmp_path: Path) -> None:
    """The commit's last look at a file it replaces: a link is not followed, a FIFO not waited on."""
    (tmp_path / "file").write_bytes(b"bytes")
    os.symlink("file", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")  # opening it for reading without O_NONBLOCK waits for a writer forever
    assert fsutil.sha256_regular(tmp_path / "file") == hashlib.sha256(b"bytes").hexdigest()
    assert [fsutil.sha256_regular(tmp_path / name) for name in ("link", "fifo", "missing")] == [None, None, None]
