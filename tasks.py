"""`invoke` entry point for this repo.

The product's tasks live in the package (deploylib/tasks.py, collected in
deploylib/program.py) so that the installed `mcp-deploy` console script runs
exactly the same collection; this
file adds the repo's own development task, `bench`.
"""

import sys

from invoke import Collection, task

from deploylib.program import namespace as product


@task(help={"runs": "Runs per measurement; the table shows medians (default 5).",
            "files": "Files in the large tree (default 10000).",
            "mb": "Size of the large tree in MB (default 200).",
            "large": "Also deploy 1% of a tree of this many files (the issue's 100000).",
            "big_file": "Also deploy one changed file of this many MiB (the issue's 1024).",
            "mcp": "Also time a warm MCP server's preview + deploy of 1% of the tree.",
            "peers": "Add an Ansible column (ansible-core in a bench-only venv under .sandbox/).",
            "all": "Everything the issue asks: --large 100000 --big-file 1024 --mcp.",
            "fleet": "Instead: 1% of the large tree to 4 SSH test hosts against 1 host (root only)."})
def bench(c, runs=5, files=10_000, mb=200, large=0, big_file=0, mcp=False, peers=False, all=False, fleet=False):
    """Benchmark deploy, status and rollback against rsync -a --delete and the cp -al + rsync + symlink recipe."""
    if all:
        large, big_file, mcp = large or 100_000, big_file or 1024, True
    extra = (f" --large {large}" if large else "") + (f" --big-file {big_file}" if big_file else "") \
        + (" --mcp" if mcp else "") + (" --peers" if peers else "") + (" --fleet" if fleet else "")
    c.run(f"{sys.executable} bench/run.py --runs {runs} --files {files} --mb {mb}{extra}", pty=False)


namespace = Collection(*product.tasks.values(), bench)
