"""What a release changed: `diff --release ID` against its predecessor, `diff --from A --to B` between any two,
through the real CLI, reading releases back from production and from the backup store."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from conftest import MANAGED, Project, bump, ok, tree

LOGO = bytes(range(256)) * 3  # binary: NULs inside


def _release(project: Project, version: str) -> dict[str, Any]:
    """Set the source's version and deploy it; the VERSION production then has."""
    path = project.source / "pyproject.toml"
    text = path.read_text()
    current = text.split('version = "')[1].split('"')[0]
    path.write_text(text.replace(f'version = "{current}"', f'version = "{version}"'))
    ok(project.run("deploy"))
    return project.version()


def _three_releases(project: Project) -> list[dict[str, Any]]:
    """0.1.0; 0.2.0 edits workflow/plan.py and adds a binary assets/logo.bin; 0.3.0 edits server.py."""
    project.write_config(include=project.profile["include"] + ["assets/*"])
    v1 = _release(project, "0.1.0")
    bump(project)
    (project.source / "assets").mkdir()
    (project.source / "assets" / "logo.bin").write_bytes(LOGO)
    v2 = _release(project, "0.2.0")
    bump(project, "server.py", "# tuned\n")
    v3 = _release(project, "0.3.0")
    return [v1, v2, v3]


def test_release_diff_shows_what_an_older_release_changed_against_the_one_before(project: Project) -> None:
    v1, v2, v3 = _three_releases(project)
    everything = tree(project.root)
    code, data = project.json("diff", "--release", "0.2.0")
    assert code == 0
    assert (data["old"]["kind"], data["old"]["release"], data["old"]["version"]) == ("snapshot", v1["release"], "0.1.0")
    assert (data["new"]["kind"], data["new"]["release"], data["new"]["version"]) == ("snapshot", v2["release"], "0.2.0")
    plan = data["plan"]
    assert (plan["added"], plan["changed"], plan["removed"]) == (
        ["assets/logo.bin"], ["pyproject.toml", "workflow/plan.py"], [])
    assert data["binary"] == {"assets/logo.bin": {"old": None, "new": len(LOGO)}}
    assert data["diffs"]["workflow/plan.py"].startswith(
        f"--- {v1['release']}/workflow/plan.py\n+++ {v2['release']}/workflow/plan.py\n")
    assert "\n+# changed\n" in data["diffs"]["workflow/plan.py"]
    assert '\n-version = "0.1.0"\n+version = "0.2.0"\n' in data["diffs"]["pyproject.toml"]
    text = ok(project.run("diff", "--release", v2["deploy_id"])).stdout
    assert text.startswith(f"Changes from 0.1.0 ({v1['release']}, snapshot ")
    assert "  + assets/logo.bin (768 B)\n" in text and "  ~ workflow/plan.py (" in text
    assert "Binary or large file assets/logo.bin differs (none -> 768 B)" in text
    assert "+# changed" in text
    # the live release: production against the snapshot of 0.2.0
    code, live = project.json("diff", "--release", "live")
    assert (live["old"]["version"], live["new"]["kind"], live["new"]["release"]) == ("0.2.0", "live", v3["release"])
    assert live["plan"]["changed"] == ["pyproject.toml", "server.py"] and live["plan"]["added"] == []
    assert live["diffs"]["server.py"].startswith(f"--- {v2['release']}/server.py\n+++ live/server.py\n")
    assert tree(project.root) == everything  # a diff reads: no file anywhere was written, not even a cache


def test_diff_from_to_compares_any_two_releases_or_snapshots(project: Project) -> None:
    v1, v2, v3 = _three_releases(project)
    _, listing = project.json("backups")
    (snap_v1,) = [s["id"] for s in listing["snapshots"] if s["release"] == v1["release"]]
    code, data = project.json("diff", "--from", "0.1.0", "--to", "0.3.0")
    assert code == 0 and data["new"]["kind"] == "live"
    expected = (["assets/logo.bin"], ["pyproject.toml", "server.py", "workflow/plan.py"], [])
    assert (data["plan"]["added"], data["plan"]["changed"], data["plan"]["removed"]) == expected
    by_ids = project.json("diff", "--from", snap_v1, "--to", v3["deploy_id"])[1]
    assert by_ids["plan"] == data["plan"] and by_ids["diffs"] == data["diffs"]
    assert project.json("diff", "--from", snap_v1)[1]["plan"] == data["plan"]  # --to defaults to live
    back = project.json("diff", "--from", "live", "--to", "0.1.0")[1]  # the other way: the logo goes
    assert back["plan"]["removed"] == ["assets/logo.bin"]
    assert back["binary"] == {"assets/logo.bin": {"old": len(LOGO), "new": None}}
    assert "\n-# tuned\n" in back["diffs"]["server.py"]
    same = ok(project.run("diff", "--from", v2["deploy_id"], "--to", "0.2.0")).stdout
    assert same.startswith("No changes from 0.2.0") and "all identical" in same


def test_the_first_release_is_compared_with_nothing(project: Project) -> None:
    ok(project.run("deploy"))
    code, data = project.json("diff", "--release", "live")
    assert code == 0 and data["old"]["kind"] == "nothing"
    assert sorted(data["plan"]["added"]) == sorted(MANAGED)
    server = data["diffs"]["server.py"]
    assert server.startswith("--- /dev/null\n+++ live/server.py\n")
    assert "".join(line[1:] for line in server.splitlines(keepends=True)[3:]) == \
        (project.source / "server.py").read_text()


def test_a_pruned_release_is_exit_7_saying_it_is_no_longer_kept(project: Project) -> None:
    project.write_config(retention={"keep_last": 1})
    versions = [_release(project, v) for v in ("0.1.0", "0.2.0", "0.3.0", "0.4.0")]
    _, listing = project.json("backups")
    assert {s["version"] for s in listing["snapshots"]} == {"0.3.0"}  # 0.1.0 and 0.2.0 were pruned
    before = tree(project.root)
    proc = project.run("diff", "--release", "0.1.0")
    assert proc.returncode == 7
    assert proc.stderr.strip().splitlines() == [
        f"error: {project.backups}: '0.1.0' is in the history, but its files are no longer kept (retention "
        f"removed its backup); compare releases that `invoke backups` lists, or keep more with retention in "
        f"{project.config}"]
    proc = project.run("diff", "--release", "0.3.0")  # kept, but the release before it is not
    assert proc.returncode == 7
    assert f"the release before {versions[2]['release']}, {versions[1]['release']}, is no longer kept" in proc.stderr
    code, data = project.json("diff", "--release", "no-such-thing")
    assert code == 7 and data["error_type"] == "ReleaseNotKept"
    assert "no release or snapshot matches 'no-such-thing'" in data["error"]
    assert ok(project.run("diff", "--release", "live")).stdout.startswith("Changes from 0.3.0")
    assert tree(project.root) == before


def test_a_damaged_backup_is_exit_5_not_a_diff(project: Project) -> None:
    original = (project.source / "workflow/plan.py").read_bytes()
    ok(project.run("deploy"))
    bump(project)
    ok(project.run("deploy"))
    _, listing = project.json("backups")
    snap = listing["snapshots"][0]["id"]
    sha = hashlib.sha256(original).hexdigest()
    obj = project.backups / "objects" / sha[:2] / sha  # the backed-up workflow/plan.py of the first release
    os.chmod(obj, 0o644)
    obj.write_bytes(original + b"# tampered\n")
    proc = project.run("diff", "--release", "live")
    assert proc.returncode == 5
    assert f"backup {snap} is damaged: workflow/plan.py: object {obj} is damaged" in proc.stderr
    assert "Traceback" not in proc.stderr and "tampered" not in proc.stdout


def test_bad_flags_are_usage_errors(project: Project) -> None:
    ok(project.run("deploy"))
    for args, message in (
        (("--release", "live", "--from", "0.1.0"), "--release compares a release with the one before it"),
        (("--to", "live"), "--to needs --from (or `invoke diff --release live` for what live changed)"),
        (("--release", " "), "--release: expected live, a snapshot id, deploy id or version"),
    ):
        proc = project.run("diff", *args)
        assert proc.returncode == 2, args
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith("error: ") and message in line, line
