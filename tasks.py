"""`invoke` entry point for this repo.

The product's tasks live in the package (deploylib/tasks.py) so that the
installed `mcp-deploy` console script runs exactly the same collection; this
file adds the repo's own development task, `bench`.
"""

import sys

from invoke import Collection, task

from deploylib.tasks import namespace as product


@task(help={"runs": "Runs per measurement; the table shows medians (default 5).",
            "files": "Files in the large tree (default 10000).",
            "mb": "Size of the large tree in MB (default 200).",
            "fleet": "Instead: 1% of the large tree to 4 SSH test hosts against 1 host (root only)."})
def bench(c, runs=5, files=10_000, mb=200, fleet=False):
    """Benchmark deploy, status and rollback against rsync -a and cp -a; prints a table (see bench/README.md)."""
    c.run(f"{sys.executable} bench/run.py --runs {runs} --files {files} --mb {mb}{' --fleet' if fleet else ''}",
          pty=False)


namespace = Collection(*product.tasks.values(), bench)
