"""Cost before the run: `--estimate` and `--show-prompt` price every step from its exact
prompt and call nothing; a prompt over its model's window is refused before any request;
`max_output_tokens` reaches the model as its max tokens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import aethr, ceiling, write_workflow
from tests.fake_openai import FakeOpenAI

LOOP = """\
workflow: priced
roles: {planner: Plan., reviewer: Review.}
models: {planner: openai:gpt-4o-mini, reviewer: anthropic:claude-sonnet-4-5}
steps:
  - id: plan
    role: planner
    max_output_tokens: 500
    context: ['file:README.md']
  - id: review
    role: reviewer
    repeat: {back_to: plan, until_review_pass: true, max_iterations: 3}
"""


def live(server: FakeOpenAI) -> dict[str, str]:
    return {"AETHR_LIVE": "1", "OPENAI_API_KEY": "sk-test-0123456789", "OPENAI_API_BASE": server.base_url}


@pytest.mark.parametrize("flag", ["--estimate", "--show-prompt"])
def test_the_estimate_prices_each_step_and_the_loop_range_and_calls_nothing(
    repo: Path, server: FakeOpenAI, flag: str
) -> None:
    write_workflow(repo, LOOP)
    env = {**live(server), "ANTHROPIC_API_KEY": "sk-ant-0123456789"}
    result = aethr("run", "the task", flag, cwd=repo, env=env)
    assert result.code == 0, result.both
    assert server.requests == []
    table = result.out.split("estimate (nothing was called):", 1)[1]
    plan = next(line.split() for line in table.splitlines() if line.strip().startswith("plan "))
    assert plan[1:3] == ["model", "openai/gpt-4o-mini"] and plan[4] == "128,000" and plan[5] == "500"
    assert plan[-1] == "×3", "inside the loop: up to three passes"
    events = [json.loads(line) for line in aethr("run", "the task", flag, "--json", cwd=repo, env=env).out.splitlines()]
    estimate = next(e for e in events if e["event"] == "estimate")
    rows = {r["step_id"]: r for r in estimate["steps"]}
    expected = rows["plan"]["prompt_tokens"] * 0.15e-6 + 500 * 0.6e-6
    assert rows["plan"]["usd"] == pytest.approx(expected)
    assert rows["review"]["output_assumed"] and rows["review"]["output_tokens"] == 1000
    assert estimate["high_usd"] == pytest.approx(3 * estimate["low_usd"])
    assert f"total: ${estimate['low_usd']:.4f} to ${estimate['high_usd']:.4f}" in table


def test_the_estimate_never_imports_litellm(repo: Path) -> None:
    write_workflow(repo, LOOP)
    code = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "aethr", "run", "t", "--estimate"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=ceiling(120),
    )
    assert "estimate (nothing was called)" in code.stdout
    assert "| litellm" not in code.stderr and "aethr.estimate" in code.stderr


def test_an_unpriced_model_is_unknown_not_zero(repo: Path) -> None:
    write_workflow(repo, LOOP.replace("anthropic:claude-sonnet-4-5", "openai:team-model"))
    result = aethr("run", "t", "--estimate", cwd=repo)
    review = next(line.split() for line in result.out.splitlines() if line.strip().startswith("review "))
    assert "unknown" in review and "(not counting review: unknown)" in result.out


def test_a_prompt_over_the_windows_is_refused_before_any_request(repo: Path, server: FakeOpenAI) -> None:
    (repo / "big.md").write_text("word " * 30_000)
    (repo / "more.md").write_text("word " * 30_000)
    small = "workflow: w\nroles: {r: go}\nmodels: {r: 'openai:gpt-4-0613'}\nsteps:\n"
    write_workflow(repo, small + "  - {id: s, role: r, context: ['file:big.md', 'file:more.md']}\n")
    result = aethr("run", "task", cwd=repo, env=live(server))
    assert result.code == 3, result.both
    assert "is longer than openai/gpt-4-0613's context window" in result.err
    assert "narrow its context (file:big.md, file:more.md)" in result.err
    assert server.requests == []


def test_max_output_tokens_is_in_the_request_body(repo: Path, server: FakeOpenAI) -> None:
    one = "workflow: w\nroles: {r: go}\nmodels: {r: openai:gpt-4o-mini}\nsteps:\n"
    write_workflow(repo, one + "  - {id: s, role: r, max_output_tokens: 321}\n")
    result = aethr("run", "task", cwd=repo, env=live(server))
    assert result.code == 0, result.both
    assert server.requests[0]["max_tokens"] == 321


def test_a_workflow_of_unpriced_steps_has_an_unknown_total(repo: Path) -> None:
    write_workflow(repo, LOOP.replace("anthropic:claude-sonnet-4-5", "openai:team-model").replace("gpt-4o-mini", "x-1"))
    result = aethr("run", "t", "--estimate", cwd=repo)
    assert result.code == 0, result.both
    assert "total: unknown (no price is known for plan, review)" in result.out
    assert "$0.0000" not in result.out


NESTED = """\
workflow: nested
roles: {implementer: Build., reviewer: Review.}
models: {implementer: openai:gpt-4o-mini, reviewer: openai:gpt-4o-mini}
steps:
  - id: implement
    role: implementer
  - id: test
    run: "true"
    repeat: {back_to: implement, until_command_passes: true, max_iterations: 3}
  - id: review
    role: reviewer
    repeat: {back_to: implement, until_review_pass: true, max_iterations: 2}
"""


def test_a_nested_loops_upper_bound_is_the_product_of_its_passes(repo: Path) -> None:
    """The bound equals the real passes of a scripted run: see test_transition."""
    write_workflow(repo, NESTED)
    result = aethr("run", "t", "--estimate", "--json", cwd=repo)
    estimate = next(e for e in map(json.loads, result.out.splitlines()) if e["event"] == "estimate")
    assert {r["step_id"]: r["passes"] for r in estimate["steps"]} == {"implement": 6, "test": 6, "review": 2}
