"""End-to-end: the real invoke CLI in a subprocess against real trees in tmp_path."""

from __future__ import annotations

import pytest

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import MANAGED, REPO, Project, bump, ok, read_manifest, tree


def test_first_deploy_creates_absent_target_with_exactly_the_managed_files(project: Project) -> None:
    assert not project.target.exists()
    proc = ok(project.run("deploy"))
    assert "Deployed 0.1.0" in proc.stdout
    files = tree(project.target)
    assert set(files) == set(MANAGED) | {"VERSION", "templates/", "workflow/"}
    for rel in MANAGED:
        assert files[rel] == (project.source / rel).read_bytes()
    version = project.version()
    assert version["version"] == "0.1.0"
    assert sorted(version["files_added"]) == sorted(MANAGED)
    assert version["deployed_from"] == str(project.source)
    assert version["previous_id"] is None and version["snapshot_id"] is None
    assert project.leftovers() == []


def test_unmanaged_source_files_and_secrets_never_reach_production(project: Project) -> None:
    proc = ok(project.run("deploy"))
    for rel in (".env", "config.local.json", "logs/server.log", "schemas/agents.schema.json"):
        assert (project.source / rel).exists()
        assert not (project.target / rel).exists(), rel
    assert "withheld" not in proc.stdout  # .env is not matched by the include globs at all
    (project.source / "templates" / ".env.json").write_text("{}")
    project.write_config(include=project.profile["include"] + ["**/.env*"])
    proc = ok(project.run("deploy"))
    assert "withheld 2 secret-looking file(s)" in proc.stdout
    assert not (project.target / ".env").exists() and not (project.target / "templates/.env.json").exists()


def test_deploy_of_a_change_keeps_user_files_byte_for_byte(project: Project) -> None:
    (project.source / "workflow" / "old.py").write_text("# dropped in the next release\n")
    ok(project.run("deploy"))
    first = project.version()
    user = {"config.local.json": b'{"token": "mine"}\n', "logs/today.log": b"line 1\n",
            "templates/custom.json": b'{"user": "template"}\n'}
    for rel, data in user.items():
        (project.target / rel).parent.mkdir(exist_ok=True)
        (project.target / rel).write_bytes(data)
    bump(project)
    (project.source / "workflow" / "old.py").unlink()
    ok(project.run("deploy"))
    for rel, data in user.items():
        assert (project.target / rel).read_bytes() == data
    assert (project.target / "workflow/plan.py").read_bytes() == (project.source / "workflow/plan.py").read_bytes()
    assert not (project.target / "workflow/old.py").exists()  # removed from source: removed from production
    version = project.version()
    assert version["files_changed"] == ["workflow/plan.py"]
    assert version["files_removed"] == ["workflow/old.py"]
    assert version["previous_id"] == first["deploy_id"]
    assert version["snapshot_id"]
    assert project.leftovers() == []


def test_nothing_to_deploy_exits_zero_without_a_new_version(project: Project) -> None:
    ok(project.run("deploy"))
    before, records = project.version(), len(project.history())
    proc = ok(project.run("deploy"))
    assert "Nothing to deploy" in proc.stdout
    assert project.version() == before
    assert len(project.history()) == records
    code, data = project.json("deploy")
    assert code == 0 and data["changed"] is False and data["deploy_id"] is None


def test_dry_run_changes_nothing_at_all(project: Project) -> None:
    ok(project.run("deploy"))
    bump(project)
    (project.target / "config.local.json").write_text("{}")
    everything = lambda: {d: tree(project.root / d) for d in ("prod", "state", "backups", "dev")}  # noqa: E731
    before = everything()
    proc = ok(project.run("deploy", "--dry-run"))
    assert "~ workflow/plan.py" in proc.stdout and "nothing was written" in proc.stdout
    assert everything() == before
    assert project.log.read_bytes().count(b"\n") == 1


def test_dry_run_before_first_deploy_creates_no_directory(project: Project) -> None:
    code, data = project.json("deploy", "--dry-run")
    assert code == 0 and data["dry_run"] is True and data["plan"]["counts"]["added"] == len(MANAGED)
    assert sorted(p.name for p in project.root.iterdir()) == ["deploy.yaml", "dev"]


def test_plan_digest_deploys_only_the_previewed_plan(project: Project) -> None:
    _, preview = project.json("deploy", "--dry-run")
    digest = preview["plan"]["digest"]
    bump(project)  # the source moves on after the preview
    proc = project.run("deploy", "--plan", digest)
    assert proc.returncode == 6
    assert "plan changed since it was previewed" in proc.stderr
    assert not project.target.exists()
    _, preview = project.json("deploy", "--dry-run")
    ok(project.run("deploy", "--plan", preview["plan"]["digest"]))
    assert project.target.exists()


def test_rollback_restores_previous_managed_files_and_keeps_user_edits(project: Project) -> None:
    ok(project.run("deploy"))
    v1 = project.managed()
    first = project.version()
    bump(project)
    (project.source / "templates" / "extra.json").write_text('{"new": true}')
    ok(project.run("deploy"))
    (project.target / "config.local.json").write_bytes(b'{"edited": "after deploy"}')
    proc = ok(project.run("rollback"))
    assert "Rolled back" in proc.stdout
    assert project.managed() == v1
    assert not (project.target / "templates/extra.json").exists()
    assert (project.target / "config.local.json").read_bytes() == b'{"edited": "after deploy"}'
    version = project.version()
    assert version["version"] == "0.1.0" and version["operation"] == "rollback"
    assert version["release"] == first["deploy_id"]
    assert project.leftovers() == []
    # nothing earlier than the first release: a clear refusal, production untouched
    proc = project.run("rollback")
    assert proc.returncode == 7 and "no earlier release" in proc.stderr
    assert project.managed() == v1


def test_rollback_to_a_named_snapshot_and_dry_run(project: Project) -> None:
    ok(project.run("deploy"))
    bump(project, text="# two\n")
    ok(project.run("deploy"))
    v2 = project.managed()
    bump(project, text="# three\n")
    ok(project.run("deploy"))
    _, listing = project.json("backups")
    snap_of_v2 = next(s for s in listing["snapshots"] if s["release"] == project.version()["previous_id"])
    before = tree(project.target)
    code, data = project.json("rollback", "--to", snap_of_v2["id"], "--dry-run")
    assert code == 0 and data["plan"]["changed"] == ["workflow/plan.py"]
    assert tree(project.target) == before
    ok(project.run("rollback", "--to", snap_of_v2["id"]))
    assert project.managed() == v2
    proc = project.run("rollback", "--to", "no-such-thing")
    assert proc.returncode == 7 and "no snapshot matches 'no-such-thing'" in proc.stderr


def test_failing_validator_leaves_production_unchanged(project: Project) -> None:
    ok(project.run("deploy"))
    before = tree(project.target)
    (project.source / "templates" / "plan.json").write_text('{"title": ')
    (project.source / "workflow" / "plan.py").write_text("def run(:\n")
    proc = project.run("deploy")
    assert proc.returncode == 1
    assert "deploy failed at validate" in proc.stderr
    assert "templates/plan.json:1:11: invalid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree(project.target) == before
    assert project.leftovers() == []
    last = project.history()[-1]
    assert last["event"] == "failure" and last["failed_step"] == "validate"


def test_failing_verify_swaps_the_old_tree_back(project: Project) -> None:
    ok(project.run("deploy"))
    (project.target / "config.local.json").write_text('{"keep": 1}')
    before = tree(project.target)
    agents = json.loads((project.source / "agents.json").read_text())
    agents["agents"][0]["workflow"] = "no-such-workflow"  # valid JSON, broken server
    (project.source / "agents.json").write_text(json.dumps(agents))
    proc = project.run("deploy", "--json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["ok"] is False and data["step"] == "verify" and data["exit_code"] == 1
    assert "deploy failed at verify: verify command: `" in proc.stderr
    assert "exited 1: KeyError: 'no-such-workflow'" in proc.stderr
    assert tree(project.target) == before
    assert project.leftovers() == []
    assert project.history()[-1]["failed_step"] == "verify"
    _, listing = project.json("backups")
    assert len(listing["snapshots"]) == 0  # the failed deploy's backup was redundant and is gone


@pytest.mark.parametrize("verify_passes", [True, False])
def test_files_a_running_server_writes_during_the_deploy_are_kept(project: Project, verify_passes: bool) -> None:
    """User files written into production mid-deploy (new, in new directories, replaced by rename) stay
    exactly as written, whether the deploy goes through or is undone."""
    ok(project.run("deploy"))
    (project.target / "logs").mkdir()
    (project.target / "logs" / "early.log").write_text("before\n")
    (project.target / "config.local.json").write_text("v1")
    live = '"$MCP_DEPLOY_TARGET"'
    project.profile["verify"].append({"type": "command", "run": " && ".join([
        f"echo late > {live}/logs/late.log",                      # a new file in an existing directory
        f"mkdir -p {live}/cache/deep && echo x > {live}/cache/deep/x",  # a new directory
        f"printf v2 > {live}/.tmp && mv {live}/.tmp {live}/config.local.json",  # replaced by rename: new inode
    ] + ([] if verify_passes else ["exit 3"]))})
    project.write_config()
    bump(project)
    proc = project.run("deploy")
    assert proc.returncode == (0 if verify_passes else 1), proc.stderr
    assert (project.target / "logs" / "late.log").read_text() == "late\n"
    assert (project.target / "logs" / "early.log").read_text() == "before\n"
    assert (project.target / "cache" / "deep" / "x").read_text() == "x\n"
    assert (project.target / "config.local.json").read_text() == "v2"
    assert project.leftovers() == []


def test_corrupt_version_file_is_reported_and_replaced(project: Project) -> None:
    ok(project.run("deploy"))
    (project.target / "VERSION").write_text("{not json")
    proc = ok(project.run("status"))
    assert "VERSION is damaged" in proc.stdout
    bump(project)
    ok(project.run("deploy"))
    assert project.version()["version"] == "0.1.0"


def test_json_output_is_one_object_and_progress_goes_to_stderr_only_in_text_mode(project: Project) -> None:
    proc = project.run("deploy", "--json")
    data = json.loads(proc.stdout)
    assert data["ok"] is True and data["changed"] is True and data["version"] == "0.1.0"
    assert proc.stderr == ""
    proc = ok(project.run("deploy"))
    assert "[checking] preflight" in proc.stderr or "Nothing to deploy" in proc.stdout


def test_status_history_backups_and_diff(project: Project) -> None:
    code, status = project.json("status")
    assert code == 0 and status["deployed"] is False and status["pending"]["counts"]["added"] == len(MANAGED)
    ok(project.run("deploy"))
    bump(project)
    code, status = project.json("status")
    assert status["version"] == "0.1.0" and status["pending"]["changed"] == ["workflow/plan.py"]
    assert status["summary"].startswith("Production v0.1.0 (") and "1 file pending deployment." in status["summary"]
    (project.target / "server.py").write_text("# edited in production\n")
    code, status = project.json("status")
    assert status["drift"] == ["server.py"]
    assert status["lock"] is None and status["last"]["event"] == "deploy"
    proc = ok(project.run("diff"))
    assert "+# changed" in proc.stdout and "--- production/workflow/plan.py" in proc.stdout
    ok(project.run("deploy", "--overwrite-drift"))  # the hand edit in production goes (the backup keeps it)
    code, hist = project.json("history", "--limit", "1")
    assert len(hist["records"]) == 1 and hist["records"][0]["event"] == "deploy"
    # written by the record step itself, so it times every step before it
    assert set(hist["records"][0]["steps"]) == {"lock", "preflight", "backup", "stage", "validate", "commit", "verify",
                                                "record"}


def test_prune_applies_keep_last_and_never_drops_the_rollback_target(project: Project) -> None:
    project.write_config(retention={"keep_last": 1})
    ok(project.run("deploy"))
    for i in range(3):
        bump(project, text=f"# {i}\n")
        ok(project.run("deploy"))
    _, listing = project.json("backups")
    assert len(listing["snapshots"]) == 1  # retention ran after each deploy
    assert listing["snapshots"][0]["rollback_target"] is True
    code, pruned = project.json("prune", "--dry-run")
    assert code == 0 and pruned["removed"] == []
    # the deploys' own garbage collection left exactly the objects the kept snapshot needs
    assert pruned["objects_removed"] == 0
    kept = read_manifest(next((project.backups / "snapshots").glob("*.files.json")))
    stored = {p.name for p in (project.backups / "objects").rglob("*") if p.is_file()}
    assert stored == {e["sha256"] for e in kept.values()}
    ok(project.run("rollback"))


def test_console_script_reads_deploy_yaml_from_cwd_or_env(project: Project) -> None:
    script = os.path.join(os.path.dirname(sys.executable), "mcp-deploy")
    proc = subprocess.run([script, "deploy", "--dry-run"], cwd=project.root, capture_output=True, text=True)
    assert proc.returncode == 0 and "Found 9 files" in proc.stdout
    elsewhere = project.root / "dev"
    proc = subprocess.run([script, "status", "--json"], cwd=elsewhere, capture_output=True, text=True,
                          env={**os.environ, "MCP_DEPLOY_CONFIG": str(project.config)})
    assert proc.returncode == 0 and json.loads(proc.stdout)["target"] == str(project.target)
    proc = subprocess.run([script, "status"], cwd=elsewhere, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "MCP_DEPLOY_CONFIG"})
    assert proc.returncode == 2 and "config file not found" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([script, "status", "--config", str(elsewhere)], cwd=elsewhere, capture_output=True,
                          text=True)
    assert proc.returncode == 2, proc.stderr
    assert f"error: {elsewhere}: is a directory, not a config file (from --config)" in proc.stderr


def test_help_documents_every_task_and_flag() -> None:
    listing = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), "--list"],
                             capture_output=True, text=True).stdout
    for name in ("deploy", "rollback", "status", "diff", "history", "backups", "prune"):
        assert name in listing
    help_text = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), "--help", "deploy"],
                               capture_output=True, text=True).stdout
    for flag in ("--dry-run", "--json", "--profile", "--config", "--plan", "--wait", "--verbose"):
        assert flag in help_text
    assert "Exit codes" in help_text


def test_bad_flag_values_are_one_line_errors(project: Project) -> None:
    for args, expected in ((("history", "--limit", "abc"), "--limit: expected a whole number, got 'abc'"),
                           (("deploy", "--wait", "-1"), "--wait: expected a finite number of seconds, 0 or more"),
                           (("deploy", "--profile", "nope"), "--profile: no profile named 'nope'")):
        proc = project.run(*args)
        assert proc.returncode == 2, args
        assert expected in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_uncreatable_state_dir_is_refused_cleanly(project: Project) -> None:
    (project.root / "blocker").write_text("a file, not a directory")
    project.write_config(state_dir="blocker/state")
    proc = project.run("deploy")
    assert proc.returncode == 4 and "cannot create the lock" in proc.stderr and "Traceback" not in proc.stderr
    assert not project.target.exists()


def test_a_deploy_reads_only_the_files_that_changed_since_the_last_run(project: Project) -> None:
    """The hash cache is saved by every locked run: without it, each deploy re-reads both whole trees."""
    from deploylib import operations

    def age(root: Path, old: float = time.time() - 3600) -> None:
        """Out of the racy window, where the cache is never trusted."""
        for path in [root, *root.rglob("*")]:
            os.utime(path, (old, old), follow_symlinks=False)

    hashed: list[str] = []
    sink = lambda kind, data: hashed.append(data["path"]) if data.get("step") == "hash" else None  # noqa: E731
    ok(project.run("deploy"))
    age(project.source)
    age(project.target)
    operations.deploy(project.config, on_event=sink)  # nothing to do; learns both trees' hashes
    assert len(hashed) == 2 * len(MANAGED)  # each managed file in source and production
    bump(project)
    age(project.source / "workflow/plan.py", time.time() - 1800)
    hashed.clear()
    result = operations.deploy(project.config, on_event=sink)
    assert result.changed and hashed == [str(project.source / "workflow/plan.py")]


@pytest.mark.parametrize("age_ns", [3600 * 10**9, 1_500_000_123], ids=["an hour old", "built 1.5 s ago"])
def test_the_hash_of_a_file_the_deploy_wrote_is_trusted_until_it_is_edited(project: Project, age_ns: int) -> None:
    """A deployed copy keeps its source's mtime (when that is out of the racy window, or a second old with a
    sub-second part: a build's fresh artifact), so the next run trusts the hash the deploy computed while
    writing it instead of reading the file again. A hand edit in production, even one of the same size
    landing in the same clock tick as the deploy's own write, stamps the file with a newer time than the one
    recorded: it is read again and reported as drift."""
    from deploylib import operations

    ok(project.run("deploy"))
    bump(project)
    source = project.source / "workflow/plan.py"
    built = time.time_ns() - age_ns
    os.utime(source, ns=(built, built))
    written = time.time_ns()
    ok(project.run("deploy"))
    deployed = project.target / "workflow/plan.py"
    assert os.stat(deployed).st_mtime_ns == built  # the copy keeps the source's mtime
    while time.time_ns() - built < 2_100_000_000:  # the next run trusts nothing within the racy window
        time.sleep(0.1)

    hashed: list[str] = []
    sink = lambda kind, data: hashed.append(data["path"]) if data.get("step") == "hash" else None  # noqa: E731
    operations.deploy(project.config, dry_run=True, on_event=sink)
    assert str(deployed) not in hashed  # trusted: the deploy hashed the bytes it wrote

    # same size, new bytes, and the mtime a coarse clock gives an edit in the same tick as the deploy's last
    # write to the file: that write's time as the filesystem recorded it (its mtime, or, when the deploy
    # stamped an older mtime afterwards, the ctime of that stamping)
    st = os.stat(deployed)
    tick = st.st_mtime_ns if st.st_mtime_ns >= written else st.st_ctime_ns
    data = deployed.read_bytes()
    deployed.write_bytes(data[:-1] + (b"x" if data[-1:] != b"x" else b"y"))
    os.utime(deployed, ns=(tick, tick))
    code, status = project.json("status")
    assert code == 0 and status["drift"] == ["workflow/plan.py"]
    hashed.clear()
    operations.deploy(project.config, dry_run=True, on_event=sink)
    assert str(deployed) in hashed


def test_a_copy_is_stamped_with_a_recent_source_time_only_where_no_later_write_can_share_it() -> None:
    """Within the racy window only a time a second old with a sub-second part: a filesystem that keeps whole
    seconds (or two) could give a later write the same stamp as a whole-second time."""
    from deploylib.sources import stampable

    now = 1_700_000_000 * 10**9 + 500_000_000
    assert stampable(now - 3 * 10**9, now) and stampable(now - 3 * 10**9 - 500_000_000, now)  # out of the window
    assert stampable(now - 1_500_000_000 + 7, now)
    assert not stampable(now - 1_500_000_000, now)  # a whole second: 1,699,999,999.000000000
    assert not stampable(now - 500_000_007, now)  # too recent


def _reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """The source files a deploy hashes alone and the ones it copies (spooled or staged), by path."""
    from deploylib import manifest, sources

    seen: dict[str, list[str]] = {"hashed": [], "copied": []}
    real_hash, real_copy = manifest.sha256_file, sources.copy_with_hash

    def hashing(path, *a, **k):  # type: ignore[no-untyped-def]
        seen["hashed"].append(str(path))
        return real_hash(path, *a, **k)

    def copying(src, *a, **k):  # type: ignore[no-untyped-def]
        seen["copied"].append(str(src))
        return real_copy(src, *a, **k)

    monkeypatch.setattr(manifest, "sha256_file", hashing)
    monkeypatch.setattr(sources, "copy_with_hash", copying)
    monkeypatch.setattr(manifest, "SPOOL_MIN", 10)  # every file but the tiniest counts as large here
    return seen


def test_a_large_changed_source_file_is_read_once(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Preflight hashes it by copying it into the stage; the stage commits that copy instead of reading the
    source again. A file that turns out unchanged leaves no copy behind."""
    from deploylib import operations

    ok(project.run("deploy"))
    seen = _reads(monkeypatch)
    bump(project)
    source = project.source / "workflow/plan.py"
    os.chmod(source, 0o750)
    result = operations.deploy(project.config)
    assert result.changed and result.plan["counts"]["changed"] == 1
    assert seen["copied"] == [str(source)] and str(source) not in seen["hashed"]
    deployed = project.target / "workflow/plan.py"
    assert deployed.read_bytes() == source.read_bytes() and (deployed.stat().st_mode & 0o777) == 0o750
    assert project.leftovers() == []

    seen["copied"].clear()
    source.touch()  # new mtime, same bytes: hashed (by spooling), nothing to deploy, the copy dropped
    result = operations.deploy(project.config)
    assert not result.changed and seen["copied"] == [str(source)]
    assert project.leftovers() == []
    seen["copied"].clear()
    operations.deploy(project.config, dry_run=True)  # a preview writes nothing: it only hashes
    assert seen["copied"] == [] and project.leftovers() == []


def test_an_edit_after_a_large_file_was_spooled_aborts_the_deploy(project: Project,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The spooled copy holds the planned bytes, but the promise is the plan that was previewed, with the
    source as it was: an edit after preflight still aborts, and nothing is left behind."""
    from deploylib import operations
    from deploylib.errors import DeployError

    ok(project.run("deploy"))
    _reads(monkeypatch)
    before = project.managed()
    bump(project)
    source = project.source / "workflow/plan.py"

    def edit_after_preflight(kind: str, data: dict[str, object]) -> None:
        if kind == "step" and data.get("step") == "backup":
            with open(source, "ab") as f:
                f.write(b"# late edit\n")

    with pytest.raises(DeployError, match="changed while being deployed"):
        operations.deploy(project.config, on_event=edit_after_preflight)
    assert project.managed() == before and project.leftovers() == []


def test_a_copy_is_stamped_when_the_source_time_is_old_enough_once_the_copy_is_written(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large artifact deployed right after its build: the source's mtime is too recent when the copy starts,
    not when the copy (of a gigabyte, here slowed down) is done; then the copy keeps it and is trusted."""
    from deploylib import operations, sources

    ok(project.run("deploy"))
    bump(project)
    source = project.source / "workflow/plan.py"
    built = time.time_ns() - 200_000_123
    os.utime(source, ns=(built, built))
    real = sources.copy_with_hash

    def slow(*a, **k):  # type: ignore[no-untyped-def]
        time.sleep(1.1)
        return real(*a, **k)

    monkeypatch.setattr(sources, "copy_with_hash", slow)
    assert operations.deploy(project.config).changed
    deployed = project.target / "workflow/plan.py"
    assert os.stat(deployed).st_mtime_ns == built
    while time.time_ns() - built < 2_100_000_000:
        time.sleep(0.1)
    hashed: list[str] = []
    sink = lambda kind, data: hashed.append(data["path"]) if data.get("step") == "hash" else None  # noqa: E731
    operations.deploy(project.config, dry_run=True, on_event=sink)
    assert str(deployed) not in hashed
