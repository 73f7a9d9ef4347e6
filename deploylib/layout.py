"""Every name MCP Deploy gives to something on disk, in one place (tests import it too).

    <target parent>/.<target name>.deploy-<op id>/   the stage of one operation (beside production)
    <target parent>/.<target name>.deploy-lock        the target's lock, whichever config names it
    <state_dir>/lock                                   the state lock (holder info inside)
    <state_dir>/journal.json                           the operation in flight
    <state_dir>/hashcache.json                         sha256 by (dev, inode, size, mtime, ctime)
    <state_dir>/releases/<deploy id>.json              the files and directories a release manages
    <backup_dir>/mcp-deploy-store.json                 marks a store (its format); nothing else is one
    <backup_dir>/lock                                  the store's lock
    <backup_dir>/objects/ab/abcdef...                  backup contents, by sha256
    <backup_dir>/snapshots/<id>.json, <id>.files.json  a snapshot's header and manifest

Anything read back from these places is validated before use (`safe_relpath`,
`is_op_id`): a path in a state file must never lead outside the tree it names.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

VERSION_FILE = "VERSION"
LOCK_FILE = "lock"
JOURNAL_FILE = "journal.json"
HASH_CACHE_FILE = "hashcache.json"
RELEASES_DIR = "releases"
STORE_MARKER = "mcp-deploy-store.json"
STORE_FORMAT = 1

DEPLOY_PREFIX, ROLLBACK_PREFIX, SNAPSHOT_PREFIX = "d", "r", "s"
_OP_ID = re.compile(r"[drs]-\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}\Z")


def is_op_id(text: object) -> bool:
    """An id this tool made (d-/r-/s- + time + random): the only ids allowed into file names."""
    return isinstance(text, str) and _OP_ID.match(text) is not None


def stage_path(target: Path, op_id: str) -> Path:
    """Beside production, so every rename of the commit stays on one filesystem."""
    return target.parent / f".{target.name}.deploy-{op_id}"


def target_lock_path(target: Path) -> Path:
    """Beside production like the stage: two configs naming one target meet here."""
    return target.parent / f".{target.name}.deploy-lock"


def store_lock_path(backup_dir: Path) -> Path:
    return backup_dir / LOCK_FILE


def store_marker_path(backup_dir: Path) -> Path:
    return backup_dir / STORE_MARKER


def journal_path(state_dir: Path) -> Path:
    return state_dir / JOURNAL_FILE


def lock_path(state_dir: Path) -> Path:
    return state_dir / LOCK_FILE


def hash_cache_path(state_dir: Path) -> Path:
    return state_dir / HASH_CACHE_FILE


def releases_dir(state_dir: Path) -> Path:
    return state_dir / RELEASES_DIR


def release_path(state_dir: Path, deploy_id: str) -> Path:
    return releases_dir(state_dir) / f"{deploy_id}.json"


def plain_name(name: object) -> bool:
    """A file name of the target itself (a version file): a safe relative path of one part."""
    return safe_relpath(name) and "/" not in str(name)


NAME_MAX = 255  # bytes in one file name (ext4, xfs, btrfs, tmpfs): a longer one names no file


def safe_relpath(path: object) -> bool:
    """A relative, normalised POSIX path inside its tree: no '', '.', '..', '//', leading '/', NUL, and a name
    a file can have (os.fsencode can write it: a lone surrogate no file name decodes to cannot; each part
    NAME_MAX bytes at most). Read back from a state file, anything else was forged."""
    if not isinstance(path, str) or not path or "\0" in path or path.startswith("/"):
        return False
    try:
        parts = os.fsencode(path).split(b"/")
    except UnicodeError:
        return False
    return all(part not in (b"", b".", b"..") and len(part) <= NAME_MAX for part in parts)
