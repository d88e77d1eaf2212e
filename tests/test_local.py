"""Local models that cannot be cut silently: an Ollama server's window is learnt before the
call and fitted (`num_ctx`) or the prompt refused; a server that counts far fewer prompt
tokens than were sent fails the step; a cold load gets a first-byte limit long enough for it,
and is not retried. Real LiteLLM calls to the loopback fake in its Ollama format."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import aethr, ceiling, git, write_workflow
from tests.fake_openai import FakeOpenAI

OLLAMA = """\
workflow: local
roles: {{reviewer: Review it.}}
models:
  reviewer: {{model: "ollama_chat:llama3.1", api_base: "{base}"}}
steps:
  - id: review
    role: reviewer
    context: [file:a.txt, file:b.txt]
"""
KEYLESS = """\
workflow: local
roles: {{reviewer: Review it.}}
models:
  reviewer: {{model: "openai:llama3.1", api_base: "{base}", api_key_env: none}}
steps:
  - id: review
    role: reviewer
    context: [file:a.txt, file:b.txt]
"""
LIVE = {"AETHR_LIVE": "1"}


def big_prompt(repo: Path) -> None:
    """Two files of ~5,000 tokens each: a prompt of ~10,000 tokens."""
    for name in ("a.txt", "b.txt"):
        (repo / name).write_text("a line of the file under review, kept long.\n" * 450)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "files")


def ollama_base(server: FakeOpenAI) -> str:
    return server.base_url.removesuffix("/v1")


def test_a_2048_token_window_refuses_a_10000_token_prompt_before_sending_it(repo: Path, server: FakeOpenAI) -> None:
    big_prompt(repo)
    write_workflow(repo, OLLAMA.format(base=ollama_base(server)))
    result = aethr("run", "review", cwd=repo, env=LIVE)
    assert result.code == 3, result.both
    assert "does not fit ollama_chat/llama3.1's context window (2,048 tokens" in result.err, result.err
    assert "nothing was sent" in result.err
    assert server.shown == [{"model": "llama3.1"}] and server.requests == [], "asked for the window, sent nothing"


def test_a_model_with_room_gets_num_ctx_fitted_to_the_prompt(repo: Path, server: FakeOpenAI) -> None:
    server.ollama_window = 131_072
    server.script = [{"kind": "stream", "text": "Looks fine. Review status: pass"}]
    big_prompt(repo)
    write_workflow(repo, OLLAMA.format(base=ollama_base(server)))
    result = aethr("run", "review", cwd=repo, env=LIVE)
    assert result.code == 0, result.both
    (sent,) = server.requests
    num_ctx = sent["options"]["num_ctx"]
    prompt_tokens = len(sent["messages"][-1]["content"]) // 4
    assert prompt_tokens > 9_000 and num_ctx >= prompt_tokens + 2048, (prompt_tokens, num_ctx)
    assert num_ctx == 16_384, "a power of two, so that steps of similar size share one model load"


def test_without_num_ctx_the_fake_cuts_as_ollama_does_and_the_step_fails(repo: Path, server: FakeOpenAI) -> None:
    """A server that reports a large window but holds every model to a smaller one (its own
    OLLAMA_CONTEXT_LENGTH): it counts 2,048 of ~10,000 tokens, and the step says it was cut."""
    server.ollama_window = 131_072
    server.script = [{"kind": "stream", "text": "Looks fine. Review status: pass", "prompt_tokens": 2048}]
    big_prompt(repo)
    write_workflow(repo, OLLAMA.format(base=ollama_base(server)))
    result = aethr("run", "review", cwd=repo, env=LIVE)
    assert result.code == 1, result.both
    assert "the server counted 2,048 prompt tokens of the ~" in result.err, result.err
    assert "cut the prompt to fit its context window" in result.err
    assert "Review status: pass" not in result.out.split("run failed")[-1]


@pytest.mark.parametrize("counted", [500])
def test_a_keyless_openai_compatible_server_that_under_counts_fails_the_step(
    repo: Path, server: FakeOpenAI, counted: int
) -> None:
    server.script = [{"kind": "stream", "text": "Review status: pass", "prompt_tokens": counted}]
    big_prompt(repo)
    write_workflow(repo, KEYLESS.format(base=server.base_url))
    result = aethr("run", "review", cwd=repo, env=LIVE)
    assert result.code == 1, result.both
    assert f"the server counted {counted} prompt tokens" in result.err, result.err


def test_a_local_first_byte_timeout_is_not_retried(repo: Path, server: FakeOpenAI) -> None:
    """A retry would drop the connection, which cancels the model's load, and start it again."""
    server.script = [{"kind": "stream", "text": "late", "delay": 600}]
    write_workflow(repo, OLLAMA.format(base=ollama_base(server)).replace("    context: [file:a.txt, file:b.txt]\n", ""))
    limit = round(ceiling(5))
    result = aethr("run", "review", cwd=repo, env={**LIVE, "AETHR_FIRST_BYTE_TIMEOUT": str(limit)})
    assert result.code == 1, result.both
    assert f"no first byte of an answer within {limit}s" in result.err, result.err
    # One attempt: no retry line, and never a second request (on a loaded machine the limit
    # may even run out before the first one has reached the server).
    assert "retry" not in result.err and len(server.requests) <= 1, result.err


@pytest.mark.waits
def test_a_cold_load_answering_after_40s_passes_with_the_local_default(repo: Path, server: FakeOpenAI) -> None:
    """The one test that waits by nature: the fake holds its first byte back for 40 s, past
    the 25 s hosted default; the local default (300 s) lets the load finish."""
    server.script = [{"kind": "stream", "text": "loaded at last. Review status: pass", "delay": 40}]
    write_workflow(repo, OLLAMA.format(base=ollama_base(server)).replace("    context: [file:a.txt, file:b.txt]\n", ""))
    result = aethr("run", "review", cwd=repo, env={**LIVE, "AETHR_HEARTBEAT": "5"})
    assert result.code == 0, result.both
    assert "loaded at last" in result.out and len(server.requests) == 1
    assert "waiting for the first token (" in result.err and "of its 300s limit" in result.err, result.err
