"""The `mcp-deploy` console script: invoke's Program over the same task collection as tasks.py."""

import os
import sys

from invoke import Program

from . import __version__, naming
from .tasks import namespace, usage_errors


class DeployProgram(Program):
    """invoke's Program, except that a usage mistake (unknown flag or task, missing value) exits 2."""

    def parse_core(self, argv: list[str] | None) -> None:
        with usage_errors():
            super().parse_core(argv)

    def parse_tasks(self) -> None:
        with usage_errors():
            super().parse_tasks()

    def parse_cleanup(self) -> None:
        with usage_errors():
            super().parse_cleanup()


program = DeployProgram(namespace=namespace, version=__version__, name="MCP Deploy", binary="mcp-deploy")


def main() -> None:
    naming.PROGRAM = "mcp-deploy"  # hints in messages name the command the user ran
    try:
        program.run()
    except BrokenPipeError:  # output piped into `head` and friends
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
