"""Hostile review, the backup store: one backup_dir shared by profiles with different targets, and
snapshots whose manifests describe what no deploy would write (set-id bits, links leaving the target).

Every snapshot records the target it backs up; listing, retention, rollback and `diff --release` see only
the profile's own target's snapshots, while garbage collection keeps every object any snapshot needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import Project, bump, ok, read_manifest, tree, write_manifest
from deploylib.layout import target_lock_path


def two_profiles(project: Project) -> dict[str, dict[str, Any]]:
    """Profiles `a` and `b`: their own sources, targets, state dirs and logs, one backup_dir, keep_last 1."""
    shutil.copytree(project.source, project.root / "dev-b")
    base = {k: v for k, v in project.profile.items() if k not in ("source", "target", "state_dir", "log")}
    profiles = {name: {**base, "source": src, "target": f"prod/{name}", "state_dir": f"state-{name}",
                       "log": f"history-{name}.jsonl", "backup_dir": "backups",
                       "retention": {"keep_last": 1}}
                for name, src in (("a", "dev"), ("b", "dev-b"))}
    project.config.write_text(yaml.safe_dump({"profiles": profiles}, sort_keys=False))
    return profiles


def snapshots_of(project: Project, profile: str) -> dict[str, dict[str, Any]]:
    """Header by snapshot id, of the snapshots of `profile`'s target (by the VERSION each one captured)."""
    out = {}
    for header in (project.backups / "snapshots").glob("*.json"):
        if not header.name.endswith(".files.json"):
            data = json.loads(header.read_text())
            if (data.get("version_info") or {}).get("profile") == profile:
                out[data["id"]] = data
    return out


def objects_of(project: Project, snapshot_ids: list[str]) -> dict[str, bytes]:
    out = {}
    for sid in snapshot_ids:
        for entry in read_manifest(project.backups / "snapshots" / f"{sid}.files.json").values():
            if "link" not in entry:
                obj = project.backups / "objects" / entry["sha256"][:2] / entry["sha256"]
                out[entry["sha256"]] = obj.read_bytes()
    return out


def test_a_store_shared_by_two_targets_keeps_each_targets_snapshots_apart(project: Project) -> None:
    two_profiles(project)
    b_src = project.root / "dev-b" / "workflow" / "plan.py"
    for n in range(3):  # b: three releases, the last two backed up; keep_last 1 keeps one
        b_src.write_text(b_src.read_text() + f"\n# b only {n}\n")
        ok(project.run("deploy", "--profile", "b"))
    b_snaps = snapshots_of(project, "b")
    assert len(b_snaps) == 1
    b_snap = next(iter(b_snaps))
    b_release = b_snaps[b_snap]["release"]
    b_store = {sid: ((project.backups / "snapshots" / f"{sid}.json").read_bytes(),
                     (project.backups / "snapshots" / f"{sid}.files.json").read_bytes()) for sid in b_snaps}
    b_objects = objects_of(project, list(b_snaps))
    b_prod = tree(project.root / "prod" / "b")

    for n in range(3):  # a deploys and prunes with keep_last 1: b's snapshot is not a's to count or delete
        bump(project, text=f"\n# a {n}\n")
        ok(project.run("deploy", "--profile", "a"))
    ok(project.run("prune", "--profile", "a"))
    assert len(snapshots_of(project, "a")) == 1
    assert {sid: ((project.backups / "snapshots" / f"{sid}.json").read_bytes(),
                  (project.backups / "snapshots" / f"{sid}.files.json").read_bytes()) for sid in b_snaps} == b_store
    assert objects_of(project, list(b_snaps)) == b_objects

    code, listed = project.json("backups", "--profile", "a")
    assert code == 0 and b_snap not in {s["id"] for s in listed["snapshots"]}
    assert all(s["id"] in snapshots_of(project, "a") for s in listed["snapshots"])

    a_prod, store = tree(project.root / "prod" / "a"), tree(project.backups)
    proc = project.run("rollback", "--profile", "a", "--to", b_snap)
    assert proc.returncode == 7, proc.stderr
    assert (f"snapshot {b_snap} backs up another target ({project.root / 'prod' / 'b'}), not "
            f"{project.root / 'prod' / 'a'}: roll it back with the profile that deploys there") in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = project.run("rollback", "--profile", "a", "--to", b_release)
    assert proc.returncode == 7 and "no snapshot matches" in proc.stderr, proc.stderr
    proc = project.run("diff", "--profile", "a", "--release", b_release)
    assert proc.returncode == 7 and "Traceback" not in proc.stderr, proc.stderr
    assert tree(project.root / "prod" / "a") == a_prod and tree(project.backups) == store

    assert tree(project.root / "prod" / "b") == b_prod
    ok(project.run("rollback", "--profile", "b"))  # b's backup is whole: its own rollback restores it
    assert (project.root / "prod" / "b" / "workflow" / "plan.py").read_text().endswith("# b only 1\n")


def test_snapshots_from_before_targets_were_recorded_count_as_the_targets_only_while_no_other_is_known(
        project: Project) -> None:
    """A header without `target` (an older MCP Deploy wrote it) is this target's while the store holds no
    other target's snapshot; once it does, nobody can tell whose it is: it is listed by no profile, restored
    by none, and kept (with its objects) by every prune."""
    two_profiles(project)
    for n in range(2):
        bump(project, text=f"\n# a {n}\n")
        ok(project.run("deploy", "--profile", "a"))
    (legacy,) = snapshots_of(project, "a")
    header = project.backups / "snapshots" / f"{legacy}.json"
    data = json.loads(header.read_text())
    del data["target"]
    header.write_text(json.dumps(data))
    code, listed = project.json("backups", "--profile", "a")
    assert code == 0 and [s["id"] for s in listed["snapshots"]] == [legacy]
    ok(project.run("rollback", "--profile", "a", "--dry-run"))
    b_src = project.root / "dev-b" / "workflow" / "plan.py"
    for n in range(2):  # b deploys twice: now the store holds another target's snapshot
        b_src.write_text(b_src.read_text() + f"\n# b {n}\n")
        ok(project.run("deploy", "--profile", "b"))
    kept = header.read_bytes()
    objects = objects_of(project, [legacy])
    for n in range(2):  # keep_last 1 would expire it, were it a's
        bump(project, text=f"\n# a again {n}\n")
        ok(project.run("deploy", "--profile", "a"))
    for name in ("a", "b"):
        ok(project.run("prune", "--profile", name))
        code, listed = project.json("backups", "--profile", name)
        assert legacy not in {s["id"] for s in listed["snapshots"]} and listed["other_targets"] >= 1
    assert header.read_bytes() == kept and objects_of(project, [legacy]) == objects
    proc = project.run("rollback", "--profile", "a", "--to", legacy)
    assert proc.returncode == 7 and "does not record the target it backs up" in proc.stderr, proc.stderr


def rollback_target(project: Project) -> Path:
    """The manifest of the snapshot `rollback` restores by default (two deploys made)."""
    code, listed = project.json("backups")
    assert code == 0 and listed["rollback_target"]
    return project.backups / "snapshots" / f"{listed['rollback_target']}.files.json"


def test_a_rollback_restores_set_id_bits_only_where_allowed(project: Project) -> None:
    """A snapshot (hand-edited, or taken under an allow_setid since dropped) with a setuid file: the rollback
    strips the bits, as a deploy does, unless allow_setid names the file."""
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    manifest = rollback_target(project)
    files = read_manifest(manifest)
    files["server.py"]["mode"] = 0o6755
    write_manifest(manifest, files)
    proc = ok(project.run("rollback"))
    assert stat.S_IMODE(os.stat(project.target / "server.py").st_mode) == 0o755
    assert "restored 1 file(s) without their setuid/setgid bits: server.py" in proc.stdout
    bump(project, text="\n# again\n")
    ok(project.run("deploy"))
    project.write_config(allow_setid=["server.py"])
    manifest = rollback_target(project)
    files = read_manifest(manifest)
    files["server.py"]["mode"] = 0o6755
    write_manifest(manifest, files)
    ok(project.run("rollback"))
    assert stat.S_IMODE(os.stat(project.target / "server.py").st_mode) == 0o6755


@pytest.mark.parametrize("path,link", [("templates/passwd.json", "/etc/passwd"),
                                       ("workflow/up.py", "../../outside/victim"),
                                       ("escape", ".."), ("templates/deep.json", "../templates/../../x")])
def test_a_snapshot_describing_a_link_out_of_the_target_is_refused_and_nothing_is_touched(
        project: Project, path: str, link: str) -> None:
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    manifest = rollback_target(project)
    files = read_manifest(manifest)
    data = os.fsencode(link)
    files[path] = {"path": path, "size": len(data), "mode": 0o777, "sha256": hashlib.sha256(data).hexdigest(),
                   "link": link}
    write_manifest(manifest, files)
    before = {"prod": tree(project.target.parent), "store": tree(project.backups), "state": tree(project.state)}
    for args in (("rollback",), ("rollback", "--dry-run"), ("rollback", "--to", manifest.name[:-len(".files.json")])):
        proc = project.run(*args)
        assert proc.returncode == 5, (args, proc.stdout, proc.stderr)
        assert (f"{manifest}: snapshot {manifest.name[:-len('.files.json')]} describes {path} as a symlink to "
                f"{link}, which leads outside the target; MCP Deploy never deploys such a link") in proc.stderr
        assert "Traceback" not in proc.stderr
    lock = target_lock_path(project.target).name
    after = {"prod": tree(project.target.parent), "store": tree(project.backups), "state": tree(project.state)}
    for side in (before, after):
        side["prod"] = {k: v for k, v in side["prod"].items() if k != lock}  # each command writes its pid there
        side["state"] = {k: v for k, v in side["state"].items() if k != "lock"}
    assert after == before


@pytest.mark.parametrize("inside", ["templates", "server.py"])
def test_a_snapshot_with_a_file_inside_another_entry_is_refused_and_nothing_is_touched(
        project: Project, inside: str) -> None:
    """`nd` a link to `templates` (or the file server.py) and `nd/evil.json` (server.py/evil.json) beside
    it: no scan makes that. The rollback used to fail at the stage (exit 1, `File exists`), after
    staging, depending on the order of the writes; it is refused as a damaged snapshot before any."""
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    manifest = rollback_target(project)
    sid = manifest.name[:-len(".files.json")]
    files = read_manifest(manifest)
    holder = "nd" if inside == "templates" else "server.py"
    if holder == "nd":
        data = inside.encode()
        files["nd"] = {"path": "nd", "size": len(data), "mode": 0o777, "sha256": hashlib.sha256(data).hexdigest(),
                       "link": inside}
    files[f"{holder}/evil.json"] = {**files["templates/plan.json"], "path": f"{holder}/evil.json"}
    write_manifest(manifest, files)
    before = {"prod": tree(project.target.parent), "store": tree(project.backups), "state": tree(project.state)}
    proc = project.run("rollback")
    assert proc.returncode == 5, (proc.stdout, proc.stderr)
    assert (f"{manifest}: snapshot {sid} is not one MCP Deploy took ({holder}/evil.json lies inside {holder}, "
            "which is a file or symlink of the same release); nothing was touched") in proc.stderr
    assert "Traceback" not in proc.stderr
    lock = target_lock_path(project.target).name
    after = {"prod": tree(project.target.parent), "store": tree(project.backups), "state": tree(project.state)}
    for side in (before, after):
        side["prod"] = {k: v for k, v in side["prod"].items() if k != lock}
        side["state"] = {k: v for k, v in side["state"].items() if k != "lock"}
    assert after == before


def test_a_damaged_snapshot_of_another_target_still_stops_retention_after_a_deploy(project: Project) -> None:
    """`a` keeps one snapshot, `b` (same source, one store) five. `b`'s first snapshot already references
    every object `a`'s expired one holds, so nothing would be deleted; retention must still read `b`'s
    damaged later snapshot, refuse, and say so (it once stopped reading and expired `a`'s snapshot)."""
    profiles = two_profiles(project)
    profiles["b"].update(source="dev", retention={"keep_last": 5})
    project.config.write_text(yaml.safe_dump({"profiles": profiles}, sort_keys=False))
    for name in ("a", "b"):
        ok(project.run("deploy", "-p", name))
    bump(project)
    for name in ("a", "b"):
        ok(project.run("deploy", "-p", name))
    bump(project)
    ok(project.run("deploy", "-p", "b"))
    damaged = max(snapshots_of(project, "b"))
    (project.backups / "snapshots" / f"{damaged}.files.json").write_text("garbage")
    kept = sorted(p.name for p in (project.backups / "snapshots").iterdir())
    bump(project)
    code, result = project.json("deploy", "-p", "a")
    assert code == 0 and result["changed"]
    assert any(f"{damaged}.files.json: snapshot manifest is damaged" in n and "prune refuses" in n
               for n in result["notes"]), result["notes"]
    now = sorted(p.name for p in (project.backups / "snapshots").iterdir())
    assert set(kept) <= set(now)  # nothing expired while a snapshot cannot be read


def test_a_directory_in_place_of_an_expired_snapshots_file_is_a_clear_refusal(project: Project) -> None:
    """Prune removes an expired snapshot's three files; a directory standing at one of them stopped it with
    exit 70 (an internal error) and a raw IsADirectoryError. It is refused, named, and left as it is."""
    project.write_config(retention={"keep_last": 10})  # the deploys keep every snapshot: `prune` expires below
    for _ in range(3):
        ok(project.run("deploy"))
        bump(project)
    ok(project.run("deploy"))
    oldest = min(p.name[:-len(".files.json")] for p in (project.backups / "snapshots").glob("*.files.json"))
    refs = project.backups / "snapshots" / f"{oldest}.refs"
    refs.unlink(missing_ok=True)
    refs.mkdir()
    (refs / "keep.txt").write_text("not the store's")
    project.write_config(retention={"keep_last": 1})
    proc = project.run("prune")
    assert proc.returncode == 5, (proc.stdout, proc.stderr)
    assert f"{refs}: a directory stands where the store keeps a snapshot's file" in proc.stderr
    assert "Traceback" not in proc.stderr and (refs / "keep.txt").read_text() == "not the store's"
