"""In-process table tests for the pure parts: fast, one row per rule.

The CLI tests show each class of behaviour end to end; these pin the rules
themselves (glob matching, review status, history, model names, usage, prices,
the secret policy) without starting a process per row.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from aethr import conditions, listing, pricing, prompts, sensitive
from aethr.config import parse
from aethr.names import litellm_model_name
from aethr.results import StepResult
from aethr.usage import Usage

GLOBS = [
    ("*.py", "a.py", True),
    ("*.py", "src/a.py", False),
    ("**/*.py", "a.py", True),
    ("**/*.py", "src/deep/a.py", True),
    ("src/**/*.py", "src/a.py", True),
    ("src/**/*.py", "src/x/y/a.py", True),
    ("src/**/*.py", "lib/src/a.py", False),
    ("docs/*.md", "docs/a.md", True),
    ("docs/*.md", "docs/sub/a.md", False),
    ("a?.txt", "ab.txt", True),
    ("a?.txt", "a/.txt", False),
    ("[ab].txt", "b.txt", True),
    ("[!ab].txt", "b.txt", False),
    ("[!ab].txt", "c.txt", True),
    ("src", "src/a.py", True),
    ("README.md", "docs/README.md", False),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), GLOBS)
def test_glob_matching(pattern: str, path: str, expected: bool) -> None:
    assert listing.glob_matcher(pattern)(path) is expected


STATUSES = [
    ("Review status: pass", "pass"),
    ("review STATUS:   Pass", "pass"),
    ("**Review status:** revise", "revise"),
    ("> Review status: `pass`", "pass"),
    ("Review status: pass\nlater\nReview status: revise", "revise"),
    ("The review status: pass is what I'd write", None),
    ("nothing here", None),
    ("Review status: passable", None),
]


@pytest.mark.parametrize(("text", "expected"), STATUSES)
def test_review_status(text: str, expected: str | None) -> None:
    assert conditions.review_status(text) == expected


def test_conditions_check_and_instruct() -> None:
    review = conditions.ReviewPasses()
    assert review.check("x\nReview status: pass") == (True, "Review status: pass")
    assert review.check("no line").passed is False
    assert "Review status: revise" in (review.instruction("fix") or "")
    contains = conditions.Contains("LGTM")
    assert contains.check("all LGTM").passed and not contains.check("nope").passed
    assert contains.marker == "LGTM" and "LGTM" in contains.goal


def _result(step: str, output: str, iteration: int = 1) -> StepResult:
    return StepResult(step, "r", None, output, iteration, 0.0)


HISTORY = [
    ("all", ["a", "b"]),
    ("latest", ["b"]),
    ("summary", ["a", "b"]),
    ("none", []),
]


@pytest.mark.parametrize(("visibility", "expected"), HISTORY)
def test_history_selection_keeps_the_latest_pass_of_each_step(visibility: str, expected: list[str]) -> None:
    results = [_result("a", "a1"), _result("b", "b1"), _result("a", "a2", 2), _result("b", "b2", 2)]
    chosen = prompts.select_history(results, visibility)
    assert [r.step_id for r in chosen] == expected
    assert all(r.iteration == 2 for r in chosen)


def test_history_budget_caps_each_output_and_the_total() -> None:
    huge = "x" * 100_000
    wf = parse("workflow: w\nroles: {r: go}\nsteps:\n  - {id: s, role: r}\n")
    results = [_result(f"s{i}", huge) for i in range(5)]
    prompt = prompts.build(wf, wf.steps[0], "task", results, None, []).text
    per_step = prompts.HISTORY_TOKENS_PER_STEP * 4
    assert prompt.count("[truncated:") == 5
    assert len(prompt) < prompts.HISTORY_TOKENS * 4 + 5 * 200 + 2_000
    assert ("x" * per_step) in prompt and ("x" * (per_step + 1)) not in prompt


MODELS = [
    ("openai:gpt-4o-mini", "openai/gpt-4o-mini"),
    ("openai/gpt-4o-mini", "openai/gpt-4o-mini"),
    ("openrouter:meta-llama/llama-3.1-70b", "openrouter/meta-llama/llama-3.1-70b"),
    ("gpt-4o-mini", "gpt-4o-mini"),
    ("ollama/llama3:8b", "ollama/llama3:8b"),
]


@pytest.mark.parametrize(("given", "expected"), MODELS)
def test_model_name_mapping(given: str, expected: str) -> None:
    assert litellm_model_name(given) == expected


USAGE_SUMS = [
    (Usage(1, 2, 0.5), Usage(3, 4, 0.25), Usage(4, 6, 0.75)),
    (Usage(1, 2, 0.5), Usage(3, 4, None), Usage(4, 6, 0.5, at_least=True)),  # unknown never erases the known
    (Usage(1, 2, None), Usage(0, 0, 0.0), Usage(1, 2, None)),  # a floor of $0 is no news: unknown
    (Usage(1, 2, None), Usage(3, 4, None), Usage(4, 6, None)),  # nothing known: unknown
    (Usage(1, 1, 0.1, at_least=True), Usage(1, 1, 0.1), Usage(2, 2, 0.2, at_least=True)),
    (Usage(1, 1, 0.1, estimated=True), Usage(1, 1, 0.1), Usage(2, 2, 0.2, estimated=True)),
]


@pytest.mark.parametrize(("a", "b", "total"), USAGE_SUMS)
def test_usage_sums_keep_what_is_known(a: Usage, b: Usage, total: Usage) -> None:
    got = a + b
    assert (got.prompt_tokens, got.completion_tokens, got.at_least, got.estimated) == (
        total.prompt_tokens,
        total.completion_tokens,
        total.at_least,
        total.estimated,
    )
    assert got.cost_usd == pytest.approx(total.cost_usd) if total.cost_usd is not None else got.cost_usd is None


PRICED = ["openai/gpt-4o-mini", "gpt-4o-mini", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash"]


def test_prices_agree_with_litellm() -> None:
    # One test for every model: each test worker that imports LiteLLM pays seconds for it.
    gc.disable()  # the import allocates millions of objects; collecting among pytest's is slow
    try:
        import litellm
    finally:
        gc.enable()
    for model in PRICED:
        found = pricing.price(model)
        assert found is not None, model
        expected_in, expected_out = litellm.cost_per_token(model=model, prompt_tokens=1000, completion_tokens=500)
        assert found.cost(1000, 0) == pytest.approx(expected_in), model
        assert found.cost(0, 500) == pytest.approx(expected_out), model
        assert found.window == litellm.get_model_info(model)["max_input_tokens"], model


@pytest.mark.parametrize("model", ["fake/test-model", "openai/no-such-model", "anthropic/gpt-4o-mini"])
def test_a_model_missing_from_the_table_has_no_price(model: str) -> None:
    assert pricing.price(model) is None
    assert pricing.cost(model, 10, 10) is None


SECRET_NAMES = [
    (".env", True),
    ("config/.env.local", True),
    (".env.example", True),
    ("keys/id_rsa", True),
    ("id_ecdsa", True),
    ("id_ed25519_sk", True),
    ("tls/server.pem", True),
    ("server.key", True),
    ("cert.p12", True),
    ("store.pfx", True),
    (".git/config", True),
    ("id_rsa.pub", False),
    ("id_utils.py", False),
    ("environment.py", False),
    ("keyboard.py", False),
    ("docs/keys.md", False),
]


@pytest.mark.parametrize(("path", "secret"), SECRET_NAMES)
def test_secret_policy_by_name(path: str, secret: bool) -> None:
    assert (sensitive.by_name(path) is not None) is secret


CONTENTS = [
    (b"-----BEGIN OPENSSH PRIVATE KEY-----\nabc", True),
    (b"-----BEGIN RSA PRIVATE KEY-----", True),
    (b"-----BEGIN PGP PRIVATE KEY BLOCK-----", True),
    (b"-----BEGIN PUBLIC KEY-----", False),
    (b"just text about a PRIVATE KEY", False),
]


@pytest.mark.parametrize(("data", "secret"), CONTENTS)
def test_secret_policy_by_content(data: bytes, secret: bool) -> None:
    assert (sensitive.by_content(data) is not None) is secret


def test_the_value_of_a_known_key_is_a_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from aethr import settings
    from aethr.secrets import Secrets

    monkeypatch.setenv("SOME_API_KEY", "sk-abcdefghijklmnop")
    sensitive.use(settings.load(tmp_path / ".env").secrets)  # as a run does, once at its start
    try:
        assert sensitive.by_content(b"token = sk-abcdefghijklmnop") is not None
        assert sensitive.by_content(b"token = sk-other") is None
    finally:
        sensitive.use(Secrets())
