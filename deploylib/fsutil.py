"""File operations that must survive a crash, and streaming copy-with-hash.

Every write that recovery depends on goes through `atomic_write`: write a temp
file, fsync it, rename it over the target, fsync the directory.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any, Callable, Iterable

CHUNK = 1024 * 1024  # 1 MiB: few syscalls, bounded memory even for huge files


def fsync_dir(path: Path) -> None:
    """Make a rename or create inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | Iterable[bytes], mode: int = 0o644) -> None:
    """Replace `path` with `data` (bytes, or pieces written in turn) so that a crash leaves either the old
    or the new bytes."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    # a fresh name, never followed: a planted link must not turn this write into one over another file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, bytes):
                f.write(data)
            else:
                f.writelines(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def read_state(path: Path) -> bytes:
    """A state file's bytes, never through a symlink and only from a regular file: a planted link must not
    make MCP Deploy read (and echo, or trust) some other file. Raises OSError like read_bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
    with os.fdopen(fd, "rb") as f:
        return f.read()


def open_regular(path: str | os.PathLike[str], follow: bool = False) -> int:
    """A read-only descriptor of the regular file at `path`, opened without following a link and without
    waiting on a FIFO; OSError for anything else. Every file the tool reads by a path someone else may
    write (production, the source) is opened so: a file swapped for a link after its `lstat` must not
    have the deployer read (and store, world-readable) what the link points to, nor hang on a FIFO.
    With `follow`, a link is followed (a managed link in a tree the tool owns); a FIFO is still refused."""
    try:
        fd = os.open(path, os.O_RDONLY | (0 if follow else os.O_NOFOLLOW) | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow and os.path.islink(path):
            raise OSError(errno.ELOOP, "a symlink stands where a regular file was (not followed)", str(path)) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file (a FIFO, socket or device stands there)", str(path))
    return fd


def read_regular(path: str | os.PathLike[str], follow: bool = False) -> bytes:
    """The bytes of the regular file at `path` (see `open_regular`); with `follow`, a link is followed (a
    managed link in a tree the tool owns), but a FIFO or device is still refused, never waited on."""
    with open(open_regular(path, follow), "rb") as f:
        return f.read()


def sha256_file(path: str | Path) -> str:
    """Hash a regular file in chunks, never holding it whole in memory (see `open_regular`)."""
    h = hashlib.sha256()
    with open(open_regular(path), "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_regular(path: str | Path) -> str | None:
    """The sha256 of the regular file at `path`, None if something else (or nothing) stands there."""
    try:
        return sha256_file(path)
    except OSError:
        return None


def copy_with_hash(src: str | Path, dst: str | Path, mode: int | None = None, mtime_ns: int | None = None,
                   stamp_if: Callable[[int, int], bool] | None = None) -> str:
    """Copy `src` to a new file `dst` (which must not exist) and return the sha256 of what was written.

    Hashing while copying means one read of the source and a hash of exactly the
    bytes that landed, so a file rewritten mid-copy is detected by the caller.
    `mtime_ns` stamps the copy (after its last write) with that modification time; with `stamp_if`, only
    if `stamp_if(mtime_ns, now)` holds at that moment (the copy of a large file takes a while).
    """
    h = hashlib.sha256()
    with open(open_regular(src), "rb") as fin:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fout:
                while chunk := fin.read(CHUNK):
                    h.update(chunk)
                    fout.write(chunk)
                if mtime_ns is not None and (stamp_if is None or stamp_if(mtime_ns, time.time_ns())):
                    fout.flush()
                    os.utime(fout.fileno(), ns=(time.time_ns(), mtime_ns))
        except BaseException:
            Path(dst).unlink(missing_ok=True)
            raise
        os.chmod(dst, stat.S_IMODE(os.fstat(fin.fileno()).st_mode) if mode is None else mode)
    return h.hexdigest()


def kernel_copy(src: str | Path, dst: str | Path, sha: str, known: Callable[[os.stat_result], str | None]) -> bool:
    """Copy `src` to a new read-only file `dst` inside the kernel, when `known` vouches that `src` holds the
    bytes of `sha`; True if done. False (and `dst` absent) when it does not vouch, when `src` showed any
    other identity (device, inode, size, mtime, ctime) after the copy than before it, or when the kernel
    cannot copy between these files: the caller then copies with hashing.

    A write during the copy stamps `src` with a newer mtime, so the second fstat catches it; `known`
    refuses a file modified within the racy window, where a same-tick write would leave the mtime as is.
    """
    try:
        fin = open_regular(src)
    except OSError:
        return False
    try:
        before = os.fstat(fin)
        if known(before) != sha:
            return False
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            left = before.st_size
            while left > 0:
                n = os.copy_file_range(fin, fout, min(left, 1 << 30))
                if n == 0:
                    break
                left -= n
            after = os.fstat(fin)
            same = left == 0 and stat_identity(before) == stat_identity(after)
            if same:
                os.fchmod(fout, 0o444)
        except OSError:
            same = False
        finally:
            os.close(fout)
        if not same:
            os.unlink(dst)
        return same
    finally:
        os.close(fin)


def stat_identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """(device, inode, size, mtime, ctime): equal for two looks at a file only if it is the same file and
    nothing wrote to it, nor put an mtime back, in between (the ctime is the time no program can set)."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def remove_tree(path: Path) -> None:
    """Remove a directory tree even where files or directories were made read-only."""

    def make_writable_and_retry(func, p, _exc):  # type: ignore[no-untyped-def]
        parent = os.path.dirname(p)
        os.chmod(parent, stat.S_IMODE(os.lstat(parent).st_mode) | stat.S_IWUSR | stat.S_IXUSR)
        func(p)

    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, onerror=make_writable_and_retry)


def nearest_existing(path: Path) -> Path:
    """The closest ancestor of `path` (or itself) that exists: where disk space is measured."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def sync_filesystem(path: Path) -> None:
    """Flush every dirty page of the filesystem holding `path` in one call (dpkg-style batching).

    One syncfs before a commit is far cheaper than an fsync per file and gives the
    same guarantee: nothing the commit publishes is still only in memory.
    """
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    os.sync()


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_renameat2: Any = None  # libc's renameat2, looked up once (False: not available here)


def rename_noreplace(src: str | Path, dst: str | Path) -> None:
    """Rename `src` to `dst` only if nothing stands at `dst` (FileExistsError otherwise), atomically.

    Where a file is being *added*, a plain rename would silently replace one a user made there since
    it was last looked at. Linux's renameat2(RENAME_NOREPLACE) decides in the kernel; elsewhere (or on
    a filesystem without it) a check just before the rename leaves only a microseconds-wide window.
    """
    if _rename_with_flags(src, dst, _RENAME_NOREPLACE):
        return
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


def rename_exchange(a: str | Path, b: str | Path) -> bool:
    """Swap the files at `a` and `b` in one atomic step (renameat2 RENAME_EXCHANGE); False, with nothing
    changed, where the system or the filesystem cannot (the caller then copies and renames instead)."""
    return _rename_with_flags(a, b, _RENAME_EXCHANGE)


def has_renameat2() -> bool:
    """Whether this system has renameat2 at all (a filesystem may still refuse RENAME_EXCHANGE)."""
    global _renameat2
    if _renameat2 is None:
        _renameat2 = _find_renameat2()
    return bool(_renameat2)


def _rename_with_flags(src: str | Path, dst: str | Path, flags: int) -> bool:
    """renameat2(src, dst, flags): True if done, False where unsupported (ENOSYS, or EINVAL: this
    filesystem cannot), OSError for any other failure."""
    if not has_renameat2():
        return False
    import ctypes

    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def _find_renameat2() -> Any:
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn
