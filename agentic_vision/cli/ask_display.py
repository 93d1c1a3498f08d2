"""What `ask` shows on stderr while the agent works.

Each step's code, the output the code prints (line by line, as it prints
it, not after the step) and the outcome.  On a terminal a live status line
stays below them (model thinking / running step N, and the seconds), drawn
with rich; elsewhere (a log file, CI) the same lines without the status.
Everything the model or its code wrote is escaped on a terminal
(``terminal.escape_controls``).
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.syntax import Syntax
from rich.text import Text

from ..values import Outcome
from .terminal import escape_controls, is_terminal

MAX_CODE_LINES = 40
MAX_LINE = 200
MAX_OUTPUT_LINES = 100  # of one step's output shown here (all of it is in --json and the trace)


class _Status:
    """The live line: what is going on, for how long, and the total so far."""

    def __init__(self) -> None:
        self.started = self.since = time.monotonic()
        self.what = "starting"
        self.spinner = Spinner("dots", style="cyan")

    def set(self, what: str) -> None:
        self.what, self.since = what, time.monotonic()

    def __rich__(self) -> Spinner:
        now = time.monotonic()
        self.spinner.text = Text(f"{self.what} · {now - self.since:.0f} s (total {now - self.started:.0f} s)",
                                 style="dim")
        return self.spinner


class AskDisplay:
    """The agent's event hook for `ask` (``Agent(on_event=...)``); ``close()`` ends the live line."""

    def __init__(self, enabled: bool, stream=None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = is_terminal(self.stream)
        # On a terminal: colour and the live line; elsewhere plain lines, model text exact.
        self.console = Console(file=self.stream, force_terminal=self.tty, no_color=not self.tty,
                               highlight=False, soft_wrap=True)
        self.status = _Status()
        self.live: Live | None = None
        self.partial = ""  # the current step's output after its last newline
        self.streamed: dict[int, str] = {}  # each step's output shown as it came
        self.lines_shown = 0  # of the running step's output

    # -- writing ---------------------------------------------------------------------

    def _line(self, text: str, style: str = "") -> None:
        if self.tty:
            text = escape_controls(text)
        self.console.print(Text(text, style=style) if self.tty else text, markup=False, style=None)

    def begin(self, what: str) -> None:
        """Shows the live line from now on (before the first event: inputs, the sandbox's start)."""
        if self.enabled:
            self._set(what)

    def _set(self, what: str) -> None:
        self._start_live()
        self.status.set(what)
        if self.live is not None:
            self.live.refresh()  # shown now, however short the phase

    def _start_live(self) -> None:
        if self.tty and self.live is None:
            self.live = Live(self.status, console=self.console, refresh_per_second=4, transient=True,
                             redirect_stdout=False, redirect_stderr=False)
            self.live.start()

    def close(self) -> None:
        self._flush_partial()
        if self.live is not None:
            self.live.stop()
            self.live = None

    # -- events -------------------------------------------------------------------------

    def __call__(self, event: str, data: dict) -> None:
        if not self.enabled:
            return
        self._start_live()
        if event == "skipped":  # an input of a folder that could not be read
            self._line(f"note: {data['message']}", "yellow")
        elif event == "sandbox":
            self._line(f"sandbox: {data['kind']}", "dim")
        elif event == "thinking":
            self._set("model thinking")
        elif event == "model":
            self._set("model replied")
            if data.get("thoughts"):
                first = data["thoughts"].strip().splitlines()[0]
                self._line(f"thinking: {first[:160]}", "dim")
        elif event == "code":
            self._code(data["number"], data["code"])
            self._set(f"running step {data['number']}")
        elif event == "output":
            self._output(data["number"], data["text"])
        elif event == "step":
            self._step(data["number"], data["step"])
        elif event in ("done", "model_error"):
            self.close()  # the command reports the answer or the error itself

    def _code(self, number: int, code: str) -> None:
        self._line(f"── step {number} " + "─" * 40, "cyan")
        lines = code.rstrip().splitlines()
        shown = "\n".join(lines[:MAX_CODE_LINES])
        if self.tty:
            # Pygments (through rich) colours the code; the text is escaped first.
            self.console.print(Syntax(escape_controls(shown), "python", theme="ansi_dark", padding=(0, 0, 0, 2),
                                      background_color="default"))
        else:
            for line in shown.splitlines():
                self._line(f"  {line}")
        if len(lines) > MAX_CODE_LINES:
            self._line(f"  ... {len(lines) - MAX_CODE_LINES} more lines", "dim")

    def _output(self, number: int, text: str) -> None:
        if number not in self.streamed:
            self.streamed[number], self.lines_shown = "", 0
        self.streamed[number] += text
        *complete, self.partial = (self.partial + text).split("\n")
        for line in complete:
            self._output_line(line)

    def _output_line(self, line: str) -> None:
        self.lines_shown += 1
        if self.lines_shown <= MAX_OUTPUT_LINES:
            self._line(f"  | {line[:MAX_LINE]}", "dim")
        elif self.lines_shown == MAX_OUTPUT_LINES + 1:
            self._line("  | ... (more output: see --json or --trace)", "dim")

    def _flush_partial(self) -> None:
        if self.partial:
            self._output_line(self.partial)
            self.partial = ""

    def _step(self, number: int, step) -> None:
        self._flush_partial()
        sizes = ", ".join(f"{im.width}x{im.height}" + (f" from {im.source.describe()}" if im.source else "")
                          for im in step.images)
        style = "green" if step.outcome == Outcome.OK else "red"
        self._line(f"  → {step.outcome} in {step.duration_s:.2f} s" + (f", images: {sizes}" if sizes else ""), style)
        # What was not shown as it came: the sandbox's notes (a time limit...), or
        # everything when nothing ran (an unusable call).
        rest = step.output.replace(self.streamed.pop(number, ""), "", 1)
        out = rest.strip().splitlines()
        for line in out[:8]:
            self._line(f"  | {line[:MAX_LINE]}", "dim")
        if len(out) > 8:
            self._line(f"  | ... {len(out) - 8} more lines", "dim")
