"""Cached tokens priced as billed, through real LiteLLM HTTP calls to the loopback server.

The fake decides what was cached by prefix match against the prompts it saw before
(`tests/fake_cache.py`), the way each provider does; the expected cost is computed here
from LiteLLM's own price table, read as data, never from aethr's pricing code.
"""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import aethr, git, write_workflow
from tests.fake_cache import Billed
from tests.fake_openai import FakeOpenAI
from tests.test_agents import AGENTS, setup

FORMATS = {
    "openai": ("openai:gpt-4o-mini", "gpt-4o-mini", "OPENAI_API_KEY", "OPENAI_API_BASE", "/v1"),
    "anthropic": (
        "anthropic:claude-sonnet-4-5",
        "claude-sonnet-4-5",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_API_BASE",
        "",
    ),
    "gemini": ("gemini:gemini-2.5-flash", "gemini/gemini-2.5-flash", "GEMINI_API_KEY", "GEMINI_API_BASE", ""),
}
# A long, stable project file: the part of each prompt that a cache can serve again.
GUIDE = "".join(f"Rule {n}: every public function has a docstring that says why it exists.\n" for n in range(300))
ONE = """\
workflow: one
roles: {reviewer: Review the change against the guide.}
models: {reviewer: MODEL}
steps:
  - {id: review, role: reviewer, context: ["file:GUIDE.md"]}
"""


def table_entry(key: str) -> dict[str, Any]:
    """LiteLLM's own entry for a model, from the table it ships."""
    spec = find_spec("litellm")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations)))
    table = json.loads((folder / "model_prices_and_context_window_backup.json").read_text())
    entry: dict[str, Any] = table[key]
    return entry


def expected_cost(key: str, billed: Billed, completion: int) -> float:
    entry = table_entry(key)
    fresh = billed.prompt - billed.cached - billed.written
    cost = fresh * entry["input_cost_per_token"] + completion * entry["output_cost_per_token"]
    cost += billed.cached * entry.get("cache_read_input_token_cost", entry["input_cost_per_token"])
    return cost + billed.written * entry.get("cache_creation_input_token_cost", entry["input_cost_per_token"])


def live_env(server: FakeOpenAI, fmt: str) -> dict[str, str]:
    _, _, key, base, suffix = FORMATS[fmt]
    return {"AETHR_LIVE": "1", key: "sk-test-provider-0123456789", base: f"http://127.0.0.1:{server.port}{suffix}"}


def finished(out: str) -> dict[str, Any]:
    last: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    assert last["event"] == "run_finished", last
    return last


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_repeated_prompt_is_read_from_the_cache_and_priced_at_the_cached_rate(
    repo: Path, server: FakeOpenAI, fmt: str
) -> None:
    """The same step run twice: the second call's prompt shares its whole stable part with the
    first, the fake's prefix match bills it as cached, and aethr charges LiteLLM's cached rate."""
    model, key, *_ = FORMATS[fmt]
    write_workflow(repo, ONE.replace("MODEL", model))
    (repo / "GUIDE.md").write_text(GUIDE)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "guide")
    server.script = [{"kind": "stream", "text": "Review status: pass", "cache": True}]
    first = aethr("run", "review it", "--json", cwd=repo, env=live_env(server, fmt))
    second = aethr("run", "review it", "--json", cwd=repo, env=live_env(server, fmt))
    assert first.code == 0 and second.code == 0, first.both + second.both
    cold, warm = server.billed
    assert cold.cached == 0 and warm.cached > 1024, server.billed
    assert warm.cached >= warm.prompt * 0.9, "the whole stable part is the shared prefix"
    usage = finished(second.out)["usage"]
    assert (usage["prompt_tokens"], usage["cached_tokens"]) == (warm.prompt, warm.cached)
    assert usage["cost_usd"] == pytest.approx(expected_cost(key, warm, 7), rel=1e-9)
    assert usage["cost_usd"] < expected_cost(key, Billed(warm.prompt), 7) * 0.6, "cached input costs half or less"
    shown = aethr("run", "review it", cwd=repo, env=live_env(server, fmt))
    assert f"tokens {warm.prompt}+7 ({warm.cached} cached" in shown.out, shown.out


def test_codex_cached_input_tokens_are_priced_at_the_cached_rate(
    tmp_path: Path, server: FakeOpenAI, clean_env: Path
) -> None:
    """The real Codex binary against the fake: its second call repeats the first call's
    instructions and input, which the fake bills as cached. Codex's `input_tokens` already
    include its `cached_input_tokens`: aethr prices the cached part at the cached rate, once."""
    codex = next(agent for agent in AGENTS if agent.name == "codex")
    repo = setup(tmp_path, codex)
    server.script = [{**reply, "cache": True} for reply in codex.edit(repo)]
    result = aethr("run", "change hi to bye", "--json", cwd=repo, env=codex.env(server.base_url, tmp_path))
    assert result.code == 0, result.both
    assert len(server.billed) == 2 and server.billed[0].cached == 0 and server.billed[1].cached > 1024, server.billed
    billed = Billed(sum(b.prompt for b in server.billed), sum(b.cached for b in server.billed))
    usage = finished(result.out)["usage"]
    assert (usage["prompt_tokens"], usage["cached_tokens"]) == (billed.prompt, billed.cached), usage
    output = 7 * len(server.billed)  # the fake's Responses usage: 7 output tokens a call
    assert usage["completion_tokens"] == output
    assert usage["cost_usd"] == pytest.approx(expected_cost("gpt-5.1-codex", billed, output), rel=1e-9)
    assert usage["cost_usd"] < expected_cost("gpt-5.1-codex", Billed(billed.prompt), output)


LOOP = """\
workflow: loop
roles: {implementer: Build it to the guide., reviewer: Review it against the guide.}
models: {implementer: MODEL, reviewer: MODEL}
steps:
  - {id: implement, role: implementer, context: ["file:GUIDE.md"]}
  - id: review
    role: reviewer
    context: ["file:GUIDE.md", "step:implement"]
    repeat: {back_to: implement, until_review_pass: true, max_iterations: 3}
"""


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_three_pass_review_loop_reads_its_stable_part_from_the_cache_on_passes_2_and_3(
    repo: Path, server: FakeOpenAI, fmt: str
) -> None:
    """Each step's prompt leads with its role, the task and the guide, and ends with what the
    loop changes (the implementation, the review's feedback): the fake's prefix match finds the
    stable part again on passes 2 and 3 (for Anthropic, at the breakpoint aethr set), and the
    run costs what LiteLLM's table says each call's parts cost."""
    model, key, *_ = FORMATS[fmt]
    write_workflow(repo, LOOP.replace("MODEL", model))
    (repo / "GUIDE.md").write_text(GUIDE)
    replies = []
    for n, verdict in ((1, "revise"), (2, "revise"), (3, "pass")):
        replies += [f"def shout(): return 'v{n}'", f"Pass {n} findings.\nReview status: {verdict}"]
    server.script = [{"kind": "stream", "text": text, "cache": True} for text in replies]
    result = aethr("run", "add a shout function", cwd=repo, env=live_env(server, fmt))
    assert result.code == 0, result.both
    assert len(server.billed) == 6, server.billed
    first, later = server.billed[:2], server.billed[2:]
    assert all(b.cached == 0 for b in first), first
    assert all(b.cached > 1024 for b in later), later
    if fmt == "anthropic":
        assert all(b.written > 1024 for b in first) and all(b.written == 0 for b in later), server.billed
        blocks = server.requests[2]["messages"][-1]["content"]
        assert blocks[0]["cache_control"] == {"type": "ephemeral"} and "cache_control" not in blocks[1]
    prompt, cached, written = (sum(b[i] for b in server.billed) for i in range(3))
    expected = sum(expected_cost(key, b, 7) for b in server.billed)
    closing = next(line for line in result.out.splitlines() if line.startswith("run finished"))
    parts = f"{cached} cached, {cached / prompt:.0%} of the input" + (
        f"; {written} written to the cache" if written else ""
    )
    assert f"tokens {prompt}+{7 * 6} ({parts}) · cost ${expected:.6f}" in closing, closing
