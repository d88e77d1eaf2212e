"""What a run reports, as immutable events sent to an `EventSink`.

The executor emits; renderers (Rich, plain text, JSON lines, prompt preview)
show. Every event serializes to one JSON object with an `event` field, so
`--json` and a future record/replay read the same stream.

Events are `NamedTuple`s rather than frozen dataclasses: every run builds these
classes at start-up, and a NamedTuple class costs a tenth of a frozen dataclass
to create (measured: 13 classes, 0.7 ms against 6.9 ms). `Usage`, which adds up, lives
in `aethr.usage` as a dataclass, so that `+` never means tuple concatenation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Protocol

from aethr.usage import Usage


class ContextItem(NamedTuple):
    """How one context source fared: included, truncated, skipped or refused."""

    source: str
    status: str
    tokens: int
    note: str = ""


class StepPlan(NamedTuple):
    id: str
    role: str
    backend: str
    model: str | None


class RunStarted(NamedTuple):
    workflow: str
    task: str
    mode: str  # "mock", "live" or "preview"
    steps: tuple[StepPlan, ...]
    checkpoint: str | None = None
    resumed_from: str | None = None
    event: str = "run_started"


class StepStarted(NamedTuple):
    step_id: str
    role: str
    backend: str
    model: str | None
    iteration: int
    first_byte: float | None = None  # a model step's first-byte limit (longer for a local server)
    event: str = "step_started"


class PromptBuilt(NamedTuple):
    step_id: str
    prompt: str  # exactly the text the model receives
    context: tuple[ContextItem, ...]
    cache_at: int | None = None  # where its cache breakpoint is set (a character offset), if anywhere
    event: str = "prompt_built"


class ContextNoted(NamedTuple):
    """A context source that gave the step nothing: refused, skipped (missing) or empty."""

    step_id: str
    source: str
    status: str
    note: str
    event: str = "context_note"


class Notice(NamedTuple):
    """Something the user should know about a step before it runs (a prompt near its window)."""

    step_id: str
    text: str
    event: str = "notice"


class BudgetReached(NamedTuple):
    """The run reached its spend cap at this step."""

    step_id: str
    spent_usd: float
    cap_usd: float
    event: str = "budget"


class TextChunk(NamedTuple):
    step_id: str
    text: str
    event: str = "text"


class Retrying(NamedTuple):
    step_id: str
    attempt: int
    delay: float
    reason: str  # for a timeout: the limit that ran out and the variable that raises it
    left: int | None = None  # attempts that remain after this retry, when known
    event: str = "retrying"


class Progress(NamedTuple):
    """Where a running step is, sent by the progress ticker (`aethr.progress`), never by the
    executor: a terminal's status line, a heartbeat line off a terminal, `--json`'s `progress`."""

    step_id: str
    phase: str  # connecting | waiting | streaming | tool | output | working | retrying
    detail: str  # the phase in words: "waiting for the first token (3s of 25s)", a tool call
    step_seconds: float
    run_seconds: float
    spent_usd: float | None = None  # known spend of the run so far
    cap_usd: float | None = None  # the run's spend cap, if any
    event: str = "progress"


class UsageReported(NamedTuple):
    """An agent's usage so far in a step (cumulative), as it reports it."""

    step_id: str
    usage: Usage
    event: str = "usage"


class StepFinished(NamedTuple):
    step_id: str
    role: str
    model: str | None
    iteration: int
    seconds: float
    usage: Usage
    output: str
    changed_files: tuple[str, ...] | None = None
    passed: bool | None = None  # command steps: whether the command passed
    event: str = "step_finished"


class LoopIteration(NamedTuple):
    step_id: str
    back_to: str
    passes: int
    max_iterations: int
    passed: bool
    reason: str
    again: bool = False  # the run goes back to `back_to` (not: it passed, ran out or is stuck)
    event: str = "loop_iteration"


class CheckpointSaved(NamedTuple):
    path: str
    step_id: str
    event: str = "checkpoint_saved"


class EstimateRow(NamedTuple):
    step_id: str
    backend: str  # model, opencode, command
    model: str | None
    prompt_tokens: int  # of the exact assembled prompt (4 characters a token)
    window: int | None  # the model's context window, when known
    output_tokens: int
    output_assumed: bool  # no max_output_tokens: 1,000 assumed
    usd: float | None  # one pass; None when unknown
    passes: int  # the most times it can run (loops)


class Estimated(NamedTuple):
    """What a run will cost, before it runs (`--estimate`, and the end of `--show-prompt`)."""

    steps: tuple[EstimateRow, ...]
    low_usd: float  # every step once, known prices only
    high_usd: float  # every loop at its last pass, known prices only
    unknown: tuple[str, ...]  # steps whose cost cannot be known in advance
    event: str = "estimate"


class RunFinished(NamedTuple):
    workflow: str
    seconds: float
    usage: Usage
    steps: tuple[StepFinished, ...] = ()
    cap_usd: float | None = None  # the run's spend cap, if any
    # How the run ended: set on the last `--json` line, written for every ending (`report`).
    exit_code: int = 0
    status: str = "ok"
    verdict: str = "none"  # pass | revise | none, from the last `Review status:` line
    checkpoint: str | None = None
    reason: str | None = None
    patch: str | None = None  # an isolated run's patch of its own changes
    branch: str | None = None  # ... or the branch they were committed on (--branch)
    event: str = "run_finished"


class RunFailed(NamedTuple):
    workflow: str
    reason: str
    exit_code: int
    step_id: str | None
    seconds: float
    usage: Usage
    checkpoint: str | None = None
    steps: tuple[StepFinished, ...] = ()
    failed_usage: Usage | None = None  # what the failed step spent, when known
    cap_usd: float | None = None  # the run's spend cap, if any
    event: str = "run_failed"


Event = (
    RunStarted
    | StepStarted
    | PromptBuilt
    | ContextNoted
    | Notice
    | BudgetReached
    | TextChunk
    | Retrying
    | Progress
    | UsageReported
    | StepFinished
    | LoopIteration
    | CheckpointSaved
    | Estimated
    | RunFinished
    | RunFailed
)


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


class AfterStart:
    """A sink that emits `held` events just after the run's `RunStarted`: a preview's notes
    (its parameter values) then follow `run_started`, which a reader may take as the first."""

    def __init__(self, sink: EventSink, held: list[Event]) -> None:
        self.sink, self.held = sink, held

    def emit(self, event: Event) -> None:
        self.sink.emit(event)
        if isinstance(event, RunStarted):
            for later in self.held:
                self.sink.emit(later)
            self.held = []


def to_dict(event: Event) -> dict[str, Any]:
    """The event as plain JSON-ready data (records become objects, tuples lists), its `event`
    name first."""
    data: dict[str, Any] = _plain(event)
    return {"event": data.pop("event"), **data}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {name: _plain(item) for name, item in value._asdict().items()}
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Usage):
        return dataclasses.asdict(value)
    return value
