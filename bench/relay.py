"""The `relay` benchmark group: a stream through the relay that meters capped agents
(`aethr/backends/relay.py`) against the same stream straight from the loopback server.

Each pair is the same request, direct then relayed, alternated so that load on the machine
falls on both alike; the figures are medians of the pairs. Time to first byte is until the
first body byte of the answer arrives; total is until its end.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aethr.backends.relay import Relay
from tests.fake_openai import FakeOpenAI

PAIRS = 40
TEXT = "a streamed answer of a few thousand characters, " * 80  # 500 SSE events of 8 characters


def _timed(base: str) -> tuple[float, float]:
    """One streamed Responses call to `base`: seconds to its first body byte, and to its end."""
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=60)
    start = time.perf_counter()
    connection.request("POST", "/v1/responses", json.dumps({"model": "gpt", "stream": True}))
    answer = connection.getresponse()
    answer.read1(1)
    first = time.perf_counter() - start
    while answer.read1(65536):
        pass
    total = time.perf_counter() - start
    connection.close()
    return first, total


def _count(relay: Relay, counted: list[object]) -> None:
    """As aethr counts an ended call (on the relay's thread here: no agent to post to)."""
    taken = relay.take()
    counted.extend(taken)
    relay.counted(len(taken))


def run(record: Callable[..., Any]) -> None:
    server = FakeOpenAI([{"kind": "stream", "text": TEXT}]).start()
    counted: list[object] = []
    relay = Relay(server.base_url, lambda: _count(relay, counted), timeout=60)
    try:
        with relay:
            _timed(server.base_url), _timed(relay.url)  # warm both paths
            pairs = [(_timed(server.base_url), _timed(relay.url)) for _ in range(PAIRS)]
            relay.quiet(10)  # the last call's end may come just after its last byte
    finally:
        server.stop()
    assert len(counted) == PAIRS + 1, "the relay read every call's usage"
    for index, what in enumerate(("time to first byte", f"whole stream ({len(TEXT) // 8} events)")):
        direct = statistics.median(p[0][index] for p in pairs) * 1000
        relayed = statistics.median(p[1][index] for p in pairs) * 1000
        record("relay", f"Responses stream through the relay: {what}", relayed, direct, None, "ms", "direct")
