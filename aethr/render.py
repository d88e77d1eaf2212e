"""Event sinks that show a run: terminal (Rich or plain), JSON lines, prompt preview.

Step text and summaries go to stdout; progress notes (checkpoints, retries,
loop decisions) go to stderr. Streamed text is written straight to the stream
as it arrives, so showing a long answer stays linear in its length. The terminal
sink shows model, agent and command text without control sequences
(`controls.strip_controls`), with colour on or off; `--json` keeps the text as it
came, escaped by the JSON encoder.
"""

from __future__ import annotations

import json
from typing import IO, Any

from aethr import prompt_cache
from aethr.controls import strip_controls
from aethr.errors import ExitCode, OutputClosed
from aethr.events import (
    CheckpointSaved,
    ContextNoted,
    Estimated,
    Event,
    EventSink,
    LoopIteration,
    Notice,
    PromptBuilt,
    Retrying,
    RunFailed,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    TextChunk,
    to_dict,
)
from aethr.usage import money, tokens, usd


class TerminalRenderer:
    """Human output. With `color`, Rich draws the header and summary; without, plain text
    with no escape codes and no wrapping (for pipes, files and NO_COLOR)."""

    def __init__(self, out: IO[str], err: IO[str], *, color: bool, verbose: bool = False) -> None:
        self.out, self.err, self.color, self.verbose = out, err, color, verbose
        self._console: Any = None
        self._at_line_start = True
        self._mode = "mock"
        self._plan: dict[str, tuple[str, str]] = {}  # step id -> (role, model as shown)

    def _model(self, model: str | None, backend: str) -> str:
        if backend == "command":
            return "run: step"
        name = model or "no model"
        if backend != "model":
            name = f"{backend} ({model})" if model else backend
        return f"mock, for {name}" if self._mode == "mock" else name

    def _rich(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.out, highlight=False, soft_wrap=True)
        return self._console

    def _line(self, text: str, style: str = "") -> None:
        self._end_text()
        if self.color and style:
            self._rich().print(text, style=style, markup=False)
        else:
            self.out.write(text + "\n")

    def _note(self, text: str) -> None:
        self._end_text()
        self.out.flush()
        self.err.write(strip_controls(text) + "\n")
        self.err.flush()

    def _end_text(self) -> None:
        if not self._at_line_start:
            self.out.write("\n")
            self._at_line_start = True

    def emit(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._started(event)
        elif isinstance(event, StepStarted):
            model = self._model(event.model, event.backend)
            again = f" · pass {event.iteration}" if event.iteration > 1 else ""
            who = "command" if event.backend == "command" else f"{event.role} · {model}"
            self._line(f"\n── {event.step_id} · {who}{again}", "bold cyan")
        elif isinstance(event, TextChunk):
            text = strip_controls(event.text)
            if text:
                self.out.write(text)
                self.out.flush()
                self._at_line_start = text.endswith("\n")
        elif isinstance(event, StepFinished):
            changed = ""
            if event.changed_files is not None and self._mode == "live":
                changed = f" · {len(event.changed_files)} file(s) changed"
            self._line(
                f"── done in {event.seconds:.1f}s · tokens {tokens(event.usage)} · {money(event.usage)}{changed}",
                "dim",
            )
        elif isinstance(event, Retrying):
            left = f" ({event.left} attempt(s) left)" if event.left is not None else ""
            self._note(
                f"aethr: step '{event.step_id}': {event.reason}; retry {event.attempt} in {event.delay:.1f}s{left}"
            )
        elif isinstance(event, LoopIteration):
            verdict = "done" if event.passed else "again" if event.again else "stop"
            self._note(
                f"aethr: loop {event.back_to}..{event.step_id} pass {event.passes}/{event.max_iterations}: "
                f"{event.reason} → {verdict}"
            )
        elif isinstance(event, Notice):
            about = f"step '{event.step_id}': " if event.step_id else ""  # "": a notice of the run
            self._note(f"aethr: {about}{event.text}")
        elif isinstance(event, ContextNoted):
            self._note(f"aethr: step '{event.step_id}': context {event.source}: {event.status} ({event.note})")
        elif isinstance(event, CheckpointSaved) and self.verbose:
            self._note(f"aethr: checkpoint saved after '{event.step_id}': {event.path}")
        elif isinstance(event, RunFinished | RunFailed):
            self._summary(event)

    def _started(self, event: RunStarted) -> None:
        self._mode = event.mode
        how = {"mock": "mock mode (no model is called; AETHR_LIVE=1 goes live)", "live": "live"}.get(
            event.mode, event.mode
        )
        resumed = f" · resumed from {event.resumed_from}" if event.resumed_from else ""
        self._line(f"aethr · workflow {event.workflow} · {len(event.steps)} step(s) · {how}{resumed}", "bold")
        width = max(len(s.id) for s in event.steps)
        role_width = max(len(s.role) for s in event.steps)
        for s in event.steps:
            self._plan[s.id] = (s.role, "mock" if self._mode == "mock" else (s.model or ""))
            self._line(f"  {s.id:<{width}}  {s.role:<{role_width}}  {self._model(s.model, s.backend)}", "dim")
        if event.checkpoint and self.verbose:
            # Shown only with --verbose: it is deleted when the run succeeds, and a failed run
            # prints its resume command.
            self._note(f"aethr: checkpoint: {event.checkpoint}")

    def _summary(self, event: RunFinished | RunFailed) -> None:
        self._end_text()
        failed = isinstance(event, RunFailed)
        rows = [
            (
                s.step_id,
                s.role,
                "mock" if self._mode == "mock" else (s.model or ""),
                _status(s),
                f"{s.seconds:.1f}s",
                tokens(s.usage),
                money(s.usage),
            )
            for s in event.steps
        ]
        # A loop that ran out failed no step of its own: its passes are all in the rows already.
        if isinstance(event, RunFailed) and event.step_id and event.exit_code != ExitCode.LOOP_EXHAUSTED:
            role, model = self._plan.get(event.step_id, ("", ""))
            spent = event.failed_usage
            words = {ExitCode.INTERRUPTED: "interrupted", ExitCode.SPEND_CAP: "stopped at the cap"}
            status = words.get(ExitCode(event.exit_code), "failed")
            rows.append(
                (event.step_id, role, model, status, "", tokens(spent) if spent else "", money(spent) if spent else "")
            )
        title = "run failed" if failed else "run finished"
        total = f"{event.seconds:.1f}s · tokens {tokens(event.usage, share=True)} · cost {money(event.usage)}"
        if event.cap_usd is not None:
            total += f" of a {usd(event.cap_usd)} cap"
        if self.color:
            from rich.table import Table

            table = Table(title=f"{title} · {total}", title_justify="left", show_edge=False)
            for column in ("step", "role", "model", "status", "time", "tokens", "cost"):
                table.add_column(column)
            for row in rows:
                table.add_row(*row, style="red" if row[3] in ("failed", "interrupted") else None)
            self._rich().print()
            self._rich().print(table)
        else:
            self.out.write(f"\n{title} · {total}\n")
            lines = [("step", "role", "model", "status", "time", "tokens", "cost"), *rows]
            widths = [max(len(row[i]) for row in lines) for i in range(7)]
            for row in lines:
                self.out.write("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
        self.out.flush()


def _status(step: StepFinished) -> str:
    word = "command failed" if step.passed is False else "ok"
    return word if step.iteration == 1 else f"{word} (pass {step.iteration})"


class QuietOnClosedOutput:
    """Wraps a sink: when the reader of stdout goes away, the run stops as `OutputClosed`."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink

    def emit(self, event: Event) -> None:
        try:
            self.sink.emit(event)
        except BrokenPipeError:
            raise OutputClosed from None


class JsonRenderer:
    """`--json`: one JSON object per event on stdout, nothing else."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def emit(self, event: Event) -> None:
        self.out.write(json.dumps(to_dict(event), ensure_ascii=False) + "\n")
        self.out.flush()


def estimate_table(event: Estimated) -> str:
    """The estimate as a plain table, one row per step, and the total as a range."""
    head = ("step", "backend", "model", "prompt", "window", "output", "USD", "passes")
    rows = [head]
    for r in event.steps:
        if r.backend == "command":
            rows.append((r.step_id, "command", "-", "-", "-", "-", "$0", f"×{r.passes}"))
            continue
        window = f"{r.window:,}" if r.window else ("unknown" if r.backend == "model" else "-")
        if r.window and r.prompt_tokens > r.window:
            window += " (over!)"
        output = f"{r.output_tokens:,}" + (" assumed" if r.output_assumed else "")
        cost = f"${r.usd:.4f}" if r.usd is not None else "unknown"
        rows.append(
            (r.step_id, r.backend, r.model or "-", f"~{r.prompt_tokens:,}", window, output, cost, f"×{r.passes}")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    total = f"${event.low_usd:.4f}" + (f" to ${event.high_usd:.4f}" if event.high_usd > event.low_usd else "")
    left_out = f" (not counting {', '.join(event.unknown)}: unknown)" if event.unknown else ""
    if event.unknown and not any(r.usd is not None and r.backend != "command" for r in event.steps):
        total, left_out = "unknown", f" (no price is known for {', '.join(event.unknown)})"  # $0 would be a guess
    return "estimate (nothing was called):\n" + "\n".join(lines) + f"\n  total: {total}{left_out}\n"


class EstimateRenderer:
    """`--estimate`: the table only."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def emit(self, event: Event) -> None:
        if isinstance(event, Estimated):
            self.out.write(estimate_table(event))
            self.out.flush()


class PreviewRenderer:
    """`--show-prompt`: every step's exact prompt and a report of its context."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def emit(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.out.write(f"aethr · workflow {event.workflow} · prompt preview: no model is called\n")
        elif isinstance(event, StepStarted):
            model = (event.model or "(mock)") if event.backend == "model" else f"{event.backend} {event.model or ''}"
            who = "a command" if event.backend == "command" else f"role {event.role} · {model.strip()}"
            self.out.write(f"\n{'=' * 72}\nstep {event.step_id} · {who}\n{'=' * 72}\n")
        elif isinstance(event, Estimated):
            self.out.write(f"\n{'=' * 72}\n" + estimate_table(event))
        elif isinstance(event, PromptBuilt):
            self.out.write(prompt_cache.shown(event.prompt, event.cache_at))
            self.out.write(f"{'-' * 72}\ncontext report for {event.step_id}:\n")
            if not event.context:
                self.out.write("  (no context sources)\n")
            for item in event.context:
                note = f" · {item.note}" if item.note else ""
                self.out.write(f"  {item.source}: {item.status} · ~{item.tokens} tokens{note}\n")
        elif isinstance(event, Notice):
            self.out.write(f"{event.text}\n")
        self.out.flush()
