"""The `mcp-deploy` console script: invoke's Program over the same task collection as tasks.py.

`mcp-deploy --version` is answered here, before invoke is imported: importing invoke alone costs
several times an empty interpreter's start-up. Everything else goes through `program.DeployProgram`.
"""

import gc
import os
import sys

from . import __version__, naming

VERSION_FLAGS = (["--version"], ["-V"])


def main() -> None:
    if sys.argv[1:] in VERSION_FLAGS:
        print(f"MCP Deploy {__version__}")  # what invoke's Program prints for it (program.NAME)
        return
    # One command per process: the cyclic GC would only re-scan the manifests and caches the command
    # builds (hundreds of collections: 40 ms at 10,000 files, most of a second at 100,000) to free next
    # to nothing; the process's exit frees everything.
    gc.disable()
    naming.PROGRAM = "mcp-deploy"  # hints in messages name the command the user ran
    from .program import program

    try:
        program.run()
    except BrokenPipeError:  # output piped into `head` and friends
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
