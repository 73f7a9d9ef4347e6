"""Scenario 9: symlinks. Policy (README): deployed as links, never followed; a link leaving the source
root is refused; nothing is ever written through a link in production; a symlinked target is refused."""

from __future__ import annotations

import os

from conftest import Project, bump, ok, tree
from invariants import baseline, check


def test_a_loop_in_the_source_is_deployed_as_a_link_not_walked(project: Project) -> None:
    os.symlink("..", project.source / "workflow" / "loop")
    os.symlink("plan.py", project.source / "workflow" / "alias.py")
    project.write_config(include=project.profile["include"] + ["workflow/loop"])
    proc = ok(project.run("deploy"))
    assert os.readlink(project.target / "workflow" / "loop") == ".."
    assert os.readlink(project.target / "workflow" / "alias.py") == "plan.py"
    assert "Traceback" not in proc.stderr


def test_a_link_leaving_the_source_root_is_refused(project: Project) -> None:
    ok(project.run("deploy"))
    bump(project)
    base = baseline(project)
    before = tree(project.target)
    os.symlink("/etc/passwd", project.source / "templates" / "passwd.json")
    proc = project.run("deploy")
    assert proc.returncode == 4
    assert "templates/passwd.json: symlink points outside the source tree (/etc/passwd)" in proc.stderr
    assert tree(project.target) == before
    (project.source / "templates" / "passwd.json").unlink()
    check(project, base, expect="old")


def test_nothing_is_written_through_links_in_production(project: Project) -> None:
    ok(project.run("deploy"))
    outside = project.root / "outside"
    outside.mkdir()
    secret = outside / "precious.json"
    secret.write_text('{"precious": true}')
    # a file-level link where a managed file goes: replaced by the real file, the link's target untouched
    (project.target / "templates" / "plan.json").unlink()
    os.symlink(secret, project.target / "templates" / "plan.json")
    proc = project.run("deploy")  # a hand edit of a managed file (drift): refused, nothing written
    assert proc.returncode == 4 and "edited in production since they were deployed: templates/plan.json" in proc.stderr
    assert secret.read_text() == '{"precious": true}'
    ok(project.run("deploy", "--overwrite-drift"))
    assert not (project.target / "templates" / "plan.json").is_symlink()
    assert secret.read_text() == '{"precious": true}'
    # a directory-level link where managed files go: refused before anything changes
    (project.target / "workflow").rename(project.root / "workflow-aside")
    os.symlink(outside, project.target / "workflow")
    before = tree(outside)
    bump(project)
    proc = project.run("deploy")
    assert proc.returncode == 4
    assert "workflow: is a symlink in production" in proc.stderr and "never writes outside the target" in proc.stderr
    assert tree(outside) == before


def test_a_symlinked_target_is_refused(project: Project) -> None:
    real = project.root / "real-prod"
    real.mkdir()
    (project.root / "prod").mkdir()
    os.symlink(real, project.target)
    proc = project.run("deploy")
    assert proc.returncode == 2
    assert "is a symlink; point 'target' at the real directory" in proc.stderr
    assert list(real.iterdir()) == []


def test_type_conflicts_between_the_trees(project: Project) -> None:
    """A user's file where the source has a directory is refused by name; a directory the new release turns
    into a file is replaced cleanly, with the file's own mode."""
    (project.root / "prod" / "server").mkdir(parents=True)
    (project.target / "workflow").write_text("the user's notes")
    proc = project.run("deploy")
    assert proc.returncode == 4
    assert f"{project.target / 'workflow'}: is a file in production, but the source has workflow/" in proc.stderr
    assert (project.target / "workflow").read_text() == "the user's notes"
    (project.target / "workflow").unlink()
    ok(project.run("deploy"))
    import shutil
    import stat

    shutil.rmtree(project.source / "templates")
    (project.source / "templates").write_text("{}")
    os.chmod(project.source / "templates", 0o600)
    project.write_config(include=project.profile["include"] + ["templates"])
    ok(project.run("deploy"))
    assert (project.target / "templates").read_text() == "{}"
    assert stat.S_IMODE(os.stat(project.target / "templates").st_mode) == 0o600


def test_a_chain_of_links_leaving_the_source_root_is_refused(project: Project) -> None:
    """`templates/self -> .` and `templates/out -> self/../..`: each stays inside when read alone (the old
    check normalised `templates/self/../..` to `.`), but followed as the kernel does, `out` is the tree's
    parent: production got a link to the directory above it, and read the user's files through it."""
    ok(project.run("deploy"))
    (project.target.parent / "outside.txt").write_text("beside production, not ours\n")
    before = tree(project.target.parent)
    os.symlink(".", project.source / "templates" / "self")
    os.symlink("self/../..", project.source / "templates" / "out")
    project.write_config(include=project.profile["include"] + ["templates/self", "templates/out"])
    for args in (("deploy",), ("deploy", "--dry-run"), ("status",)):
        proc = project.run(*args)
        assert proc.returncode == 4, (args, proc.stdout, proc.stderr)
        assert (f"{project.source}/templates/out: symlink points outside the source tree (self/../.., through the "
                "links beside it); replace it with the file or exclude it in deploy.yaml") in proc.stderr
        assert "Traceback" not in proc.stderr
    assert tree(project.target.parent) == before
    assert not (project.target / "templates" / "out").is_symlink()
    (project.source / "templates" / "out").unlink()
    ok(project.run("deploy"))  # `self -> .` alone stays inside: deployed as a link
    assert os.readlink(project.target / "templates" / "self") == "."
    assert (project.target.parent / "outside.txt").read_text() == "beside production, not ours\n"
