"""invoke's side of the CLI: the task collection (for the repo's tasks.py and `mcp-deploy`), exit 2 on usage
mistakes, `--profile <TAB>` completion, and the Program `mcp-deploy` runs when cli.py's direct path does not apply.
"""

from __future__ import annotations

import inspect
import shlex
from contextlib import contextmanager
from typing import Callable, Iterator

from invoke import Collection, Exit, Program, task
from invoke.exceptions import ParseError
from invoke.main import program as invoke_program
from invoke.parser import Argument
from invoke.util import Lexicon

from . import __version__
from .config import profile_names
from .errors import ConfigError
from .naming import command
from .tasks import TASKS

namespace = Collection(*(task(help=t.help, iterable=list(t.iterable))(t.body) for t in TASKS))


@contextmanager
def usage_errors() -> Iterator[None]:
    """An unknown flag or task, or a flag without its value, exits 2 (bad usage), not invoke's 1,
    which the README's exit-code table reserves for "the operation failed and was undone"."""
    try:
        yield
    except ParseError as exc:
        task_name = getattr(exc.context, "name", None)
        see = command(f"--help {task_name}") if task_name else command("--list")
        raise Exit(f"error: {exc} (see `{see}`)", code=ConfigError.exit_code) from None


PROFILE_FLAGS = ("--profile", "-p")
CONFIG_FLAGS = ("--config", "-c")


def complete_profiles(program: Program) -> None:
    """`--profile <TAB>` offers the profile names of the deploy.yaml in use (the line's --config, else
    $MCP_DEPLOY_CONFIG, else ./deploy.yaml), where invoke alone would offer file names."""
    if not program.args.complete.value:
        return
    try:
        words = [w for w in shlex.split(program.core.remainder)[1:] if w != "="]  # bash splits --profile=x
    except ValueError:  # an unclosed quote: nothing sensible to offer
        return
    at = len(words) - 1 if words and words[-1] in PROFILE_FLAGS else len(words) - 2
    if at < 0 or words[at] not in PROFILE_FLAGS or (at < len(words) - 1 and words[-1].startswith("-")):
        return
    task = next((w for w in reversed(words[:at]) if w in namespace.task_names), None)
    if task is None or "profile" not in inspect.signature(namespace[task].body).parameters:
        return  # before a task name, -p is invoke's own flag
    config = None
    for flag, value in zip(words, words[1:]):
        if flag in CONFIG_FLAGS:
            config = value
    print("\n".join(profile_names(config)))
    raise Exit


def _exit_2_on_usage_errors(program: Program) -> None:
    """Wrap the parse steps of invoke's own Program (the repo's `invoke`) in `usage_errors`, and give it
    the same `--profile <TAB>` completion as `mcp-deploy`.

    That Program is not ours to subclass (DeployProgram is, for `mcp-deploy`), but it imports this
    module while loading tasks.py, before it parses the task names and flags, so wrapping that one
    instance here still catches them. Nothing else runs that instance.
    """
    for name in ("parse_tasks", "parse_cleanup"):

        def wrapped(_method: Callable[[], None] = getattr(program, name), _name: str = name) -> None:
            with usage_errors():
                if _name == "parse_cleanup":
                    complete_profiles(program)
                _method()

        setattr(program, name, wrapped)


_exit_2_on_usage_errors(invoke_program)

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
