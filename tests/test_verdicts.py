"""The gate a CI job trusts: statuses, exit codes and `run_finished`, for every ending.

Exit 5 has three causes, each with a status word of its own (`loop_exhausted`,
`revise`, `no_verdict`); a usage error that Typer itself finds still ends with
`run_finished` and `::error`; a cut answer is never taken as a whole one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MOCK_TWO_STEPS, REVIEW_LOOP, Result, aethr, write_workflow
from tests.fake_openai import FakeOpenAI


def events(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.out.splitlines() if line.strip()]


def replies(tmp_path: Path, *texts: str) -> dict[str, str]:
    path = tmp_path / "replies.json"
    path.write_text(json.dumps(list(texts)))
    return {"AETHR_MOCK_RESPONSES": str(path)}


@pytest.mark.parametrize(
    "review",
    ["Found a high-severity bug in app.py.", "Found a bug. Review st"],
    ids=["forgot-the-line", "cut-before-it"],
)
def test_fail_on_revise_fails_a_review_without_a_status_line(repo: Path, tmp_path: Path, review: str) -> None:
    write_workflow(repo, MOCK_TWO_STEPS)
    env = replies(tmp_path, "a plan", review)
    result = aethr("run", "task", "--fail-on-revise", "--json", cwd=repo, env=env)
    assert result.code == 5, result.both
    last = events(result)[-1]
    assert (last["event"], last["status"], last["verdict"], last["exit_code"]) == (
        "run_finished",
        "no_verdict",
        "none",
        5,
    )
    assert "no step's output has a 'Review status:' line" in last["reason"]
    advisory = aethr("run", "task", "--json", cwd=repo, env=env)
    assert advisory.code == 0 and events(advisory)[-1]["status"] == "ok", "without the flag a review is advisory"


def test_fail_on_revise_passes_a_pass_and_names_a_revise(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, MOCK_TWO_STEPS)
    gate = ("run", "t", "--fail-on-revise", "--json")
    passed = aethr(*gate, cwd=repo, env=replies(tmp_path, "p", "Review status: pass"))
    assert passed.code == 0 and events(passed)[-1]["status"] == "ok", passed.both
    revise = aethr(*gate, cwd=repo, env=replies(tmp_path, "p", "Review status: revise"))
    assert revise.code == 5 and events(revise)[-1]["status"] == "revise", revise.both


@pytest.mark.parametrize("gate", [(), ("--fail-on-revise",)], ids=["plain", "fail-on-revise"])
def test_an_exhausted_review_loop_is_loop_exhausted_not_revise(repo: Path, tmp_path: Path, gate: tuple[str]) -> None:
    write_workflow(repo, REVIEW_LOOP)
    env = replies(tmp_path, "v1", "Review status: revise", "v2", "Review status: revise")
    result = aethr("run", "task", "--json", *gate, cwd=repo, env=env)
    assert result.code == 5, result.both
    last = events(result)[-1]
    assert (last["status"], last["verdict"]) == ("loop_exhausted", "revise")
    assert "ran 2 pass(es) without" in last["reason"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--bogus",), "No such option: --bogus"),
        (("--max-cost", "abc"), "Invalid value for '--max-cost'"),
        (("--max-cost", "-1"), "--max-cost -1: a spend cap is a positive number of USD"),
        (("--max-cost", "nan"), "--max-cost nan: a spend cap is a positive number of USD"),
    ],
    ids=["unknown-option", "not-a-number", "negative", "nan"],
)
def test_a_usage_error_ends_with_run_finished_and_an_error_line(repo: Path, args: tuple[str, ...], said: str) -> None:
    write_workflow(repo, MOCK_TWO_STEPS)
    result = aethr("run", "task", *args, "--json", cwd=repo, env={"GITHUB_ACTIONS": "true"})
    assert result.code == 2, result.both
    found = events(result)
    assert [e["event"] for e in found] == ["run_failed", "run_finished"], result.out
    assert (found[-1]["exit_code"], found[-1]["status"]) == (2, "usage")
    assert said in found[-1]["reason"]
    assert f"::error title=aethr::{said}" in result.err, "under --json the ::error line goes to stderr"
    plain = aethr("run", "task", *args, cwd=repo, env={"GITHUB_ACTIONS": "true"})
    assert plain.code == 2 and f"::error title=aethr::{said}" in plain.out, plain.both


def test_run_help_is_readable_and_lists_the_timeouts(repo: Path) -> None:
    result = aethr("run", "--help", cwd=repo)
    assert result.code == 0, result.both
    assert "--max-cost USD" in result.out
    assert "float range" not in result.out and "x>=" not in result.out
    for name in ("AETHR_FIRST_BYTE_TIMEOUT", "AETHR_IDLE_TIMEOUT", "AETHR_TIMEOUT", "AETHR_MAX_COST"):
        assert name in result.out, name


CUT = """\
workflow: cut
roles: {reviewer: Review.}
models: {reviewer: openai:gpt-4o-mini}
steps:
  - id: review
    role: reviewer
    max_output_tokens: 40
"""


def live(server: FakeOpenAI) -> dict[str, str]:
    return {"AETHR_LIVE": "1", "OPENAI_API_KEY": "sk-test-0123456789", "OPENAI_API_BASE": server.base_url}


@pytest.mark.parametrize("kind", ["stream", "json"], ids=["streamed", "not-streamed"])
def test_an_answer_cut_at_its_length_fails_the_step(repo: Path, server: FakeOpenAI, kind: str) -> None:
    write_workflow(repo, CUT)
    server.script = [{"kind": kind, "text": "Found a high bug in app.py; the fix is to", "finish": "length"}]
    result = aethr("run", "task", "--json", cwd=repo, env=live(server))
    assert result.code == 1, result.both
    failed = next(e for e in events(result) if e["event"] == "run_failed")
    assert "step 'review'" in failed["reason"] and "cut at its output limit of 40 tokens" in failed["reason"]
    assert failed["checkpoint"], "a resume can ask again once the limit is raised"
    # A stream is one request; an answer that ignores streaming is asked again without it, once.
    assert server.requests[0]["max_tokens"] == 40
    assert len(server.requests) == (1 if kind == "stream" else 2), "a cut answer is final: not retried"
    assert "raise `max_output_tokens` on step 'review'" in aethr("run", "task", cwd=repo, env=live(server)).err


def test_an_answer_cut_where_the_spend_cap_set_the_limit_says_to_raise_the_cap(repo: Path, server: FakeOpenAI) -> None:
    """The cap, not the step, lowered max_tokens: raising max_output_tokens would not help."""
    write_workflow(repo, CUT.replace("    max_output_tokens: 40\n", ""))
    server.script = [{"kind": "stream", "text": "Found a high bug in app.py; the fix is to", "finish": "length"}]
    result = aethr("run", "task", "--max-cost", "0.001", cwd=repo, env=live(server))
    assert result.code == 1, result.both
    limit = server.requests[0]["max_tokens"]
    assert 0 < limit < 2000, "the cap (gpt-4o-mini at $0.60/M out) pays for about 1,600 tokens"
    assert f"cut at {limit} tokens, all that the rest of the spend cap pays for" in result.err
    assert "raise the spend cap (--max-cost or `max_cost:`)" in result.err
    assert "max_output_tokens" not in result.err
    # Where the step's own limit is the lower one, the step's key is the one to raise.
    write_workflow(repo, CUT)
    own = aethr("run", "task", "--max-cost", "0.001", cwd=repo, env=live(server))
    assert own.code == 1 and "cut at its output limit of 40 tokens" in own.err, own.both
    assert "raise `max_output_tokens` on step 'review'" in own.err


def test_a_step_that_allows_a_cut_answer_takes_it_and_says_so(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, CUT + "    allow_truncated: true\n")
    server.script = [{"kind": "stream", "text": "The start of a long answer", "finish": "length"}]
    result = aethr("run", "task", cwd=repo, env=live(server))
    assert result.code == 0, result.both
    assert "The start of a long answer" in result.out
    assert "step 'review': the answer was cut at its output limit of 40 tokens; taken as it is" in result.err


def test_allow_truncated_belongs_to_a_model_step(repo: Path) -> None:
    write_workflow(repo, "workflow: w\nroles: {r: x}\nsteps:\n  - {id: s, run: 'true', allow_truncated: true}\n")
    result = aethr("validate", cwd=repo)
    assert result.code == 3 and "`allow_truncated` does not go with `run:`" in result.err, result.both


def test_an_exhausted_loops_last_pass_does_not_say_again(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, REVIEW_LOOP)
    env = replies(tmp_path, "v1", "Review status: revise", "v2", "Review status: revise")
    result = aethr("run", "task", cwd=repo, env=env)
    assert result.code == 5, result.both
    assert "pass 1/2: Review status: revise → again" in result.err
    assert (
        "pass 2/2: Review status: revise → stop" in result.err
        and "2/2: Review status: revise → again" not in result.err
    )
    found = [e for e in events(aethr("run", "task", "--json", cwd=repo, env=env)) if e["event"] == "loop_iteration"]
    assert [e["again"] for e in found] == [True, False]


def test_a_previews_first_json_event_is_run_started(repo: Path) -> None:
    from tests.test_params import TYPED

    write_workflow(repo, TYPED)
    result = aethr("run", "task", "--show-prompt", "--json", cwd=repo)
    assert result.code == 0, result.both
    found = events(result)
    assert found[0]["event"] == "run_started", found[0]
    assert found[1]["event"] == "notice" and "params: name='world'" in found[1]["text"]


STUCK = """\
workflow: stuck
steps:
  - id: test
    run: 'echo the same failure; exit 1'
    repeat: {back_to: test, until_command_passes: true, max_iterations: 5}
"""


def test_a_no_progress_stop_does_not_suggest_more_passes(repo: Path) -> None:
    write_workflow(repo, STUCK)
    result = aethr("run", "task", "--exec-commands", cwd=repo)
    assert result.code == 5, result.both
    assert "made no progress at pass 2" in result.err
    assert "max_iterations" not in result.err and "→ again" not in result.err.split("pass 2/5")[1]
