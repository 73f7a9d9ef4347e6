"""A dry run (and the MCP preview) says when the real run would refuse its plan (exit 4), and why: a preview
that promises a plan the deploy then refuses is a preview nobody can act on. It stays a dry run: exit 0,
the plan shown, nothing written anywhere."""

from __future__ import annotations

from conftest import Project, bump, ok, tree
from deploylib import operations, report

AWS_KEY = 'KEY = "AKIA' + "Q" * 16 + '"\n'  # built at run time: this file holds no key


def dry_run_refusal(project: Project, *flags: str) -> str | None:
    """Both faces of one dry run: the one line people read and the --json field programs read."""
    before = tree(project.root)
    text = ok(project.run("deploy", "--dry-run", *flags)).stdout
    code, data = project.json("deploy", "--dry-run", *flags)
    assert code == 0 and not data["changed"] and tree(project.root) == before
    if data["would_refuse"] is None:
        assert "Apply exactly this plan with --plan" in text and "would refuse" not in text
        return None
    assert f"A real run would refuse this plan (exit 4): {data['would_refuse']}" in text
    assert data["message"] == f"the deploy would be refused (exit 4): {data['would_refuse']}"
    return str(data["would_refuse"])


def refused_for_real(project: Project, why: str) -> None:
    before = tree(project.target)
    proc = project.run("deploy")
    assert proc.returncode == 4 and why in proc.stderr, proc.stderr
    assert tree(project.target) == before


def test_a_user_file_in_the_way_is_named_by_the_dry_run_as_the_deploy_will_name_it(project: Project) -> None:
    ok(project.run("deploy"))
    (project.source / "notes.json").write_text("{}\n")
    project.write_config(include=[*project.profile["include"], "notes.json"])
    (project.target / "notes.json").write_text('{"mine": true}\n')
    why = dry_run_refusal(project)
    assert why is not None and "did not deploy: notes.json" in why
    refused_for_real(project, why)
    assert dry_run_refusal(project, "--adopt", "notes.json") is None
    assert (project.target / "notes.json").read_text() == '{"mine": true}\n'


def test_a_hand_edit_makes_the_dry_run_say_the_deploy_would_refuse_unless_overwrite_drift(project: Project) -> None:
    ok(project.run("deploy"))
    server = project.target / "server.py"
    server.write_bytes(server.read_bytes() + b"# hot fix\n")
    bump(project)
    why = dry_run_refusal(project)
    assert why is not None and "were edited in production since they were deployed: server.py" in why
    refused_for_real(project, why)
    assert dry_run_refusal(project, "--overwrite-drift") is None


def test_a_secret_inside_a_changed_file_is_found_by_the_dry_run(project: Project) -> None:
    """The content scan was the real run's alone: a preview said "1 file would change" for a file with a key."""
    ok(project.run("deploy"))
    bump(project, text=AWS_KEY)
    why = dry_run_refusal(project)
    assert why is not None and "workflow/plan.py" in why and "AWS" in why
    refused_for_real(project, why)


def test_the_mcp_preview_says_the_deploy_would_be_refused_and_offers_no_digest(project: Project) -> None:
    ok(project.run("deploy"))
    bump(project, text=AWS_KEY)
    preview = operations.deploy(project.config, dry_run=True)
    summary = report.preview_summary(preview)
    assert preview.would_refuse and summary.endswith(f"The deploy would be refused: {preview.would_refuse}.")
    assert "plan_digest=" not in summary
    (project.source / "workflow" / "plan.py").write_text("# clean again\n")
    clean = operations.deploy(project.config, dry_run=True)
    assert clean.would_refuse is None and f"plan_digest={clean.plan['digest']}" in report.preview_summary(clean)


def test_nothing_to_do_is_never_a_refusal_even_beside_a_stray_user_file(project: Project) -> None:
    ok(project.run("deploy"))
    (project.target / "stray.txt").write_text("a user's file nobody plans to touch\n")
    code, data = project.json("deploy", "--dry-run")
    assert code == 0 and data["would_refuse"] is None and data["message"].startswith("nothing to deploy")
