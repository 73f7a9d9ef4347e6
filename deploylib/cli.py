"""The `mcp-deploy` console script: invoke's Program over the same task collection as tasks.py."""

import os
import sys

from invoke import Program

from . import __version__
from .tasks import namespace

program = Program(namespace=namespace, version=__version__, name="MCP Deploy", binary="mcp-deploy")


def main() -> None:
    try:
        program.run()
    except BrokenPipeError:  # output piped into `head` and friends
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
