"""The invariant every chaos scenario ends with (issue 4):

- production's managed files are exactly the old version's or exactly the new one's (by hash);
- every unmanaged file is byte-identical to before;
- VERSION matches the tree it sits in (its release manifest equals the managed files);
- the history log is valid JSON lines;
- once the next command has run, no stage, old-tree or parking directory is left;
- the next deploy succeeds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from conftest import Project, ok


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
    unmanaged: dict[str, bytes]


def release_manifest(project: Project) -> dict[str, str]:
    version = json.loads((project.target / "VERSION").read_text())
    data = json.loads((project.state / "releases" / f"{version['deploy_id']}.json").read_text())
    return {p: e["sha256"] if "link" not in e else "link:" + e["link"] for p, e in data.items()}


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
    unmanaged = {p.relative_to(project.target).as_posix(): p.read_bytes()
                 for p in project.target.rglob("*") if p.is_file() and not p.is_symlink()
                 and p.relative_to(project.target).as_posix() not in set(old) | set(new) | {"VERSION"}}
    return Baseline(old, new, unmanaged)


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
    for rel, data in base.unmanaged.items():
        assert (project.target / rel).read_bytes() == data, f"unmanaged {rel} changed"
    if base.old or which == "new":
        assert release_manifest(project) == managed, "VERSION does not describe the tree it sits in"
    for line in project.log.read_text().splitlines():
        json.loads(line)
    if then_deploy:
        ok(project.run("deploy"))
    return which
