"""An agent step under a spend cap, its model calls metered on the wire by the relay.

Codex and Gemini CLI report their usage only when their turn ends. Under a cap aethr
starts a relay (`backends.relay`) for such a step, hands the agent the relay's URL as its
endpoint, and counts each call as the relay reads it: the call's tokens are priced and
added to the step's usage on the thread that follows the agent (`proc.Child.post`), where
the executor's meter sees them and, at the cap, raises; leaving the child's block then
ends its whole tree, and the relay forwards nothing more.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from aethr.backends import Request
from aethr.backends.relay import Relay
from aethr.backends.wire import Tokens
from aethr.errors import StepFailed
from aethr.usage import Usage


class Metered(Protocol):
    """What the relay's counts are added to: the agent's run (`AgentRun`)."""

    usage: Usage
    relayed: bool
    wake: Callable[[Callable[[], None]], None] | None

    def settle(self, total: Usage, metered: bool = False) -> None: ...

    def priced(self, prompt_tokens: int, completion_tokens: int) -> Usage: ...


@contextlib.contextmanager
def routed(request: Request, upstream: str | None, run: Metered) -> Iterator[Request]:
    """`request` as the agent should be started with: under a cap, with its endpoint the
    relay's, which forwards to `upstream` (None: an agent the relay does not route; the cap's
    pre-flight check, `run.budget`, has refused it already when the run is capped)."""
    if not request.capped or upstream is None:
        yield request
        return
    relay = Relay(upstream, lambda tokens: None, request.timeout)
    relay.on_call = _counter(run, relay)
    with relay:
        run.relayed = True
        try:
            yield request._replace(endpoint=request.endpoint._replace(api_base=relay.url))
        except StepFailed as failed:
            if relay.unreachable:  # the agent only saw its connection to the relay close
                failed.message += f" (aethr's relay, which meters its calls, could not reach {relay.unreachable})"
                failed.hint = "check the endpoint (is the server up, is the base URL right?), then resume"
            raise


def _counter(run: Metered, relay: Relay) -> Callable[[Tokens], None]:
    """What the relay calls, on its own thread, once per ended call: the call is counted on
    the agent's thread, and the relay waits for that (its gate stays shut meanwhile)."""

    def count(tokens: Tokens) -> None:
        done = threading.Event()

        def add() -> None:
            try:
                run.settle(run.usage + run.priced(tokens.prompt, tokens.completion), metered=True)
            except BaseException:
                relay.refuse()  # the cap is reached: nothing more goes upstream
                raise
            finally:
                done.set()

        if run.wake is None:
            return
        run.wake(add)
        while not done.wait(0.2):
            if relay.closed:  # the step is over: nobody will count it
                return

    return count
