"""Plan first, and the drift guard: a managed file edited in production is never overwritten silently."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO, Project, bump, ok, tree


def edit_in_production(project: Project) -> bytes:
    ok(project.run("deploy"))
    server = project.target / "server.py"
    server.write_bytes(server.read_bytes() + b"# hot fix made on the server\n")
    bump(project)  # an unrelated change in the source
    return server.read_bytes()


def test_a_hand_edit_is_shown_refused_and_kept_by_the_backup_when_overwritten(project: Project) -> None:
    edited = edit_in_production(project)
    preview = ok(project.run("deploy", "--dry-run"))
    assert "  ! server.py (edited in production since it was deployed)" in preview.stdout
    code, status = project.json("status")
    assert code == 0 and status["drift"] == ["server.py"]
    before = tree(project.target)
    refused = project.run("deploy")
    assert refused.returncode == 4, refused.stderr
    assert (f"{project.target}: 1 managed file(s) were edited in production since they were deployed: server.py; "
            "the deploy would overwrite them: copy the edits into the source, or pass --overwrite-drift "
            "(the backup keeps the edited files; see `invoke backups`)") in refused.stderr
    assert tree(project.target) == before
    code, done = project.json("deploy", "--overwrite-drift")
    assert code == 0 and done["changed"]
    assert (project.target / "server.py").read_bytes() == (project.source / "server.py").read_bytes()
    assert any("overwriting 1 file(s) edited in production: server.py" in n for n in done["notes"])
    ok(project.run("rollback", "--to", done["snapshot_id"]))  # the backup kept the hand edit
    assert (project.target / "server.py").read_bytes() == edited


def test_a_managed_file_deleted_by_hand_is_drift_too(project: Project) -> None:
    ok(project.run("deploy"))
    (project.target / "agents.json").unlink()
    bump(project)
    proc = project.run("deploy")
    assert proc.returncode == 4 and "were edited in production since they were deployed: agents.json" in proc.stderr
    assert not (project.target / "agents.json").exists()


def test_a_hand_edit_the_source_already_has_is_no_conflict(project: Project) -> None:
    ok(project.run("deploy"))
    bump(project, "server.py", "\n# the same fix, made in both places\n")
    (project.target / "server.py").write_bytes((project.source / "server.py").read_bytes())
    bump(project)
    ok(project.run("deploy"))
    assert project.json("status")[1]["drift"] == []


def test_the_plan_is_printed_before_the_work_then_progress_then_the_result(project: Project) -> None:
    ok(project.run("deploy"))
    bump(project)
    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), "deploy", "--config",
                           str(project.config)], cwd=project.root, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    out = proc.stdout
    assert proc.returncode == 0, out
    plan = out.index("Found 1 file to update: 0 added, 1 changed")
    assert out.index("Version: 0.1.0 -> 0.1.0") > plan
    assert plan < out.index("[backing_up] backup") < out.index("[verifying] verify") < out.index("Success.")
    assert out.count("Found 1 file to update") == 1  # not again with the result
