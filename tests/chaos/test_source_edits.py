"""Scenario 4: a writer rewrites source files in place while deploys run. No torn file may reach production.

Policy (README): a file that changes between planning and copying, or while being copied, aborts the
deploy (exit 1, production untouched) instead of retrying, so production only ever gets the previewed plan.
"""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import Project, ok
from invariants import digest_tree, release_manifest

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
