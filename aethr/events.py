"""What a run reports, as frozen events sent to an `EventSink`.

The executor emits; renderers (Rich, plain text, JSON lines, prompt preview)
show. Every event serializes to one JSON object with an `event` field, so
`--json` and a future record/replay read the same stream.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Usage:
    """Tokens and cost of one step; `cost_usd` is None when the price is unknown."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0

    def __add__(self, other: Usage) -> Usage:
        cost = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            cost,
        )


@dataclass(frozen=True)
class ContextItem:
    """How one context source fared: included, truncated, skipped or refused."""

    source: str
    status: str
    tokens: int
    note: str = ""


@dataclass(frozen=True)
class StepPlan:
    id: str
    role: str
    backend: str
    model: str | None


@dataclass(frozen=True)
class RunStarted:
    workflow: str
    task: str
    mode: str  # "mock", "live" or "preview"
    steps: tuple[StepPlan, ...]
    checkpoint: str | None = None
    resumed_from: str | None = None
    event: str = "run_started"


@dataclass(frozen=True)
class StepStarted:
    step_id: str
    role: str
    backend: str
    model: str | None
    iteration: int
    event: str = "step_started"


@dataclass(frozen=True)
class PromptBuilt:
    step_id: str
    prompt: str
    context: tuple[ContextItem, ...]
    event: str = "prompt_built"


@dataclass(frozen=True)
class TextChunk:
    step_id: str
    text: str
    event: str = "text"


@dataclass(frozen=True)
class Retrying:
    step_id: str
    attempt: int
    delay: float
    reason: str
    event: str = "retrying"


@dataclass(frozen=True)
class StepFinished:
    step_id: str
    role: str
    model: str | None
    iteration: int
    seconds: float
    usage: Usage
    output: str
    changed_files: tuple[str, ...] | None = None
    event: str = "step_finished"


@dataclass(frozen=True)
class LoopIteration:
    step_id: str
    back_to: str
    passes: int
    max_iterations: int
    passed: bool
    reason: str
    event: str = "loop_iteration"


@dataclass(frozen=True)
class CheckpointSaved:
    path: str
    step_id: str
    event: str = "checkpoint_saved"


@dataclass(frozen=True)
class RunFinished:
    workflow: str
    seconds: float
    usage: Usage
    steps: tuple[StepFinished, ...] = field(default_factory=tuple)
    event: str = "run_finished"


@dataclass(frozen=True)
class RunFailed:
    workflow: str
    reason: str
    exit_code: int
    step_id: str | None
    seconds: float
    usage: Usage
    checkpoint: str | None = None
    steps: tuple[StepFinished, ...] = field(default_factory=tuple)
    event: str = "run_failed"


Event = (
    RunStarted
    | StepStarted
    | PromptBuilt
    | TextChunk
    | Retrying
    | StepFinished
    | LoopIteration
    | CheckpointSaved
    | RunFinished
    | RunFailed
)


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


def to_dict(event: Event) -> dict[str, Any]:
    """The event as plain JSON-ready data (tuples become lists), its `event` name first."""
    data = dataclasses.asdict(event)
    return {"event": data.pop("event"), **data}
