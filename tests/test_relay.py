"""The relay that meters an agent's calls on the wire (`aethr/backends/relay.py`): the real
Codex and Gemini CLI binaries, under a spend cap, against the loopback fake that asks for a
tool call on every answer (a turn that never ends by itself); the usage read in each wire
format; and the agents a cap cannot hold, refused before they start."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from aethr import pricing
from aethr.backends.metering import priced
from aethr.backends.relay import Relay
from aethr.backends.wire import Tokens, UsageReader
from tests.conftest import aethr, ceiling, wait_until
from tests.fake_openai import FakeOpenAI
from tests.test_agents import AGENTS, Agent, left_in, setup

CODEX, GEMINI = AGENTS[1], AGENTS[2]
# Every answer of the fake is one tool call of 11 input and 7 (Responses) or 9 (Gemini)
# output tokens; the cap is passed by the fourth call: (cap, cost of one call).
CAPS = {"codex": (0.0003, 11 * 1.25e-6 + 7 * 10e-6), "gemini": (0.0001, 11 * 0.3e-6 + 9 * 2.5e-6)}


def _looping_tool(agent: Agent, root: Path) -> dict[str, object]:
    if agent.name == "codex":
        return {"kind": "tool", "name": "exec_command", "arguments": {"cmd": "echo again"}}
    return {"kind": "tool", "name": "read_file", "arguments": {"file_path": str(root / "a.txt")}}


@pytest.mark.parametrize("agent", [CODEX, GEMINI], ids=["codex", "gemini"])
def test_an_agent_in_a_turn_of_many_calls_is_stopped_within_one_call_of_the_cap(
    tmp_path: Path, server: FakeOpenAI, agent: Agent
) -> None:
    repo = setup(tmp_path, agent)
    server.script = [_looping_tool(agent, repo)]  # repeats: only the cap can end the turn
    cap, per_call = CAPS[agent.name]
    result = aethr("run", "task", "--max-cost", f"{cap}", "--json", cwd=repo, env=agent.env(server.base_url, tmp_path))
    assert result.code == 6, result.both[-3000:]
    reached = next(n for n in range(1, 100) if n * per_call >= cap)  # the call that reaches the cap
    assert reached <= len(server.requests) <= reached + 1, "stopped within one call of the cap"
    events = [json.loads(line) for line in result.out.splitlines()]
    budget = next(e for e in events if e["event"] == "budget")
    assert budget["step_id"] == "implement" and budget["spent_usd"] >= cap
    assert (events[-1]["event"], events[-1]["status"]) == ("run_finished", "spend_cap")
    assert "spend cap of" in result.err and "the agent was stopped there" in result.err
    assert "sk-test-agent" not in result.both, "the relay never shows a key"
    assert left_in(repo) == [], "nothing is left running"


# (path, body, the tokens the fake's answer carries) in each wire format the relay reads
FORMATS = {
    "anthropic messages": ("/v1/messages", {"model": "claude", "stream": True}, Tokens(11, 0, 7, "claude")),
    "openai responses": ("/v1/responses", {"model": "gpt", "stream": True}, Tokens(11, 0, 7, "gpt")),
    "openai chat": ("/v1/chat/completions", {"model": "gpt", "stream": True}, Tokens(11, 0, 7, "gpt")),
    "openai chat, not streamed": ("/v1/chat/completions", {"model": "gpt"}, Tokens(5, 0, 5, "gpt")),
    "gemini": ("/v1beta/models/g-flash:streamGenerateContent?alt=sse", {}, Tokens(11, 0, 7, "g-flash")),
}


def _post(base: str, path: str, body: dict[str, object]) -> tuple[int, bytes, list[bytes]]:
    """POST through `base` (a host:port URL); the status, the body, and the pieces it came in."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.netloc, timeout=ceiling(60))
    connection.request("POST", path, json.dumps(body), {"Authorization": "Bearer sk-relay-secret-0123"})
    answer = connection.getresponse()
    pieces = list(iter(lambda: answer.read1(65536), b""))
    connection.close()
    return answer.status, b"".join(pieces), pieces


@pytest.mark.parametrize("wire", FORMATS)
def test_the_relay_passes_each_answer_through_unchanged_and_reads_its_usage(
    server: FakeOpenAI, wire: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path, body, tokens = FORMATS[wire]
    server.script = [{"kind": "stream", "text": "a streamed answer in several pieces"}]
    direct = _post(server.base_url, path, body)
    calls: list[Tokens] = []
    told = threading.Event()
    with Relay(server.base_url, told.set, timeout=60) as relay:
        relayed = _post(relay.url, path, body)
        wait_until(told.is_set, "the relay tells of the ended call")
        calls = relay.take()
        relay.counted(len(calls))
    assert relayed[:2] == direct[:2], "the answer is passed through byte for byte"
    assert calls == [tokens]
    assert server.headers[1]["Authorization"] == "Bearer sk-relay-secret-0123", "headers pass as they came"
    assert server.requests[1] == server.requests[0], "the request is forwarded unchanged"
    assert "sk-relay-secret" not in "".join(capsys.readouterr()), "nothing is logged"


def test_a_stream_is_passed_on_as_each_piece_arrives(server: FakeOpenAI) -> None:
    """SSE is never held back: the first events reach the agent while the stream runs on (a
    relay that waited for the end would hang here until the fake's runaway stream ends)."""
    server.runaway_seconds = ceiling(300)
    server.script = [{"kind": "runaway"}]
    with Relay(server.base_url, lambda: None, timeout=60) as relay:
        connection = http.client.HTTPConnection(urlsplit(relay.url).netloc, timeout=ceiling(60))
        connection.request("POST", "/v1/chat/completions", json.dumps({"stream": True}))
        answer = connection.getresponse()
        seen = b""
        while seen.count(b"more ") < 3:
            seen += answer.read1(65536)
        connection.close()
    assert answer.status == 200 and seen.startswith(b"data: ")


# Each format's events as its provider documents them, with cached tokens: (events, tokens).
EVENTS = {
    "anthropic messages": (
        [
            {
                "type": "message_start",
                "message": {
                    "usage": {
                        "input_tokens": 5,
                        "cache_read_input_tokens": 90,
                        "cache_creation_input_tokens": 10,
                        "output_tokens": 1,
                    }
                },
            },
            {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "hi"}},
            {"type": "message_delta", "usage": {"output_tokens": 40}},
        ],
        Tokens(105, 90, 40, written=10),
    ),
    "openai responses": (
        [
            {"type": "response.created", "response": {"usage": None}},
            {
                "type": "response.completed",
                "response": {
                    "usage": {"input_tokens": 120, "output_tokens": 30, "input_tokens_details": {"cached_tokens": 100}}
                },
            },
        ],
        Tokens(120, 100, 30),
    ),
    "openai chat": (
        [
            {"choices": [{"delta": {"content": "hi"}}], "usage": None},
            {
                "choices": [],
                "usage": {"prompt_tokens": 70, "completion_tokens": 8, "prompt_tokens_details": {"cached_tokens": 64}},
            },
        ],
        Tokens(70, 64, 8),
    ),
    "gemini": (
        [
            {"candidates": [], "usageMetadata": {"promptTokenCount": 50, "cachedContentTokenCount": 32}},
            {
                "candidates": [],
                "usageMetadata": {
                    "promptTokenCount": 50,
                    "cachedContentTokenCount": 32,
                    "candidatesTokenCount": 6,
                    "thoughtsTokenCount": 4,
                },
            },
        ],
        Tokens(50, 32, 10),
    ),
}


@pytest.mark.parametrize("wire", EVENTS)
def test_each_wire_format_s_usage_is_read_with_its_cached_tokens(wire: str) -> None:
    events, tokens = EVENTS[wire]
    stream = b"".join(b"event: x\ndata: %s\n\n" % json.dumps(event).encode() for event in events)
    reader = UsageReader(event_stream=True)
    for at in range(0, len(stream), 7):  # in pieces cut anywhere, as they come off a socket
        reader.feed(stream[at : at + 7])
    assert reader.close() == tokens
    whole = UsageReader(event_stream=False)  # the same events as one JSON answer (Gemini's array)
    whole.feed(json.dumps(events).encode())
    assert whole.close() == tokens


def test_an_answer_without_usage_reads_as_none() -> None:
    reader = UsageReader(event_stream=True)
    reader.feed(b'data: {"error": {"code": 429}}\n\ndata: [DONE]\n\n')
    assert reader.close() is None


@pytest.mark.parametrize("agent", [CODEX, GEMINI], ids=["codex", "gemini"])
def test_an_agent_on_the_user_s_own_config_is_refused_under_a_cap_before_it_starts(
    tmp_path: Path, server: FakeOpenAI, agent: Agent
) -> None:
    repo = setup(tmp_path, agent, extra="    inherit_user_config: true\n")
    env = agent.env(server.base_url, tmp_path)
    refused = aethr("run", "task", "--max-cost", "1", cwd=repo, env=env)
    assert refused.code == 2, refused.both
    assert "step 'implement' cannot be held to the run's spend cap" in refused.err
    assert "inherit_user_config" in refused.err and "relay" in refused.err
    assert "Traceback" not in refused.err
    assert server.requests == [] and left_in(repo) == [], "refused before it started"


@pytest.mark.parametrize("agent", [CODEX, GEMINI], ids=["codex", "gemini"])
def test_under_a_cap_an_upstream_that_refuses_connections_fails_in_bounded_time(agent: Agent, tmp_path: Path) -> None:
    """The relay closes the agent's connection when its upstream cannot be reached: the agent
    meets the failure it would meet without the relay, and is stopped as it would be."""
    repo = setup(tmp_path, agent)
    env = agent.env("http://127.0.0.1:9/v1", tmp_path)  # the discard port: nothing listens
    result = aethr("run", "task", "--max-cost", "1", cwd=repo, env=env)  # unbounded retries: the call's ceiling
    assert result.code == 1, result.both
    assert "could not reach http://127.0.0.1:9" in result.err and "refused" in result.err, result.err
    assert left_in(repo) == []


def test_each_call_is_priced_as_the_model_it_named() -> None:
    """An agent's side calls (titles, routing, summaries) name smaller models than the step's."""
    tokens = Tokens(1000, 0, 100)
    small = pricing.price("openai/gpt-4o-mini")
    step = pricing.price("openai/gpt-5.1-codex")
    assert small is not None and step is not None
    assert priced(tokens._replace(model="gpt-4o-mini"), "openai/gpt-5.1-codex").cost_usd == small.cost(1000, 100)
    assert priced(tokens._replace(model="not-a-model"), "openai/gpt-5.1-codex").cost_usd == step.cost(1000, 100)
    assert priced(tokens, "openai/not-a-model").cost_usd is None, "unknown, never $0"
    listed = pricing.Price(1e-6, 2e-6, None)  # a `prices:` entry for the step's model
    assert priced(tokens._replace(model="team-model"), "openai/team-model", listed).cost_usd == listed.cost(1000, 100)


def test_a_request_the_relay_cannot_read_shows_nothing_of_it(
    server: FakeOpenAI, capfd: pytest.CaptureFixture[str]
) -> None:
    """A request that fails inside the relay (here a chunked body whose size line is not a
    number) closes the agent's connection, and no traceback quoting the request is printed."""
    request = b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nsk-relay-secret\r\n"
    with Relay(server.base_url, lambda: None, timeout=60) as relay:
        host, port = urlsplit(relay.url).netloc.split(":")
        with socket.create_connection((host, int(port)), timeout=ceiling(60)) as sock:
            sock.sendall(request)
            assert sock.recv(65536) == b"", "closed, with no answer"
    assert server.requests == []
    assert "sk-relay-secret" not in "".join(capfd.readouterr())
