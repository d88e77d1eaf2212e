"""What a run will cost, before it runs: one row per step, from the exact assembled prompt.

The estimate is built from a preview (nothing is called): each step's prompt as
`--show-prompt` shows it, priced with the workflow's `prices:` or LiteLLM's table
(read as data: no litellm import). Output tokens are the step's
`max_output_tokens`, or an assumed 1,000. A step inside a loop runs one to
`max_iterations` times (nested loops: the product), so the total is a range: every
step once, to every loop at its last pass. A model with no known price, an agent (whose own calls aethr
cannot see in advance) and a command show as unknown, never $0; the total then
says it leaves them out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from aethr.context import estimate_tokens
from aethr.events import Estimated, EstimateRow, Event, EventSink, PromptBuilt, RunFinished

if TYPE_CHECKING:
    from aethr.backends.router import Backends
    from aethr.schema import Workflow

ASSUMED_OUTPUT = 1_000


def passes(workflow: Workflow) -> dict[str, int]:
    """How many times each step can run: the product of the `max_iterations` of the loops it
    is inside, since each pass of an outer loop grants every inner loop a fresh round."""
    found = {s.id: 1 for s in workflow.steps}
    for index, step in enumerate(workflow.steps):
        if step.repeat is None:
            continue
        start = workflow.step_index(step.repeat.back_to)
        for inner in workflow.steps[start : index + 1]:
            found[inner.id] *= step.repeat.max_iterations
    return found


def build(workflow: Workflow, backends: Backends, prompts: dict[str, str]) -> Estimated:
    """The estimate of every step whose prompt the preview built."""
    rows = []
    most = passes(workflow)
    for step in workflow.steps:
        prompt = prompts.get(step.id, "")
        if step.kind == "command":  # runs no model: costs nothing
            rows.append(EstimateRow(step.id, "command", None, 0, None, 0, False, 0.0, most[step.id]))
            continue
        tokens_in = estimate_tokens(prompt)
        tokens_out = step.max_output_tokens or ASSUMED_OUTPUT
        price = backends.price_for(step)
        usd = None if price is None else tokens_in * price[0] + tokens_out * price[1]
        model = backends.model_for(step)
        window = _window(model) if step.kind == "model" else None
        rows.append(
            EstimateRow(
                step.id,
                step.kind,
                model,
                tokens_in,
                window,
                tokens_out,
                step.max_output_tokens is None,
                usd,
                most[step.id],
            )
        )
    known = [r for r in rows if r.usd is not None]
    low = sum(r.usd or 0.0 for r in known)
    high = sum((r.usd or 0.0) * r.passes for r in known)
    unknown = tuple(r.step_id for r in rows if r.usd is None)
    return Estimated(tuple(rows), low, high, unknown)


def _window(model: str | None) -> int | None:
    from aethr import pricing

    return pricing.window(model) if model else None


class Estimating(NamedTuple):
    """A sink that passes every event on and, before the run's end, the estimate."""

    inner: EventSink
    workflow: Workflow
    backends: Backends
    prompts: dict[str, str]

    def emit(self, event: Event) -> None:
        if isinstance(event, PromptBuilt):
            self.prompts.setdefault(event.step_id, event.prompt)
        if isinstance(event, RunFinished):
            self.inner.emit(build(self.workflow, self.backends, self.prompts))
        self.inner.emit(event)
