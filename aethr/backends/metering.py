"""An agent step under a spend cap, its model calls metered on the wire by the relay.

Codex and Gemini CLI report their usage only when their turn ends. Under a cap aethr
starts a relay (`backends.relay`) for such a step, hands the agent the relay's URL as its
endpoint, and counts each call as the relay reads it: the call's tokens are priced and
added to the step's usage on the thread that follows the agent (`proc.Child.post`), where
the executor's meter sees them and, at the cap, raises; leaving the child's block then
ends its whole tree, and the relay forwards nothing more. Calls that end as the agent
exits are counted once it has (`flush`), before the step's usage is read.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Protocol

from aethr import pricing
from aethr.backends import Request
from aethr.backends.relay import Relay
from aethr.backends.wire import Tokens
from aethr.errors import StepFailed
from aethr.pricing import Price
from aethr.usage import Usage

_LAST_CALL_SECONDS = 10.0  # an answer still passing when the agent ends is cut at its next chunk


class Metered(Protocol):
    """What the relay's counts are added to: the agent's run (`AgentRun`)."""

    usage: Usage
    relayed: bool
    wake: Callable[[Callable[[], None]], None] | None
    flush: Callable[[], None]

    def settle(self, total: Usage, metered: bool = False) -> None: ...


@contextlib.contextmanager
def routed(request: Request, upstream: str | None, run: Metered) -> Iterator[Request]:
    """`request` as the agent should be started with: under a cap, with its endpoint the
    relay's, which forwards to `upstream` (None: an agent the relay does not route; the cap's
    pre-flight check, `run.budget`, has refused it already when the run is capped)."""
    if not request.capped or upstream is None:
        yield request
        return
    relay = Relay(upstream, lambda: None, request.timeout)
    count = functools.partial(_count, run, relay, request.model, request.endpoint.price)
    relay.on_call = lambda: run.wake(count) if run.wake else None
    run.flush = functools.partial(_flush, run, relay, count)
    with relay:
        run.relayed = True
        try:
            yield request._replace(endpoint=request.endpoint._replace(api_base=relay.url))
        except StepFailed as failed:
            if relay.unreachable:  # the agent only saw its connection to the relay close
                failed.message += f" (aethr's relay, which meters its calls, could not reach {relay.unreachable})"
                failed.hint = "check the endpoint (is the server up, is the base URL right?), then resume"
            raise


def _count(run: Metered, relay: Relay, step_model: str | None, listed: Price | None) -> None:
    """On the agent's thread: add the calls that have ended to the step's usage (where the
    executor's meter raises at the cap); at the cap, nothing more is forwarded."""
    taken = relay.take()
    try:
        for tokens in taken:
            run.settle(run.usage + priced(tokens, step_model, listed), metered=True)
    except BaseException:
        relay.refuse()
        raise
    finally:
        relay.counted(len(taken))  # only now may a waiting request go on (or be refused)


def _flush(run: Metered, relay: Relay, count: Callable[[], None]) -> None:
    """Once the agent has ended: its last calls, which it may have outrun, are counted too."""
    run.wake = None
    relay.quiet(_LAST_CALL_SECONDS)
    count()


def priced(tokens: Tokens, step_model: str | None, listed: Price | None = None) -> Usage:
    """One call priced as the model it named, under the step's provider (`gemini/` + the
    name in the request): an agent's side calls name smaller models. A call of the step's
    own model, or of a model the table does not know, is priced as the step's model (its
    `prices:` entry, `listed`, else the table) rather than left unknown, which would blind
    the cap."""
    provider, _, bare = (step_model or "").partition("/")
    named = f"{provider}/{tokens.model}" if bare and tokens.model else None
    price = pricing.price(named) if named and named != step_model else None
    price = price or pricing.of(step_model, listed)
    cost = None if price is None else price.cost(tokens.prompt, tokens.completion, tokens.cached, tokens.written)
    return Usage(tokens.prompt, tokens.completion, cost, cached_tokens=tokens.cached, cache_write_tokens=tokens.written)
