"""Before a run under a spend cap: can the cap be kept at all, and is there room left?

A cap is only as good as the costs it can see. A model step needs a known price (the
workflow's `prices:` or LiteLLM's table). An agent step needs a cost it reports itself
(Claude Code's `total_cost_usd`, OpenCode's per-call `cost`) or a known price for its
model, at which its tokens are priced call by call as the relay reads them on the wire
(Codex, Gemini CLI: they report usage only when their turn ends). Such an agent must be
routable through the relay: one that follows the user's own configuration
(`inherit_user_config`) is refused, with a usage error (exit 2). A resume needs
the cap above the known floor of what the run already spent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aethr import agents
from aethr.errors import EnvironmentNotReady, UsageError
from aethr.usage import Usage, usd

if TYPE_CHECKING:
    from aethr.backends.router import Backends
    from aethr.schema import Step


def check(cap: float, backends: Backends, spent: Usage) -> None:
    """Raise EnvironmentNotReady for a step whose cost the cap cannot see (live runs only), or
    UsageError when `spent`, the run's known floor so far, already reaches the cap."""
    if backends.mode == "live":
        for step in backends.workflow.steps:
            _seen(step, backends)
    if spent.known >= cap:
        floor = "at least " if not spent.complete else ""
        raise UsageError(
            f"a cap of {usd(cap)} is at or below what this run already spent ({floor}{usd(spent.known)})",
            hint="give a higher --max-cost to go on",
        )


def _seen(step: Step, backends: Backends) -> None:
    model = backends.model_for(step)
    if step.kind == "model" and backends.price_for(step) is None:
        raise EnvironmentNotReady(
            f"step '{step.id}' uses {model}, which has no known price, and the run has a spend cap",
            hint=f"add `prices: {{'{model}': {{input: USD, output: USD}}}}` (per million tokens) "
            "to the workflow, or run without a cap",
        )
    backend = backends.for_step(step)
    if step.kind not in agents.BY_NAME or getattr(backend, "reports_cost", False):
        return
    _routable(step, getattr(backend, "upstream", None) is not None)
    from aethr import pricing

    if model is None or pricing.of(model, backends.endpoint_for(step).price) is None:
        raise EnvironmentNotReady(
            f"step '{step.id}' runs {step.kind} with {model or 'its default model'}, which reports no cost "
            "and has no known price, and the run has a spend cap",
            hint="choose a model in LiteLLM's price table for the role, or add a `prices:` entry for it, "
            "or run without a cap",
        )


def _routable(step: Step, relayed: bool) -> None:
    """An agent that reports its usage only when its turn ends is capped through the relay
    (`backends.relay`), which needs to be its endpoint: raise UsageError where it cannot be."""
    title = agents.BY_NAME[step.kind].title
    if not relayed:
        why = f"{title} reports no cost as it goes, and aethr's relay does not speak its provider's format"
    elif step.inherit_user_config:
        why = (
            f"it sets `inherit_user_config`, so {title} follows your own configuration's endpoint and "
            "login, which aethr cannot route through the relay that meters its calls"
        )
    else:
        return
    raise UsageError(
        f"step '{step.id}' cannot be held to the run's spend cap: {why}",
        hint="drop `inherit_user_config` from the step (aethr then hands it its endpoint), or run without a cap",
    )
