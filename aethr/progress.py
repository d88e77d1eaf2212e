"""The progress ticker: what a running step is waiting for, told while nothing else is.

The executor never prints and never ticks: it emits events, and this sink wrapper reads
them to know the step, its kind and its phase. A thread it owns then emits `Progress`
events into the sinks it wraps, on one of two schedules:

- `every` seconds, always (a terminal's status line, redrawn about once a second);
- after each stretch of `every` seconds with no other event (a heartbeat off a terminal,
  and `progress` events under `--json`): a run that streams text sends no heartbeat.

The phase comes from the events alone: a model step is connecting, then waiting for its
first token (counted from the step's start, or a retry's end, against the first-byte
limit), then streaming; an agent's last line that is a tool call (`· Edit a.txt`), a
command's last output line; a retry's back-off. Every emit, the ticker's and the run's,
goes through one lock, so the sinks below never see two events at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aethr.events import (
    Event,
    EventSink,
    Progress,
    Retrying,
    RunFailed,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    TextChunk,
    UsageReported,
)

if TYPE_CHECKING:
    from aethr.settings import Settings

CONNECTING = 1.0  # seconds a model step is "connecting" before it is "waiting"
_POLL = 0.2  # how often the thread looks at the clock


def clock_text(seconds: float) -> str:
    """Elapsed time as a person reads it: 7s, 1m05s, 1h02m."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class _Step:
    """What the events said of the running step."""

    def __init__(self, started: StepStarted, now: float) -> None:
        self.id, self.backend, self.first_byte = started.step_id, started.backend, started.first_byte
        self.started = self.attempt = now  # `attempt`: when the current call began
        self.chars = 0
        self._said = ""  # the last chunk of text that is not blank
        self.backoff_until: float | None = None
        self.retry = 0

    def text(self, text: str) -> None:
        """Count the text and keep the last chunk that is not blank; its last line is found only
        when a tick asks (a loud command sends a chunk a line, thousands a second)."""
        self.chars += len(text)
        if text and not text.isspace():
            self._said = text

    @property
    def last_line(self) -> str:
        tail = self._said.rstrip()
        return tail[max(tail.rfind("\n"), tail.rfind("\r")) + 1 :].strip()[:200]

    def phase(self, now: float, first_byte: float) -> tuple[str, str]:
        if self.backoff_until is not None:
            if now < self.backoff_until:
                return "retrying", f"retry {self.retry} in {self.backoff_until - now:.0f}s"
            self.attempt, self.backoff_until = self.backoff_until, None
        if self.backend == "command":
            return "output", (f"last output: {self.last_line}" if self.last_line else "running, no output yet")
        if self.backend != "model":
            if self.last_line.startswith("·"):
                return "tool", f"last tool call: {self.last_line.lstrip('· ')}"
            return "working", (f"last said: {self.last_line}" if self.last_line else "starting the agent")
        if self.chars:
            return "streaming", f"streaming (~{max(1, self.chars // 4)} tokens so far)"
        waited = now - self.attempt
        if waited < CONNECTING:
            return "connecting", "connecting"
        limit = self.first_byte or first_byte  # the step's own (a local server's is longer)
        return "waiting", f"waiting for the first token ({clock_text(waited)} of its {limit:g}s limit)"


class Ticker:
    """A sink wrapper that emits `Progress` on its own thread while a step runs."""

    def __init__(
        self,
        sink: EventSink,
        every: float,
        *,
        quiet_only: bool,
        first_byte: float,
        cap: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink, self.every, self.quiet_only = sink, every, quiet_only
        self.first_byte, self.cap, self.clock = first_byte, cap, clock
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._run_started = self._last = clock()
        self._step: _Step | None = None
        self._spent = 0.0  # finished steps' known spend
        self._step_spent = 0.0  # the running step's, as an agent reports it

    def emit(self, event: Event) -> None:
        if type(event) is TextChunk:  # the common case, kept short: a loud command sends one a line
            with self._lock:
                self._last = self.clock()
                if self._step is not None and event.step_id == self._step.id:
                    self._step.text(event.text)
                self.sink.emit(event)
            return
        with self._lock:
            self._follow(event)
            self.sink.emit(event)
        if isinstance(event, RunStarted) and self._thread is None:
            self._thread = threading.Thread(target=self._tick, name="aethr-progress", daemon=True)
            self._thread.start()
        elif isinstance(event, RunFinished | RunFailed):
            self.close()

    def close(self) -> None:
        self._stop.set()

    def _follow(self, event: Event) -> None:
        now = self.clock()
        self._last = now
        if isinstance(event, RunStarted):
            self._run_started = now
        elif isinstance(event, StepStarted):
            self._step, self._step_spent = _Step(event, now), 0.0
        elif isinstance(event, StepFinished):
            self._step, self._step_spent = None, 0.0
            self._spent += event.usage.known
        elif isinstance(event, RunFinished | RunFailed):
            self._step = None
        elif self._step is not None and isinstance(event, Retrying):
            self._step.backoff_until, self._step.retry, self._step.chars = now + event.delay, event.attempt, 0
        elif isinstance(event, UsageReported):
            self._step_spent = event.usage.known

    def _tick(self) -> None:
        shown = self.clock()
        while not self._stop.wait(_POLL):
            now = self.clock()
            since = now - (max(self._last, shown) if self.quiet_only else shown)
            if since < self.every:
                continue
            shown = now
            try:
                with self._lock:
                    if self._stop.is_set() or self._step is None:
                        continue
                    self.sink.emit(self._progress(self._step, now))
            except Exception:  # a closed output: the run itself notices and stops
                return

    def _progress(self, step: _Step, now: float) -> Progress:
        phase, detail = step.phase(now, self.first_byte)
        spent = self._spent + self._step_spent
        return Progress(
            step.id,
            phase,
            detail,
            round(now - step.started, 1),
            round(now - self._run_started, 1),
            round(spent, 6) if spent or self.cap is not None else None,
            self.cap,
        )


def ticking(sink: EventSink, settings: Settings, *, on_tty: bool, json: bool, cap: float | None) -> EventSink:
    """`sink` with a ticker on the schedule its output wants: once a second for a terminal's
    status line; after each `AETHR_HEARTBEAT` seconds of silence off a terminal or under
    `--json` (0: no ticker there)."""
    status_line = on_tty and not json
    if not status_line and not settings.heartbeat:
        return sink
    every = 1.0 if status_line else settings.heartbeat
    return Ticker(sink, every, quiet_only=not status_line, first_byte=settings.first_byte_timeout, cap=cap)
