"""Hostile cases of the validated mark (configmark): whatever stands at the mark's place in the cache, and
whatever the config expands to, a run reads its deploy.yaml as it is, with no traceback and no huge file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import Project, ok
from deploylib import configmark
from deploylib.config import load_profile


def test_a_directory_where_the_mark_goes_is_ignored(project: Project, private_cache: Path) -> None:
    """Anything but a regular file at the mark's path is as if there were no mark (as a FIFO or a link is):
    a directory there must not turn every command into an internal error (exit 70)."""
    where = configmark.location(project.config.resolve())
    assert where is not None
    where.mkdir(parents=True)
    assert load_profile(project.config).target == project.root / "prod" / "server"
    ok(project.run("status"))
    assert where.is_dir()  # not ours to remove


def test_an_alias_expanded_config_writes_no_mark_larger_than_a_mark_is_read(
        project: Project, private_cache: Path) -> None:
    """x- keys hold anchors shared by profiles (the schema says so). A config of a few hundred KiB whose
    aliases expand to many copies of one long string passes the alias-bomb bound (few values) but its
    JSON is the expansion: the mark must stay within MAX_MARK_BYTES (a larger one is never read back, so it
    was rewritten, fsynced, on every run; at full size the JSON dump alone exhausts memory: exit 70)."""
    big = "x" * 100_000
    text = project.config.read_text() + f"x-shared: &s {big}\nx-copies: [{', '.join(['*s'] * 80)}]\n"
    project.config.write_text(text)
    for _ in range(2):
        assert load_profile(project.config).target == project.root / "prod" / "server"
        marks = list((private_cache / "mcp-deploy" / "validated").iterdir())
        assert marks and all(m.stat().st_size <= configmark.MAX_MARK_BYTES for m in marks)
    ok(project.run("status"))


def test_a_config_under_a_directory_not_named_in_utf8_loads(project: Project, tmp_path: Path) -> None:
    """The mark's name is a hash of the config's path; a path that is not UTF-8 (a surrogate-escaped
    str) must still hash, not raise UnicodeEncodeError from every command."""
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9"))
    try:
        odd.mkdir()
    except (OSError, UnicodeEncodeError):
        pytest.skip("this filesystem refuses names that are not UTF-8")
    (odd / "deploy.yaml").write_text(project.config.read_text())
    (odd / "dev").symlink_to(project.root / "dev")
    profile = load_profile(odd / "deploy.yaml")
    assert profile.target == odd / "prod" / "server"
    assert load_profile(odd / "deploy.yaml") == profile  # the second read, from the mark
