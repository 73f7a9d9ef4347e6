"""Scenario 10: a 200 MB file and 5,000 small files in one deploy: correct, and memory stays bounded."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from conftest import REPO, Project, ok

PEAK_RSS_LIMIT_KB = 100 * 1024  # measured ~55 MiB; reading the 200 MiB file whole would blow this

MEASURE = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def deploy_measured(project: Project, *args: str) -> int:
    cmd = [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args, "--config", str(project.config)]
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, timeout=300)
    code, peak = out.stdout.split()
    assert code == "0", out.stderr
    print(f"{args[0]}: peak RSS {int(peak) // 1024} MiB")
    return int(peak)


def test_large_file_and_many_small_files(project: Project) -> None:
    project.write_config(include=project.profile["include"] + ["data/**"], verify=[])
    big = project.source / "data" / "model.bin"
    big.parent.mkdir()
    with open(big, "wb") as f:
        for i in range(200):
            f.write(hashlib.sha256(str(i).encode()).digest() * 32768)  # 1 MiB each, 200 MiB in all
    small = project.source / "data" / "many"
    small.mkdir()
    for i in range(5000):
        (small / f"f{i:04}.txt").write_text(f"file {i}\n")
    peak = deploy_measured(project, "deploy")
    assert peak < PEAK_RSS_LIMIT_KB, f"peak RSS {peak} KiB"
    assert os.path.getsize(project.target / "data" / "model.bin") == 200 * 1024 * 1024
    assert _sha(project.target / "data" / "model.bin") == _sha(big)
    assert len(list((project.target / "data" / "many").iterdir())) == 5000
    (small / "f0042.txt").write_text("changed\n")
    peak = deploy_measured(project, "deploy")  # backs up the 200 MB file into the store too
    assert peak < PEAK_RSS_LIMIT_KB, f"peak RSS {peak} KiB"
    assert (project.target / "data" / "many" / "f0042.txt").read_text() == "changed\n"
    peak = deploy_measured(project, "rollback")
    assert peak < PEAK_RSS_LIMIT_KB
    assert (project.target / "data" / "many" / "f0042.txt").read_text() == "file 42\n"
    ok(project.run("status"))


def _sha(path: os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
