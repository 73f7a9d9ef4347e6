"""The `mcp-deploy` console script: invoke's Program over the same task collection as tasks.py."""

from invoke import Program

from . import __version__
from .tasks import namespace

program = Program(namespace=namespace, version=__version__, name="MCP Deploy", binary="mcp-deploy")


def main() -> None:
    program.run()
