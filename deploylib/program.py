"""invoke's Program over the same task collection as tasks.py: what `mcp-deploy` runs (see cli.py)."""

from invoke import Program
from invoke.parser import Argument
from invoke.util import Lexicon

from . import __version__
from .tasks import complete_profiles, namespace, usage_errors

# invoke's core flags that mean something to MCP Deploy; the rest (--dry, --echo, --pty, -f, ...) steer
# invoke's shell runner, which no task uses: `mcp-deploy --dry deploy` would deploy for real.
OWN_FLAGS = ("complete", "help", "list", "list-format", "print-completion-script", "version")


class DeployProgram(Program):
    """invoke's Program with only the product's core flags, profile-name completion, and exit 2 on a usage
    mistake (unknown flag or task, missing value)."""

    def core_args(self) -> list[Argument]:
        return [arg for arg in super().core_args() if arg.name in OWN_FLAGS]

    @property
    def args(self) -> Lexicon:
        """The parsed core flags, plus invoke's own at their defaults: its Program still reads them."""
        args = super().args
        for arg in super().core_args():
            if arg.name not in args:
                args[arg.name] = arg
        return args

    def parse_core(self, argv: list[str] | None) -> None:
        with usage_errors():
            super().parse_core(argv)

    def parse_tasks(self) -> None:
        with usage_errors():
            super().parse_tasks()

    def parse_cleanup(self) -> None:
        with usage_errors():
            complete_profiles(self)
            super().parse_cleanup()


NAME = "MCP Deploy"
program = DeployProgram(namespace=namespace, version=__version__, name=NAME, binary="mcp-deploy")
