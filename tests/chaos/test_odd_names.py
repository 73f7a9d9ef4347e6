"""Issue "Hardening" 9 and 7: file names and file types a developer's tree can hold but a deploy tool rarely
meets. Names with a newline, a terminal escape or bytes that are not UTF-8 deploy, roll back and are always
printed escaped (never raw, never a traceback); FIFOs and sockets are skipped with one note; hard links
deploy as separate files."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import MANAGED, Project, bump, ok, tree


def with_data(project: Project, glob: str = "data/**") -> Path:
    """The example plus `data/**` in the sync set: a directory where odd names can be dropped."""
    project.write_config(include=project.profile["include"] + [glob])
    data = project.source / "data"
    data.mkdir()
    return data


def extras(project: Project) -> dict[str, bytes | str]:
    """Production's files beyond the example's managed ones and VERSION: exactly what `data/` shipped."""
    return {k: v for k, v in tree(project.target).items()
            if k not in MANAGED and k != "VERSION" and not k.endswith("/")}


def clean(proc: subprocess.CompletedProcess[str]) -> None:
    """Nothing raw reached the terminal: no escape character, no traceback."""
    assert "\x1b" not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_a_name_with_a_newline_deploys_and_rolls_back(project: Project) -> None:
    data = with_data(project)
    (data / "line\nbreak.txt").write_text("one\n")
    dry = ok(project.run("deploy", "--dry-run"))
    assert "  + data/line\\nbreak.txt (4 B)" in dry.stdout.splitlines()
    ok(project.run("deploy"))
    assert extras(project) == {"data/line\nbreak.txt": b"one\n"}
    (data / "line\nbreak.txt").write_text("two\n")
    proc = ok(project.run("deploy"))
    assert "  ~ data/line\\nbreak.txt (4 B)" in proc.stdout.splitlines()
    assert extras(project) == {"data/line\nbreak.txt": b"two\n"}
    ok(project.run("rollback"))
    assert extras(project) == {"data/line\nbreak.txt": b"one\n"}
    assert "  pending ~ data/line\\nbreak.txt" in ok(project.run("status")).stdout.splitlines()  # source: "two"
    (data / "line\nbreak.txt").unlink()
    proc = ok(project.run("deploy"))
    assert "  - data/line\\nbreak.txt (4 B)" in proc.stdout.splitlines()
    assert extras(project) == {}


def test_a_name_with_a_terminal_escape_is_printed_escaped(project: Project) -> None:
    data = with_data(project)
    name = "\x1b[31mred\x1b[0m.txt"
    (data / name).write_text("red\n")
    escaped = "data/\\x1b[31mred\\x1b[0m.txt"
    dry = project.run("deploy", "--dry-run")
    clean(dry)
    assert f"  + {escaped} (4 B)" in dry.stdout.splitlines()
    code, plan = project.json("deploy", "--dry-run")
    assert code == 0 and f"data/{name}" in plan["plan"]["added"]  # programs get the real name
    # a file of that name already in production that the tool did not deploy: refused, named escaped
    (project.target / "data").mkdir(parents=True)
    (project.target / "data" / name).write_text("mine\n")
    proc = project.run("deploy")
    clean(proc)
    assert proc.returncode == 4
    assert f"did not deploy: {escaped}; they may be yours" in proc.stderr
    (project.target / "data" / name).unlink()
    proc = ok(project.run("deploy"))
    clean(proc)
    assert extras(project) == {f"data/{name}": b"red\n"}
    (data / name).write_text("redder\n")
    for task in ("status", "diff"):
        proc = ok(project.run(task))
        clean(proc)
        assert escaped in proc.stdout


def test_a_name_that_is_not_utf8_deploys_and_rolls_back(project: Project) -> None:
    data = with_data(project)
    raw = os.fsencode(data) + b"/caf\xe9.txt"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"latin-1\n")
    os.close(fd)
    os.symlink(b"caf\xe9.txt", os.fsencode(data) + b"/link")
    dry = ok(project.run("deploy", "--dry-run"))
    clean(dry)
    assert "  + data/caf\\xe9.txt (8 B)" in dry.stdout.splitlines()
    clean(ok(project.run("deploy")))
    name = os.fsdecode(b"data/caf\xe9.txt")
    assert extras(project) == {name: b"latin-1\n", "data/link": "-> " + os.fsdecode(b"caf\xe9.txt")}
    assert sorted(os.listdir(os.fsencode(project.target / "data"))) == [b"caf\xe9.txt", b"link"]
    proc = ok(project.run("status"))
    clean(proc)
    assert "0 files pending deployment" in proc.stdout
    code, status = project.json("status")
    assert code == 0 and status["pending"]["counts"]["unchanged"] == len(MANAGED) + 2
    fd = os.open(raw, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b"changed\n")
    os.close(fd)
    code, deployed = project.json("deploy")
    assert code == 0 and deployed["plan"]["changed"] == [name]
    proc = ok(project.run("rollback"))
    clean(proc)
    assert "  ~ data/caf\\xe9.txt (8 B)" in proc.stdout.splitlines()
    assert extras(project)[name] == b"latin-1\n"
    clean(ok(project.run("history")))


def test_a_non_ascii_name_prints_on_a_terminal_that_cannot_show_it(project: Project) -> None:
    """stdout in ASCII (an old locale, PYTHONIOENCODING): the deploy must not die at its last print."""
    data = with_data(project)
    (data / "café.txt").write_text("au lait\n")
    proc = ok(project.run("deploy", env={"PYTHONIOENCODING": "ascii"}))
    clean(proc)
    assert "  + data/caf\\xe9.txt (8 B)" in proc.stdout.splitlines()
    assert extras(project) == {"data/café.txt": b"au lait\n"}


@pytest.mark.parametrize("glob", ["data/**", "data/*/*"])
def test_a_secret_name_with_a_newline_is_still_withheld(project: Project, glob: str) -> None:
    """`**/.ssh/**` must match `id\\nrsa` too: a newline must not carry a key past the secret list
    (with `data/*/*` it used to be deployed, with `data/**` silently skipped)."""
    data = with_data(project, glob)
    (data / ".ssh").mkdir()
    (data / ".ssh" / "id\nrsa").write_text("key\n")
    proc = ok(project.run("deploy"))
    assert "note: withheld 1 secret-looking file(s) from the sync set: data/.ssh/id\\nrsa" in proc.stdout
    assert extras(project) == {}


def test_fifos_and_sockets_are_skipped_with_one_note(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    data = with_data(project)
    (data / "real.txt").write_text("real\n")
    os.mkfifo(data / "a.fifo")
    monkeypatch.chdir(data)  # a socket path must fit in 108 bytes: bind relative to the directory
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("b.sock")
    try:
        note = ("note: skipped 2 file(s) that are not regular files or symlinks: "
                "data/a.fifo (fifo), data/b.sock (socket)")
        dry = ok(project.run("deploy", "--dry-run"))
        assert dry.stdout.count(note) == 1
        proc = ok(project.run("deploy"))
        assert proc.stdout.count(note) == 1
        assert extras(project) == {"data/real.txt": b"real\n"}
        assert project.managed() == {k: v for k, v in tree(project.source).items() if k in MANAGED}
        assert note in ok(project.run("status")).stdout
        code, result = project.json("deploy")
        assert code == 0 and result["notes"] == [note.removeprefix("note: ")]
        bump(project)
        proc = ok(project.run("deploy"))
        assert proc.stdout.count(note) == 1 and "Success." in proc.stdout
    finally:
        sock.close()


def test_a_fifo_in_production_where_the_release_puts_a_file_is_refused(project: Project) -> None:
    """The tool never makes a FIFO, so one in production is the user's: replacing it would be touching
    a file the tool did not deploy, and it cannot be backed up. Refused before anything changes."""
    data = with_data(project)
    (data / "queue").write_text("file\n")
    fifo = project.target / "data" / "queue"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    inode = os.lstat(fifo).st_ino
    proc = project.run("deploy")
    assert proc.returncode == 4, proc.stderr
    assert (f"error: deploy failed at preflight: {fifo}: is a fifo in production where the release puts a "
            "file; MCP Deploy did not make it and replaces only files it deployed: move it away (nothing was "
            "changed)") in proc.stderr.splitlines()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.lstat(fifo).st_ino == inode
    assert not (project.target / "VERSION").exists()
    fifo.unlink()
    ok(project.run("deploy"))
    assert extras(project) == {"data/queue": b"file\n"}


def test_hard_links_deploy_as_separate_files(project: Project) -> None:
    """README: each path is its own file in production; editing one never changes the other."""
    data = with_data(project)
    (data / "a.txt").write_text("same\n")
    os.link(data / "a.txt", data / "b.txt")
    ok(project.run("deploy"))
    assert extras(project) == {"data/a.txt": b"same\n", "data/b.txt": b"same\n"}
    assert os.stat(project.target / "data" / "a.txt").st_ino != os.stat(project.target / "data" / "b.txt").st_ino


def test_json_output_stays_valid_with_odd_names(project: Project) -> None:
    data = with_data(project)
    (data / "tab\there.txt").write_text("x\n")
    (data / "\x1b]0;title\x07.txt").write_text("y\n")
    proc = project.run("deploy", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    result = json.loads(proc.stdout)
    assert {"data/tab\there.txt", "data/\x1b]0;title\x07.txt"} <= set(result["plan"]["added"])
