"""The invariant every chaos scenario ends with (issues 4 and 10):

- production's managed files are exactly the old version's or exactly the new one's (by hash);
- every unmanaged path (file, link, or directory holding no managed file) keeps its inode, bytes, mode,
  owner, xattrs and mtime; directories that do hold managed files keep inode, mode, owner and xattrs;
  production's directory itself keeps its inode;
- VERSION matches the tree it sits in (its release manifest equals the managed files);
- the history log is valid JSON lines;
- once the next command has run, no stage, old-tree or parking directory is left;
- the next deploy succeeds.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from conftest import Project, manifest_entries, ok

from deploylib.layout import release_path


def digest_tree(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for path in root.rglob("*"):
        if path.is_symlink():
            out[path.relative_to(root).as_posix()] = "link:" + str(path.readlink())
        elif path.is_file():
            out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@dataclass
class Baseline:
    old: dict[str, str]  # managed files now
    new: dict[str, str]  # managed files after the operation under test succeeds
    unmanaged: dict[str, tuple[object, ...]]  # every other path: identity, content and metadata
    holders: dict[str, tuple[object, ...]]  # directories holding managed files: identity and metadata
    target_inode: int


def release_manifest(project: Project) -> dict[str, str]:
    version = json.loads((project.target / "VERSION").read_text())
    data = json.loads(release_path(project.state, version["deploy_id"]).read_text())
    files = manifest_entries(data["files"])
    return {p: e["sha256"] if "link" not in e else "link:" + e["link"] for p, e in files.items()}


def xattrs(path: Path) -> dict[str, bytes]:
    try:
        return {name: os.getxattr(path, name, follow_symlinks=False)
                for name in sorted(os.listxattr(path, follow_symlinks=False))}
    except OSError:
        return {}


def identity(path: Path, with_mtime: bool = True) -> tuple[object, ...]:
    """Inode, type, mode, owner, xattrs, content (files and links) and mtime of one path."""
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode):
        content: object = hashlib.sha256(path.read_bytes()).hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        content = os.readlink(path)
    else:
        content = None
    return (st.st_ino, st.st_mode, st.st_uid, st.st_gid, xattrs(path), content,
            st.st_mtime_ns if with_mtime else None)


def user_paths(project: Project, managed: set[str]) -> tuple[dict[str, tuple[object, ...]],
                                                            dict[str, tuple[object, ...]]]:
    """(unmanaged paths, directories holding managed paths) of production, each with its identity."""
    holders = {str(Path(p).parent) for p in managed}
    holders = {str(q) for h in holders for q in [Path(h), *Path(h).parents] if str(q) != "."}
    unmanaged, held = {}, {}
    for path in project.target.rglob("*"):
        rel = path.relative_to(project.target).as_posix()
        if rel in managed or rel == "VERSION":
            continue
        if rel in holders:
            held[rel] = identity(path, with_mtime=False)
        else:
            unmanaged[rel] = identity(path)
    return unmanaged, held


def baseline(project: Project) -> Baseline:
    """Capture before a deploy: what is managed now, what the deploy would make, and the user's files."""
    old = release_manifest(project) if (project.target / "VERSION").exists() else {}
    code, preview = project.json("deploy", "--dry-run")
    assert code == 0
    source = digest_tree(project.source)
    new = {p: h for p, h in old.items() if p not in preview["plan"]["removed"]}
    new.update({p: source[p] for p in preview["plan"]["added"] + preview["plan"]["changed"]})
    current = digest_tree(project.target)
    assert {p: current[p] for p in old} == old, "baseline taken on a drifted tree"
    unmanaged, holders = user_paths(project, set(old) | set(new))
    return Baseline(old, new, unmanaged, holders, os.stat(project.target).st_ino)


def check(project: Project, base: Baseline, *, expect: str | None = None, next_command: str = "status",
          then_deploy: bool = True) -> str:
    """Assert the invariant; returns 'old' or 'new' (and insists on `expect` when given)."""
    ok(project.run(next_command))
    assert project.leftovers() == [], project.leftovers()
    assert not (project.state / "journal.json").exists()
    now = digest_tree(project.target)
    managed = {p: h for p, h in now.items() if p in base.old or p in base.new}
    which = "old" if managed == base.old else "new" if managed == base.new else "torn"
    assert which != "torn", f"managed files are neither the old nor the new version: {managed}"
    if expect:
        assert which == expect, f"expected the {expect} version, found the {which}"
    unmanaged, holders = user_paths(project, set(base.old) | set(base.new))
    for rel, before in base.unmanaged.items():
        assert unmanaged.get(rel) == before, f"unmanaged {rel} changed: {before} -> {unmanaged.get(rel)}"
    for rel, before in base.holders.items():
        if rel in holders:  # a directory of the tool's own may come and go with the files it holds
            assert holders[rel][:5] == before[:5], f"directory {rel} changed: {before} -> {holders[rel]}"
    assert os.stat(project.target).st_ino == base.target_inode, "production's directory was replaced"
    if base.old or which == "new":
        assert release_manifest(project) == managed, "VERSION does not describe the tree it sits in"
    for line in project.log.read_text().splitlines():
        json.loads(line)
    if then_deploy:
        ok(project.run("deploy"))
    return which
