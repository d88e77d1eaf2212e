"""The run's spend: one budget over every model call, agent step and loop pass.

The cap is the lowest of `--max-cost`, AETHR_MAX_COST and the workflow's `max_cost:`
(none: the meter still counts). What the meter counts is the known floor of the run's
spend (`Usage.known`): the cost of every finished call, failed steps and earlier
attempts (kept in the checkpoint, so a resume counts them) included. A part whose cost
is unknown never lowers it, and where the model's price is known such a part is charged
at least its prompt at that price (`charge`): a retried timeout, a cut stream or
Ctrl-C mid-call may well have been billed.
- Before a model call: refused (exit 6) if the floor plus the cost of its prompt would
  pass the cap; otherwise its max tokens are limited to what the rest of the budget
  pays for, so one call overshoots by at most a rounding.
- During an agent step: the agent's cost, as it reports it after each of its calls (or as
  the relay reads it on the wire, for agents that report only when their turn ends), is
  followed; at the cap the step is stopped, with its whole tree. Its call in flight when
  the cap is reached is the overshoot.
A notice when the floor first reaches 80% of the cap, saying the share it reached.
"""

from __future__ import annotations

import dataclasses
import math

from aethr.backends import Request
from aethr.context import estimate_tokens
from aethr.errors import SpendCapReached
from aethr.usage import Usage, usd

Price = tuple[float, float]  # USD per input and per output token


def charge(usage: Usage, price: Price | None) -> Usage:
    """The usage a step is charged: as reported when its cost is complete; otherwise at least
    its tokens (its prompt's estimate, for a call that never answered) at `price`, as a floor."""
    if usage.complete or price is None:
        return usage
    floor = usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]
    return dataclasses.replace(usage, cost_usd=max(usage.known, floor), at_least=True)


def in_flight(prompt: str) -> Usage:
    """What a call that has started and reported nothing may have cost: its prompt, at an
    unknown price, as a floor."""
    return Usage(estimate_tokens(prompt), 0, None, at_least=True)


class Meter:
    def __init__(self, cap: float | None, spent: Usage) -> None:
        self.cap = cap
        self.spent = spent  # the run's spend before the running step
        self._warned = cap is None or spent.known >= 0.8 * cap  # a resume past 80% was told already

    def admit(self, request: Request, price: Price | None) -> Request:
        """The request, if this model call may start, with its max tokens limited to what the
        rest of the budget pays for. Raises SpendCapReached if its prompt alone would pass it."""
        if self.cap is not None and request.backend != "model":
            return request._replace(capped=True)  # an agent: its calls are metered (backends.relay)
        if self.cap is None or price is None:
            return request
        left = self.cap - self.spent.known - estimate_tokens(request.prompt) * price[0]
        if left <= 0:
            raise self.reached(request.step_id, self.spent, "its prompt alone would pass it")
        if price[1] <= 0:
            return request
        most = max(1, math.floor(left / price[1]))
        own = request.endpoint.max_tokens
        if own is not None and own <= most:
            return request
        return request._replace(endpoint=request.endpoint._replace(max_tokens=most, cap_limited=True))

    def watch(self, step_id: str, step_usage: Usage) -> str | None:
        """An agent reported its usage so far: stop it (raise) once the cap is reached; a
        notice when it crosses 80%."""
        if self.cap is None:
            return None
        total = self.spent + step_usage
        if total.known >= self.cap:
            reached = self.reached(step_id, total, "the agent was stopped there, with every process it started")
            reached.usage = step_usage.cut_short()
            raise reached
        return self._near(total)

    def commit(self, spent: Usage) -> str | None:
        """The run's spend is now `spent` (a step finished); a notice when it crosses 80%."""
        self.spent = spent
        return self._near(spent)

    def _near(self, total: Usage) -> str | None:
        if self.cap is None or self._warned or total.known < 0.8 * self.cap:
            return None
        self._warned = True
        floor = "at least " if not total.complete else ""
        share = round(100 * total.known / self.cap)
        return f"the run has spent {floor}{usd(total.known)} of its {usd(self.cap)} cap ({share}%)"

    def reached(self, step_id: str, spent: Usage, why: str) -> SpendCapReached:
        """The cap error at `step_id`, naming the run's whole spend, `spent`."""
        assert self.cap is not None
        floor = "≥" if not spent.complete else ""
        return SpendCapReached(
            f"the spend cap of {usd(self.cap)} is reached at step '{step_id}' (spent {floor}{usd(spent.known)}): {why}",
            hint="resume with a higher cap to go on, counting what was spent: "
            "aethr run --resume-checkpoint … --max-cost USD",
        )
