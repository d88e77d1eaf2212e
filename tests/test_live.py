"""Live runs through real LiteLLM HTTP calls to the project's loopback server.

Nothing here reaches a real provider: OPENAI_API_BASE points every call at 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from tests.conftest import LIVE_LOOP, WORKFLOW_ONE_STEP, aethr, ceiling, refused_port, write_workflow
from tests.fake_openai import FakeOpenAI

KEY = "sk-test-0123456789abcdef"

ONE = WORKFLOW_ONE_STEP.format(context="file:README.md")


def live_env(server: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {"AETHR_LIVE": "1", "OPENAI_API_KEY": KEY, "OPENAI_API_BASE": server.base_url, **extra}


# One LiteLLM import serves several scenarios: each step below is one (the import costs seconds).
FOUR = """\
workflow: four
roles: {a: Review it., b: B., c: C., d: D.}
models: {a: openai:gpt-4o-mini, b: openai:house-model-7, c: openai:gpt-4o-mini, d: openai:gpt-4o-mini}
steps:
  - {id: priced, role: a, context: ['file:README.md']}
  - {id: unpriced, role: b}
  - {id: limited, role: c}
  - {id: busy, role: d}
"""


def test_usage_and_cost_an_unknown_price_and_retries_after_429_and_503(repo: Path, server: FakeOpenAI) -> None:
    server.script = [
        {"kind": "stream", "text": "Looks fine to me.", "prompt_tokens": 1000, "completion_tokens": 100},
        {"kind": "stream", "text": "no price for me"},
        {"kind": "status", "code": 429, "headers": {"Retry-After": "0"}},
        {"kind": "stream", "text": "second time lucky"},
        {"kind": "status", "code": 503, "headers": {"Retry-After": "2"}},
        {"kind": "stream", "text": "back again"},
    ]
    write_workflow(repo, FOUR)
    result = aethr("run", "review the readme", cwd=repo, env=live_env(server))
    assert result.code == 0, result.both
    # priced: streamed, with usage, priced from LiteLLM's bundled table: 1000 * 0.15/1M + 100 * 0.6/1M
    assert "Looks fine to me." in result.out and "tokens 1000+100" in result.out
    assert "$0.000210" in result.out
    body = server.requests[0]
    assert body["model"] == "gpt-4o-mini" and body["stream"] is True
    prompt = server.prompts()[0]
    assert "# Task\nreview the readme" in prompt and "# project" in prompt
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in result.both
    # unpriced: unknown, not zero
    assert server.requests[1]["model"] == "house-model-7"
    unpriced = [line for line in result.out.splitlines() if line.strip().startswith("unpriced ") and " ok " in line]
    assert unpriced and unpriced[-1].split()[-1] == "unknown", result.out
    # limited: a 429 is retried, and the answer shown once
    assert "rate limited (429); retry 1" in result.err
    assert result.out.count("second time lucky") == 1
    # busy: Retry-After is honoured
    assert "provider error (503); retry 1 in 2.0s" in result.err and "back again" in result.out
    assert len(server.requests) == 6


def test_aethr_model_implies_live_the_environment_beats_dotenv_and_openai_base_url_works(
    repo: Path, server: FakeOpenAI
) -> None:
    write_workflow(repo, ONE)
    (repo / ".env").write_text("OPENAI_API_KEY=sk-from-dotenv-000000\n")
    env = {"AETHR_MODEL": "openai:gpt-4o", "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.base_url}
    result = aethr("run", "task", cwd=repo, env=env)  # no AETHR_LIVE, no OPENAI_API_BASE
    assert result.code == 0, result.both
    assert len(server.requests) == 1
    assert server.requests[0]["model"] == "gpt-4o", "AETHR_MODEL overrides every role"
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}", "the environment wins over .env"


def test_json_events_carry_usage(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, ONE)
    result = aethr("run", "task", "--json", cwd=repo, env=live_env(server))
    assert result.code == 0, result.both
    events = [json.loads(line) for line in result.out.splitlines()]
    finished = next(e for e in events if e["event"] == "step_finished")
    assert finished["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "cost_usd": pytest.approx(5.85e-06),
        "at_least": False,
        "estimated": False,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
    }
    assert events[-1]["event"] == "run_finished"
    assert KEY not in result.out


def test_persistent_500_fails_after_three_attempts(repo: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "status", "code": 500, "message": "upstream exploded"}]
    write_workflow(repo, ONE)
    result = aethr("run", "task", cwd=repo, env=live_env(server))
    assert result.code == 1, result.both
    assert len(server.requests) == 3
    assert "step 'review' (role reviewer, model openai/gpt-4o-mini)" in result.err
    assert "after 3 attempt(s)" in result.err
    assert "resume: aethr run --resume-checkpoint" in result.err
    assert "Traceback" not in result.both


def test_401_is_not_retried_and_names_the_fix(repo: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "status", "code": 401, "message": f"Incorrect API key provided: {KEY}"}]
    write_workflow(repo, ONE)
    result = aethr("run", "task", cwd=repo, env=live_env(server))
    assert result.code == 1
    assert len(server.requests) == 1
    assert "rejected the API key (401)" in result.err
    assert "aethr auth login openai" in result.err
    assert KEY not in result.both


def test_400_is_not_retried(repo: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "status", "code": 400, "message": "bad request"}]
    write_workflow(repo, ONE)
    result = aethr("run", "task", cwd=repo, env=live_env(server))
    assert result.code == 1
    assert len(server.requests) == 1


def test_a_hang_fails_within_a_bound(repo: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "hang"}]
    write_workflow(repo, ONE)
    # Without the timeout the run would wait for the hang and reach the call's ceiling.
    limit = round(ceiling(5))
    result = aethr("run", "task", cwd=repo, env=live_env(server, AETHR_TIMEOUT=str(limit)))
    assert result.code == 1, result.both
    assert f"no complete answer within {limit}s after 2 attempt(s)" in result.err
    assert "raise AETHR_TIMEOUT" in result.err
    # At most two requests: on a loaded machine a limit may run out before its request arrives.
    assert len(server.requests) <= 2, "a hang is retried at most once"


def test_connection_refused(repo: Path) -> None:
    with refused_port() as port:
        write_workflow(repo, ONE)
        env = {"AETHR_LIVE": "1", "OPENAI_API_KEY": KEY, "OPENAI_API_BASE": f"http://127.0.0.1:{port}/v1"}
        result = aethr("run", "task", cwd=repo, env=env)
    assert result.code == 1, result.both
    assert "cannot reach the provider after 3 attempt(s)" in result.err


def test_a_dropped_stream_is_a_failure(repo: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "drop", "text": "half an answ"}]
    write_workflow(repo, ONE)
    result = aethr("run", "task", cwd=repo, env=live_env(server))
    assert result.code == 1, result.both
    assert "broke off part-way" in result.err
    assert len(server.requests) == 1, "text was already shown: no retry that would show it twice"


def test_live_role_without_model_is_refused_before_any_call(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, ONE.replace("models:\n  reviewer: openai:gpt-4o-mini\n", ""))
    result = aethr("run", "task", cwd=repo, env=live_env(server))
    assert result.code == 3
    assert "role 'reviewer' has no model" in result.err
    assert server.requests == []


def test_missing_key_exits_4_and_names_the_fix(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, ONE)
    env = live_env(server)
    del env["OPENAI_API_KEY"]
    result = aethr("run", "task", cwd=repo, env=env)
    assert result.code == 4
    assert "step 'review' uses openai/gpt-4o-mini, which needs OPENAI_API_KEY" in result.err
    assert "aethr auth login openai" in result.err and "export OPENAI_API_KEY=" in result.err
    assert server.requests == []


def test_loop_revise_then_pass_live(repo: Path, server: FakeOpenAI) -> None:
    server.script = [
        {"kind": "stream", "text": "v1"},
        {"kind": "stream", "text": "Missing a test.\n*Review status: revise*"},
        {"kind": "stream", "text": "v2"},
        {"kind": "stream", "text": "Good.\n**review status: PASS**"},
    ]
    write_workflow(repo, LIVE_LOOP.format(max=2))
    result = aethr("run", "task", cwd=repo, env=live_env(server))
    assert result.code == 0, result.both
    assert len(server.requests) == 4
    assert "Missing a test." in server.prompts()[2], "the second implement pass sees the review"


def test_loop_revise_forever_exits_5(repo: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "stream", "text": "Review status: revise"}]
    write_workflow(repo, LIVE_LOOP.format(max=2))
    result = aethr("run", "task", cwd=repo, env=live_env(server))
    assert result.code == 5, result.both
    assert len(server.requests) == 4
    assert "ran 2 pass(es)" in result.err


def test_key_from_dotenv_is_used(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, ONE)
    (repo / ".env").write_text(f"OPENAI_API_KEY={KEY}\nOPENAI_API_BASE={server.base_url}\n")
    sub = repo / "sub"
    sub.mkdir()
    result = aethr("run", "task", cwd=sub, env={"AETHR_LIVE": "1"})
    assert result.code == 0, result.both
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"


def test_a_dotenv_above_the_installed_litellm_is_never_loaded(repo: Path, server: FakeOpenAI) -> None:
    """LiteLLM's default mode loads the first `.env` above its own install folder on import;
    aethr reads only the project's. Proven with a key placed where LiteLLM would look."""
    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.origin is not None
    stray = Path(spec.origin).parent.parent / ".env"  # site-packages/.env: on LiteLLM's walk up
    if stray.exists() or not os.access(stray.parent, os.W_OK):
        pytest.skip(f"cannot place a stray .env at {stray}")
    stray.write_text(f"OPENAI_API_KEY={KEY}\nOPENAI_API_BASE={server.base_url}\n")
    try:
        write_workflow(repo, ONE)
        # A fresh interpreter: LiteLLM's import is what would read the stray file.
        result = aethr("run", "task", cwd=repo, env={"AETHR_LIVE": "1", "OPENAI_API_BASE": server.base_url}, fresh=True)
    finally:
        stray.unlink()
    assert result.code == 4, result.both
    assert "needs OPENAI_API_KEY" in result.err
    assert server.requests == []
