"""How `Progress` is shown: a status line on a terminal, a heartbeat line off one.

Both wrap the renderer that shows the run, which ignores `Progress` itself.

On a terminal the status line sits under the running step, on stderr, redrawn in place
(`\\r`, then erase the line). It is erased before any other event reaches the renderer,
so streamed text, notes and the summary never share a line with it, and it is drawn
only where the output stands at the start of a line (a model's half-written line is
never overwritten). It is cut to the terminal's width so that it never wraps, which
would leave a line that `\\r` cannot reach. With `NO_COLOR` or `TERM=dumb` it is plain:
no escape codes, and erased by overwriting it with spaces.

Off a terminal, each `Progress` is one line on stderr; stdout keeps only the run's text.
"""

from __future__ import annotations

import os
import sys
from typing import IO, TYPE_CHECKING

from aethr.controls import strip_controls
from aethr.events import Event, EventSink, Progress, TextChunk
from aethr.progress import clock_text, ticking
from aethr.usage import usd

if TYPE_CHECKING:
    from aethr.settings import Settings


def on_tty(settings: Settings) -> bool:
    """Whether progress is a status line (both streams on a terminal, CI unset) or heartbeats."""
    return sys.stdout.isatty() and sys.stderr.isatty() and not settings.unattended


def with_progress(sink: EventSink, settings: Settings, *, json: bool, cap: float | None) -> EventSink:
    """`sink` (the whole chain: report, renderer) fed by a progress ticker where one is wanted."""
    return ticking(sink, settings, on_tty=on_tty(settings), json=json, cap=cap)


def for_renderer(renderer: EventSink, err: IO[str], settings: Settings, *, on_tty: bool) -> EventSink:
    """The human renderer, with progress shown as its output wants it."""
    if on_tty:
        return StatusLine(renderer, err, plain=settings.no_color or settings.dumb_terminal)
    return Heartbeat(renderer, err)


def words(event: Progress) -> str:
    """The progress in one line: step, phase, elapsed for the step and the run, spend."""
    line = f"{event.step_id} · {event.detail} · step {clock_text(event.step_seconds)}"
    line += f" · run {clock_text(event.run_seconds)}"
    if event.cap_usd is not None:
        line += f" · {usd(event.spent_usd or 0.0)} of a {usd(event.cap_usd)} cap"
    return strip_controls(line)


class Heartbeat:
    """Off a terminal: one `aethr: …` line on stderr per `Progress`."""

    def __init__(self, sink: EventSink, err: IO[str]) -> None:
        self.sink, self.err = sink, err

    def emit(self, event: Event) -> None:
        if isinstance(event, Progress):
            self.err.write(f"aethr: still running: {words(event)}\n")
            self.err.flush()
        else:
            self.sink.emit(event)


class StatusLine:
    """On a terminal: one line under the running step, redrawn in place."""

    def __init__(self, sink: EventSink, err: IO[str], *, plain: bool) -> None:
        self.sink, self.err, self.plain = sink, err, plain
        self._drawn = 0  # the width of the line on screen; 0: none
        self._at_line_start = True

    def emit(self, event: Event) -> None:
        if isinstance(event, Progress):
            if self._at_line_start:
                self._draw(words(event))
            return
        self.erase()
        self.sink.emit(event)
        if isinstance(event, TextChunk):
            if event.text:
                self._at_line_start = event.text.endswith("\n")
        else:
            self._at_line_start = True  # every other line the renderer writes is whole

    def _width(self) -> int:
        try:
            columns = os.get_terminal_size(self.err.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        return max((columns or 80) - 1, 10)

    def _draw(self, text: str) -> None:
        text = text[: self._width()]
        if self.plain:
            pad = " " * max(self._drawn - len(text), 0)
            self.err.write(f"\r{text}{pad}\r")
        else:
            self.err.write(f"\r\x1b[2K\x1b[2m{text}\x1b[0m\r")
        self._drawn = len(text)
        self.err.flush()

    def erase(self) -> None:
        """Take the status line off the screen, if it is there."""
        if not self._drawn:
            return
        self.err.write("\r" + " " * self._drawn + "\r" if self.plain else "\r\x1b[2K")
        self.err.flush()
        self._drawn = 0
