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

from tests.conftest import MOCK_TWO_STEPS, Result, aethr, write_workflow


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
    passed = aethr("run", "t", "--fail-on-revise", "--json", cwd=repo, env=replies(tmp_path, "p", "Review status: pass"))
    assert passed.code == 0 and events(passed)[-1]["status"] == "ok", passed.both
    revise = aethr("run", "t", "--fail-on-revise", "--json", cwd=repo, env=replies(tmp_path, "p", "Review status: revise"))
    assert revise.code == 5 and events(revise)[-1]["status"] == "revise", revise.both


LOOP = """\
workflow: loop
roles: {implementer: Build., reviewer: Review.}
steps:
  - id: implement
    role: implementer
  - id: review
    role: reviewer
    repeat: {back_to: implement, until_review_pass: true, max_iterations: 2}
"""


@pytest.mark.parametrize("gate", [(), ("--fail-on-revise",)], ids=["plain", "fail-on-revise"])
def test_an_exhausted_review_loop_is_loop_exhausted_not_revise(repo: Path, tmp_path: Path, gate: tuple[str]) -> None:
    write_workflow(repo, LOOP)
    env = replies(tmp_path, "v1", "Review status: revise", "v2", "Review status: revise")
    result = aethr("run", "task", "--json", *gate, cwd=repo, env=env)
    assert result.code == 5, result.both
    last = events(result)[-1]
    assert (last["status"], last["verdict"]) == ("loop_exhausted", "revise")
    assert "ran 2 pass(es) without" in last["reason"]
