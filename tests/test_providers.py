"""Honest live calls on every provider format and behind a gateway, through real LiteLLM
HTTP calls to the loopback server: OpenAI chat, Anthropic Messages, Gemini streaming.

One hang per format is shown at default settings for OpenAI (within 60 s, two
attempts); the Anthropic and Gemini hangs use a 3-second first-byte limit, since
the watch on the clock is the same code whatever the provider.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import aethr, refused_port, write_workflow
from tests.fake_openai import FakeOpenAI
from tests.test_resume import checkpoints

FORMATS = {
    "openai": ("openai:gpt-4o-mini", "OPENAI_API_KEY", "OPENAI_API_BASE", "/v1"),
    "anthropic": ("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY", "ANTHROPIC_API_BASE", ""),
    "gemini": ("gemini:gemini-2.5-flash", "GEMINI_API_KEY", "GEMINI_API_BASE", ""),
}
ONE = "workflow: one\nroles: {reviewer: Review.}\nmodels: {reviewer: MODEL}\nsteps:\n  - {id: review, role: reviewer}\n"


def setup(repo: Path, server: FakeOpenAI, fmt: str, **extra: str) -> dict[str, str]:
    model, key, base, suffix = FORMATS[fmt]
    write_workflow(repo, ONE.replace("MODEL", model))
    return {
        "AETHR_LIVE": "1",
        key: "sk-test-provider-0123456789",
        base: f"http://127.0.0.1:{server.port}{suffix}",
        **extra,
    }


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_whole_answer_is_a_success(repo: Path, server: FakeOpenAI, fmt: str) -> None:
    server.script = [{"kind": "stream", "text": "The whole answer, with its finish."}]
    result = aethr("run", "task", cwd=repo, env=setup(repo, server, fmt))
    assert result.code == 0, result.both
    assert "The whole answer, with its finish." in result.out
    assert "tokens 11+7" in result.out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["drop", "empty"])
def test_a_cut_or_empty_answer_fails_and_keeps_its_checkpoint(
    repo: Path, server: FakeOpenAI, clean_env: Path, fmt: str, kind: str
) -> None:
    server.script = [{"kind": kind, "text": "half an ans"}]
    result = aethr("run", "task", cwd=repo, env=setup(repo, server, fmt))
    assert result.code == 1, result.both
    expected = "broke off part-way" if kind == "drop" else "the model's answer was empty"
    assert expected in result.err
    assert result.err.count("step 'review' (role reviewer") == 1, "one message, not wrapped twice"
    assert "resume: aethr run --resume-checkpoint" in result.err and len(checkpoints(clean_env)) == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_429_is_retried_after_the_providers_wait(repo: Path, server: FakeOpenAI, fmt: str) -> None:
    server.script = [
        {"kind": "status", "code": 429, "headers": {"Retry-After": "2"}},
        {"kind": "stream", "text": "after the wait"},
    ]
    result = aethr("run", "task", cwd=repo, env=setup(repo, server, fmt))
    assert result.code == 0, result.both
    assert "rate limited (429); retry 1 in 2.0s" in result.err
    assert len(server.requests) == 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_refused_connection_names_the_base_url_variable(repo: Path, server: FakeOpenAI, fmt: str) -> None:
    env = setup(repo, server, fmt)
    _, _, base, suffix = FORMATS[fmt]
    with refused_port() as dead:
        env[base] = f"http://127.0.0.1:{dead}{suffix}"
        result = aethr("run", "task", cwd=repo, env=env)
    assert result.code == 1, result.both
    assert "cannot reach the provider" in result.err and base in result.err
    assert "(500)" not in result.err and "resume later" not in result.err


@pytest.mark.waits
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["hang", "stall"])
def test_a_silent_server_is_reported_in_time_after_two_attempts(
    repo: Path, server: FakeOpenAI, fmt: str, kind: str
) -> None:
    defaults = fmt == "openai" and kind == "hang"
    env = setup(repo, server, fmt, **({} if defaults else {"AETHR_FIRST_BYTE_TIMEOUT": "3"}))
    server.script = [{"kind": kind}]
    result = aethr("run", "task", cwd=repo, env=env)  # without the first-byte timeout: the call's ceiling
    assert result.code == 1, result.both
    assert len(server.requests) == 2, "a hang is retried at most once"
    limit = "25" if defaults else "3"
    assert f"no first byte of an answer within {limit}s after 2 attempt(s)" in result.err
    assert "AETHR_FIRST_BYTE_TIMEOUT" in result.err


GATEWAY = """\
workflow: two
roles: {a: A., b: B.}
models:
  a: MODEL_A
  b: MODEL_B
steps:
  - {id: one, role: a}
  - {id: two, role: b}
"""


def test_two_roles_on_two_endpoints_each_with_its_own_key(repo: Path, server: FakeOpenAI) -> None:
    other = FakeOpenAI().start()
    try:
        a = f"{{model: 'openai:team-a', api_base: '{server.base_url}', api_key_env: KEY_A}}"
        b = f"{{model: 'openai:team-b', api_base: '{other.base_url}', api_key_env: KEY_B}}"
        write_workflow(repo, GATEWAY.replace("MODEL_A", a).replace("MODEL_B", b))
        env = {"AETHR_LIVE": "1", "KEY_A": "sk-aaaaaaaaaaaa", "KEY_B": "sk-bbbbbbbbbbbb"}
        result = aethr("run", "task", cwd=repo, env=env)
        assert result.code == 0, result.both
        assert [r["model"] for r in server.requests] == ["team-a"]
        assert [r["model"] for r in other.requests] == ["team-b"]
        assert server.headers[0]["Authorization"] == "Bearer sk-aaaaaaaaaaaa"
        assert other.headers[0]["Authorization"] == "Bearer sk-bbbbbbbbbbbb"
        assert "cost unknown" in result.out or "unknown" in result.out, "unpriced models are unknown, not $0"
    finally:
        other.stop()


def test_a_keyless_local_endpoint(repo: Path, server: FakeOpenAI) -> None:
    entry = f"{{model: 'openai:llama3', api_base: '{server.base_url}', api_key_env: none}}"
    write_workflow(repo, ONE.replace("MODEL", entry))
    result = aethr("run", "task", cwd=repo, env={"AETHR_LIVE": "1"})
    assert result.code == 0, result.both
    assert server.requests[0]["model"] == "llama3"


def test_a_litellm_proxy_model_without_its_key_stops_before_any_request(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, ONE.replace("MODEL", "litellm_proxy:team-model"))
    result = aethr("run", "task", cwd=repo, env={"AETHR_LIVE": "1", "LITELLM_PROXY_API_BASE": server.base_url})
    assert result.code == 4, result.both
    assert "LITELLM_PROXY_API_KEY" in result.err and server.requests == []


def test_a_gateways_cost_header_and_its_retries(repo: Path, server: FakeOpenAI) -> None:
    env = {"AETHR_LIVE": "1", "LITELLM_PROXY_API_KEY": "sk-proxy-0123456789", "LITELLM_PROXY_API_BASE": server.base_url}
    write_workflow(repo, ONE.replace("MODEL", "litellm_proxy:team-model"))
    server.script = [
        {"kind": "stream", "text": "priced by the gateway", "headers": {"x-litellm-response-cost": "0.25"}}
    ]
    result = aethr("run", "task", "--json", cwd=repo, env=env)
    assert result.code == 0, result.both
    finished = next(json.loads(line) for line in result.out.splitlines() if '"step_finished"' in line)
    assert finished["usage"]["cost_usd"] == pytest.approx(0.25)
    server.requests.clear()
    server.script = [{"kind": "status", "code": 503, "headers": {"x-litellm-version": "1.0"}}]
    failed = aethr("run", "task", cwd=repo, env=env)
    assert failed.code == 1 and len(server.requests) == 1, "the gateway already retried: one attempt"


def test_llm_provider_retry_after_is_honoured(repo: Path, server: FakeOpenAI) -> None:
    env = setup(repo, server, "openai")
    server.script = [
        {"kind": "status", "code": 429, "headers": {"llm_provider-retry-after": "2"}},
        {"kind": "stream", "text": "ok"},
    ]
    result = aethr("run", "task", cwd=repo, env=env)
    assert result.code == 0, result.both
    assert "retry 1 in 2.0s" in result.err


def test_a_prices_entry_prices_an_unpriced_model(repo: Path, server: FakeOpenAI) -> None:
    text = (
        ONE.replace("MODEL", "openai:team-model") + "prices:\n  openai:team-model: {input: 1000000, output: 2000000}\n"
    )
    write_workflow(repo, text)
    env = {"AETHR_LIVE": "1", "OPENAI_API_KEY": "sk-test-0123456789", "OPENAI_API_BASE": server.base_url}
    result = aethr("run", "task", "--json", cwd=repo, env=env)
    assert result.code == 0, result.both
    finished = next(json.loads(line) for line in result.out.splitlines() if '"step_finished"' in line)
    assert finished["usage"]["cost_usd"] == pytest.approx(11 * 1.0 + 7 * 2.0)


def test_auth_status_lists_the_keys_the_workflow_needs(repo: Path) -> None:
    entry = "{model: 'openai:team', api_base: 'http://127.0.0.1:9', api_key_env: TEAM_KEY}"
    write_workflow(repo, GATEWAY.replace("MODEL_A", "anthropic:claude-sonnet-4-5").replace("MODEL_B", entry))
    result = aethr("auth", "status", cwd=repo, env={"TEAM_KEY": "sk-team-0123456789"})
    assert result.code == 0, result.both
    needed = result.out.split("needs, for live runs:", 1)[1]
    assert "ANTHROPIC_API_KEY" in needed and "missing" in needed and "roles: a" in needed
    assert "TEAM_KEY" in needed and "set (…6789) from environment" in needed and "roles: b" in needed


def test_a_streamed_call_behind_a_proxy_is_priced_by_its_upstream_model(repo: Path, server: FakeOpenAI) -> None:
    """A LiteLLM proxy sends no cost header on a stream (its headers go before the cost is known),
    but names the upstream model, as checked against a real proxy."""
    env = {"AETHR_LIVE": "1", "LITELLM_PROXY_API_KEY": "sk-proxy-0123456789", "LITELLM_PROXY_API_BASE": server.base_url}
    write_workflow(repo, ONE.replace("MODEL", "litellm_proxy:team-model"))
    server.script = [
        {"kind": "stream", "text": "priced upstream", "headers": {"x-litellm-model-name": "openai/gpt-4o-mini"}}
    ]
    result = aethr("run", "task", "--json", cwd=repo, env=env)
    assert result.code == 0, result.both
    finished = next(json.loads(line) for line in result.out.splitlines() if '"step_finished"' in line)
    assert finished["usage"]["cost_usd"] == pytest.approx(11 * 0.15e-6 + 7 * 0.6e-6)
