"""The `mcp-deploy` console script: the same tasks as the repo's `invoke`, without invoke where it can.

Importing invoke costs more than deploylib's own imports (its `__init__` imports every submodule, looks up
its own version with `importlib.metadata`, and `invoke.context` imports `unittest.mock` and `asyncio`).
So `--version`, and a task named with plain long flags (`deploy --profile prod --json`), are answered here,
calling the task as invoke would (`direct_call` reads its flags invoke's way: --dry-run for dry_run,
--json for json_, repeatable --adopt); every other command line (-h, --list, short flags, completion, two
tasks, a mistake) goes to invoke's Program (`program.DeployProgram`), which parses and reports it.
"""

from __future__ import annotations

import gc
import os
import sys

from . import __version__, naming

TYPE_CHECKING = False  # mypy takes it as true; `--version` must not pay for importing typing (nor inspect)
if TYPE_CHECKING:
    from typing import Any, Callable

VERSION_FLAGS = (["--version"], ["-V"])


def main() -> None:
    argv = sys.argv[1:]
    if argv in VERSION_FLAGS:
        print(f"MCP Deploy {__version__}")  # what invoke's Program prints for it (program.NAME)
        return
    # One command per process: the cyclic GC would only re-scan the manifests and caches the command
    # builds (hundreds of collections: 40 ms at 10,000 files, most of a second at 100,000) to free next
    # to nothing; the process's exit frees everything.
    gc.disable()
    naming.PROGRAM = "mcp-deploy"  # hints in messages name the command the user ran
    try:
        call = direct_call(argv)
        if call is not None:
            _interruptible(*call)
        else:
            from .program import program

            program.run()
    except BrokenPipeError:  # output piped into `head` and friends
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


def direct_call(argv: list[str]) -> tuple[Callable[..., None], dict[str, Any]] | None:
    """`TASK --flag value --flag=value --switch ...` as the task and its arguments, or None when any word is
    something else or could mean something else to invoke: a short flag, a value that starts with '-',
    a flag given twice, a second task, --help."""
    import inspect

    from .tasks import TASKS

    found = [t for t in TASKS if argv and t.body.__name__ == argv[0]]
    if not found:
        return None
    body, _, iterable = found[0]
    params = list(inspect.signature(body).parameters.values())[1:]  # the first is invoke's context
    flags = {"--" + p.name.rstrip("_").replace("_", "-"): p for p in params}
    kwargs: dict[str, Any] = {p.name: [] for p in params if p.name in iterable}
    words = iter(argv[1:])
    for word in words:
        flag, equals, value = word.partition("=")
        param = flags.get(flag)
        if param is None:
            return None
        if param.default is False:  # a switch: `--json`, never `--json=...`
            if equals or param.name in kwargs:
                return None
            kwargs[param.name] = True
            continue
        if not (param.default is None or isinstance(param.default, str)):
            return None  # invoke would cast the value to the default's type
        if not equals:
            value = next(words, "-")
        if value.startswith("-"):
            return None
        if param.name in iterable:
            kwargs[param.name].append(value)
        elif param.name in kwargs:
            return None
        else:
            kwargs[param.name] = value
    return body, kwargs


def _interruptible(body: Callable[..., None], kwargs: dict[str, Any]) -> None:
    """Run the task; a Ctrl-C that reaches here (an operation's steps undo and say so themselves) is exit
    130, as the README's table has it, not a traceback."""
    try:
        body(None, **kwargs)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
