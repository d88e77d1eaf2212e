"""The spend cap: one budget over every model call, agent step and loop pass of a run.

The cap is the lowest of `--max-cost`, AETHR_MAX_COST and the workflow's
`max_cost:`. Spent is the run's `state.spent`: the cost of every finished call,
failed steps and earlier attempts (kept in the checkpoint) included.
- Before a model call: refused (exit 6) if spent plus the cost of its prompt
  would pass the cap; otherwise its max tokens are limited to what the rest of
  the budget can pay for, so one call overshoots by at most a rounding.
- During an agent step: the agent's cost, as it reports it after each of its
  calls, is followed; at the cap the step is stopped, with its whole tree. Its
  call in flight when the cap is reached is the overshoot.
A notice at 80% of the cap.
"""

from __future__ import annotations

import math

from aethr.backends import Request
from aethr.context import estimate_tokens
from aethr.errors import SpendCapReached
from aethr.events import Usage


class Ledger:
    def __init__(self, cap: float, spent: Usage) -> None:
        self.cap = cap
        self.spent = spent  # before the running step
        self._warned = False

    def admit(self, request: Request, price: tuple[float, float] | None) -> Request:
        """The request, if this model call may start, with its max tokens limited to what the
        rest of the budget pays for. Raises SpendCapReached if its prompt alone would pass it."""
        if price is None or request.backend != "model":
            return request
        left = self.cap - (self.spent.cost_usd or 0.0) - estimate_tokens(request.prompt) * price[0]
        if left <= 0:
            raise self.reached(request.step_id, "its prompt alone would pass it")
        if price[1] <= 0:
            return request
        most = max(1, math.floor(left / price[1]))
        limit = min(most, request.endpoint.max_tokens or most)
        return request._replace(endpoint=request.endpoint._replace(max_tokens=limit))

    def watch(self, step_id: str, step_usage: Usage) -> None:
        """An agent reported its usage so far: stop it (raise) once the cap is reached."""
        spent = (self.spent.cost_usd or 0.0) + (step_usage.cost_usd or 0.0)
        if spent >= self.cap:
            reached = self.reached(step_id, "the agent was stopped there, with every process it started")
            reached.usage = step_usage.cut_short()
            raise reached

    def near(self) -> str | None:
        """A notice, once, when the run has spent 80% of the cap."""
        spent = self.spent.cost_usd or 0.0
        if self._warned or spent < 0.8 * self.cap:
            return None
        self._warned = True
        return f"the run has spent ${spent:.4f} of its ${self.cap:.4f} cap (80%)"

    def reached(self, step_id: str, why: str) -> SpendCapReached:
        return SpendCapReached(
            f"the spend cap of ${self.cap:.4f} is reached at step '{step_id}' "
            f"(spent ${self.spent.cost_usd or 0.0:.4f}): {why}",
            hint="resume with a higher cap to go on, counting what was spent: "
            "aethr run --resume-checkpoint … --max-cost USD",
        )
