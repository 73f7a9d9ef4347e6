"""Where output meets a person: colour and live progress on a terminal, plain lines everywhere else.

`rich` does the terminal work (colour, NO_COLOR, live redraws) so we draw no
bars by hand; it is imported only when a terminal is attached, because it
costs ~50 ms of start-up that pipes, CI logs and scripts do not need.
Results go to stdout, progress to stderr; under --json only the JSON is printed.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .report import fleet_event, hook_line, plan_lines, shown, size

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

EventSink = Callable[[str, dict[str, Any]], None]
PLAIN_INTERVAL = 2.0  # seconds between progress lines in CI logs; also how long a run may stay quiet
QUIET_STEPS = ("lock", "preflight")  # a run that stops after these changed nothing: its result line says it all

LINE_STYLES = (("  + ", "green"), ("  ~ ", "yellow"), ("  - ", "red"), ("  drift", "magenta"),
               ("note:", "cyan"), ("error:", "bold red"), ("+++", "bold"), ("---", "bold"), ("@@", "cyan"),
               ("+", "green"), ("-", "red"))


def style_for(line: str) -> str | None:
    if line.endswith("Success."):
        return "bold green"
    for prefix, style in LINE_STYLES:
        if line.startswith(prefix):
            return style
    return None


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def printable(text: str) -> str:
    """The last guard before a person's terminal, whoever built the text: line breaks and tabs
    stay, every other control character and undecodable byte is escaped (see report.shown)."""
    return shown(text, keep="\n\t")


def tolerant_output() -> None:
    """Let stdout and stderr escape what their encoding cannot show (an ASCII or Latin-1 locale,
    PYTHONIOENCODING) instead of failing at the last print, after the deploy was done."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def print_result(text: str) -> None:
    """Print a rendered result; coloured by line kind on a terminal (unless NO_COLOR), plain elsewhere."""
    text = printable(text)
    if not sys.stdout.isatty():
        print(text)
        return
    from rich.text import Text

    console = _console()
    for line in text.split("\n"):
        console.print(Text(line, style=style_for(line) or ""))


def print_error(message: str) -> None:
    """One `error:` line, always: a newline inside the message (a file name's) is shown escaped."""
    message = shown(message)
    if not sys.stderr.isatty():
        print(f"error: {message}", file=sys.stderr)
        return
    from rich.text import Text

    _console(stderr=True).print(Text(f"error: {message}", style="bold red"))


class ProgressReporter:
    """Turns pipeline events into a live bar per step on a terminal, or periodic plain lines otherwise.

    Nothing is shown while a run only locks and plans, unless that takes PLAIN_INTERVAL or waits for
    the lock: a run with nothing to do prints its one result line and no progress around it.
    """

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.console: Console | None = _console(stderr=True) if self.live else None
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.step = ""
        self.what: str | None = None  # what the bar is counting: backup, copy, restore, hash
        self.files = 0
        self.bytes = 0
        self.total: int | None = None
        self.started = self.last_line = time.monotonic()
        self.shown = False
        self.held: list[tuple[str, str]] = []  # lines said while not yet shown

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if not self.shown and (time.monotonic() - self.started >= PLAIN_INTERVAL or kind == "step" and (
                data["step"] not in QUIET_STEPS or data.get("wait"))):
            self._show()
        if kind == "step":
            self._finish_step()
            self.step, self.what, self.files, self.bytes, self.total = data["step"], None, 0, 0, None
            self.last_line = time.monotonic()  # a quick step prints only its closing line
            if not self.live:
                self._say(f"[{data['state'].lower()}] {data['step']}")
        elif kind == "begin":
            self.total, self.what = data.get("files"), data.get("what")
            if self.live:
                self._bar().update(self._task(), total=self.total, description=self._label())
        elif kind == "file":
            self.what = self.what or data.get("step")
            count = int(data.get("count", 1))  # one event may stand for many files (already backed up)
            self.files += count
            self.bytes += int(data.get("bytes", 0))
            if self.live:
                self._bar().update(self._task(), advance=count, description=self._label())
            elif time.monotonic() - self.last_line >= PLAIN_INTERVAL:
                self._plain_line()
        elif kind == "check":
            verdict = "ok" if data["ok"] else "FAILED"
            self._say(f"  {data['step']} {data['name']}: {verdict} ({data['seconds']:.2f} s)",
                      "green" if data["ok"] else "bold red")
        elif kind == "undo":
            self._say(f"[rolling back] undo {data['step']}")
        elif kind == "plan":  # before the work: what will change, then the progress, then the result
            if not self.shown:
                self._show()  # there is work to do: what was held back is worth seeing
            print_result("\n".join(plan_lines(data["plan"], (data["from"], data["to"]))))
            sys.stdout.flush()
        elif kind == "hook":
            self._say(f"  {hook_line(data)}", "" if data["ok"] else "bold red")
        elif kind == "fleet":
            if not self.shown:
                self._show()
            line = fleet_event(data)
            if line:
                self._say(line, "bold red" if data["kind"] in ("failed", "lost") else "")
        elif kind == "notify":
            verdict = "ok" if data["ok"] else f"FAILED ({data['problem']})"
            self._say(f"  notify {data['type']} {data['to']}: {verdict}", "" if data["ok"] else "bold red")

    def _show(self) -> None:
        self.shown = True
        if self.progress is not None:
            self.progress.start()
        for line, style in self.held:
            self._say(line, style)
        self.held.clear()

    def _say(self, line: str, style: str = "") -> None:
        line = printable(line)
        if not self.shown:
            self.held.append((line, style))
        elif self.console is None:
            print(line, file=sys.stderr, flush=True)
        else:
            from rich.text import Text

            self.console.print(Text(line, style=style))  # above the live bars, when there are any

    def _label(self) -> str:
        return f"{self.what or self.step:<8} {size(self.bytes):>10}"

    def _bar(self) -> Progress:
        if self.progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("files"), TimeElapsedColumn(), console=self.console)
            if self.shown:
                self.progress.start()
        return self.progress

    def _task(self) -> TaskID:
        if self.task is None:
            self.task = self._bar().add_task(self._label(), total=self.total)
        return self.task

    def _plain_line(self) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        self._say(f"[{self.what or self.step}] {self.files}{of} files, {size(self.bytes)}")
        self.last_line = time.monotonic()

    def _finish_step(self) -> None:
        if self.files and not self.live:
            self._plain_line()
        if self.progress is not None and self.task is not None and self.total is None:
            self.progress.update(self.task, total=self.files)  # counted without a total: the count is it
        self.task = None

    def close(self) -> None:
        self._finish_step()
        if self.progress is not None:
            self.progress.stop()


@contextmanager
def progress(enabled: bool) -> Iterator[EventSink | None]:
    """A progress sink for one command (None under --json), cleaned up however the command ends."""
    if not enabled:
        yield None
        return
    reporter = ProgressReporter()
    try:
        yield reporter
    finally:
        reporter.close()
