"""Scenario 4: a writer rewrites source files in place while deploys run. No torn file may reach production.

Policy (README): a file that changes between planning and copying, or while being copied, aborts the
deploy (exit 1, production untouched) instead of retrying, so production only ever gets the previewed plan.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, Project, ok
from invariants import baseline, check, digest_tree, release_manifest

WRITER = """
import sys, time
path, stop = sys.argv[1], sys.argv[2]
n = 0
while True:
    n += 1
    body = f"# version {n}\\n" * 3000
    with open(path, "w") as f:          # in place: truncate, then write in two halves
        f.write(body[: len(body) // 2])
        f.flush()
        time.sleep(0.002)
        f.write(body[len(body) // 2:])
    try:
        open(stop).close()
        break
    except FileNotFoundError:
        time.sleep(0.001)
"""


def consistent(text: str) -> bool:
    lines = text.splitlines()
    return len(lines) == 3000 and len(set(lines)) == 1


def test_no_torn_file_reaches_production(project: Project) -> None:
    project.write_config(validators=[])  # only the copy-time check stands between a torn file and production
    busy = project.source / "workflow" / "busy.py"
    busy.write_text("# version 0\n" * 3000)
    ok(project.run("deploy"))
    stop = project.root / "stop-writer"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(busy), str(stop)])
    outcomes = []
    try:
        for _ in range(12):
            proc = project.run("deploy")
            assert proc.returncode in (0, 1), proc.stderr
            if proc.returncode == 1:
                assert "changed while being deployed; rerun the deploy once edits have settled" in proc.stderr
            outcomes.append(proc.returncode)
            deployed = (project.target / "workflow" / "busy.py").read_text()
            assert consistent(deployed), "a torn file reached production"
            managed = {p: h for p, h in digest_tree(project.target).items() if p in release_manifest(project)}
            assert managed == release_manifest(project)
            assert project.leftovers() == []
            time.sleep(0.05)
    finally:
        stop.touch()
        writer.wait(timeout=10)
    assert 1 in outcomes, "the writer never overlapped a copy: the test proved nothing"
    ok(project.run("deploy"))  # once edits settle, the deploy goes through
    assert (project.target / "workflow" / "busy.py").read_bytes() == busy.read_bytes()


def test_a_file_rewritten_between_plan_and_copy_aborts_even_if_it_reads_the_same(project: Project,
                                                                                tmp_path: Path) -> None:
    """A file caught empty mid-rewrite, both when planned and when copied, would hash as planned; that
    it was written in between shows only in its stat, so the copy compares that with the plan's too."""
    ok(project.run("deploy"))
    base = baseline(project)
    server = project.source / "server.py"
    server.write_text(server.read_text() + "# edited\n")
    planned = server.read_bytes()
    gate = tmp_path / "gate"
    gate.mkdir()
    cmd = [sys.executable, "-m", "invoke", "--search-root", str(REPO), "deploy", "--config", str(project.config)]
    proc = subprocess.Popen(cmd, cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MCP_DEPLOY_PAUSE_AT": f"STAGING:{gate}"})
    while not (gate / "reached").exists():  # planned and validated; nothing copied yet
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        time.sleep(0.02)
    server.write_bytes(b"")  # an editor truncates and rewrites the same bytes
    server.write_bytes(planned)
    os.utime(server, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))  # a new mtime even on a coarse clock
    (gate / "go").touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert f"{server}: changed while being deployed; rerun the deploy once edits have settled" in err
    check(project, base, expect="old")
    ok(project.run("deploy"))
    assert (project.target / "server.py").read_bytes() == planned
