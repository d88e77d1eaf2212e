"""Watching one model call as it streams: three time limits, and the provider's own finish.

A call runs on a worker thread and hands its chunks to the caller through a queue,
so a hang is noticed by the clock, not by a socket option:
- first byte: the first chunk must come within `first_byte` seconds (a server that
  accepts and never answers, or sends headers and then stalls);
- idle: later chunks may not stop for more than `idle` seconds;
- whole call: the call may not run past `total` seconds.
Each is its own `Hung` error naming the limit and the variable that raises it.
An abandoned worker ends with its connection (LiteLLM's own timeout is the idle one).

Gemini: LiteLLM marks every Gemini chunk as finished, so a cut stream looks whole.
`finish_sniffer()` gives a client that watches the raw bytes for Gemini's own
`finishReason`, the only proof that the provider finished.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple


class Limits(NamedTuple):
    first_byte: float
    idle: float
    total: float


class Hung(Exception):
    """A call that stopped answering: which limit ran out, and how to raise it."""

    def __init__(self, what: str, seconds: float, variable: str, limit: str) -> None:
        super().__init__(f"{what} within {seconds:g}s")
        self.what = what
        self.seconds = seconds
        self.variable = variable
        self.limit = limit  # the limit's name as a retry line says it: "first-byte limit"


def watched(
    start: Callable[[], Iterable[Any]], limits: Limits, clock: Callable[[], float] = time.monotonic
) -> Iterator[Any]:
    """Items of `start()`, made and iterated on a worker thread, each within the limits.
    Raises Hung, or whatever the call raised."""
    items: queue.Queue[tuple[str, Any]] = queue.Queue()

    def work() -> None:
        try:
            for item in start():
                items.put(("item", item))
            items.put(("end", None))
        except BaseException as exc:  # handed to the caller's thread, which decides
            items.put(("error", exc))

    threading.Thread(target=work, name="aethr-model-call", daemon=True).start()
    begin = clock()
    last: float | None = None
    while True:
        whole = begin + limits.total
        gap = (last + limits.idle) if last is not None else (begin + limits.first_byte)
        now = clock()
        if now >= min(whole, gap):
            raise _which(now >= whole, last is None, limits)
        try:
            kind, value = items.get(timeout=max(min(whole, gap) - now, 0.01))
        except queue.Empty:
            continue
        if kind == "end":
            return
        if kind == "error":
            raise value
        last = clock()
        yield value


def _which(whole: bool, first: bool, limits: Limits) -> Hung:
    if whole:
        return Hung("no complete answer", limits.total, "AETHR_TIMEOUT (or the step's `timeout`)", "request timeout")
    if first:
        return Hung("no first byte of an answer", limits.first_byte, "AETHR_FIRST_BYTE_TIMEOUT", "first-byte limit")
    return Hung("the answer stalled: no further chunk", limits.idle, "AETHR_IDLE_TIMEOUT", "idle limit")


class Finish:
    """Set when the raw stream carried the provider's own finish marker."""

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.seen = False


def finish_sniffer(marker: bytes, timeout: float) -> tuple[Any, Finish]:
    """A LiteLLM HTTP client whose responses are watched for `marker` as they stream."""
    import httpx
    from litellm.llms.custom_httpx.http_handler import HTTPHandler

    finish = Finish(marker)

    class Watched(httpx.SyncByteStream):
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __iter__(self) -> Iterator[bytes]:
            tail = b""
            for chunk in self.inner:
                if marker in tail + chunk:
                    finish.seen = True
                tail = chunk[-len(marker) :]
                yield chunk

        def close(self) -> None:
            self.inner.close()

    class Transport(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            response.stream = Watched(response.stream)
            return response

    client = httpx.Client(transport=Transport(), timeout=timeout)
    return HTTPHandler(client=client), finish
