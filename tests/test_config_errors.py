"""Every workflow-file error is refused before anything runs: exit 3, FILE:LINE:COL, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from aethr.config import parse
from aethr.errors import ConfigError
from tests.conftest import aethr, write_workflow

GOOD = """\
workflow: w
roles:
  planner: Plan.
  reviewer: Review.
models:
  planner: openai:gpt-4o-mini
steps:
  - id: plan
    role: planner
  - id: review
    role: reviewer
"""

CASES = [
    ("malformed", "workflow: w\nroles: [unclosed\n", ":3:1", "malformed YAML"),
    ("empty", "", ":1:1", "empty"),
    ("comments only", "# nothing here\n", ":1:1", "empty"),
    ("not a mapping", "- a\n- b\n", ":1:1", "must be a mapping"),
    ("unknown top key", GOOD + "stepz: []\n", ":12:1", "unknown key 'stepz'"),
    (
        "unknown step key with suggestion",
        GOOD.replace("    role: planner\n", "    role: planner\n    contxt: [git_diff]\n"),
        ":10:5",
        "did you mean 'context'?",
    ),
    ("duplicate step id", GOOD.replace("id: review", "id: plan"), ":10:9", "duplicate step id 'plan'"),
    (
        "duplicate key",
        GOOD.replace("  reviewer: Review.\n", "  reviewer: Review.\n  reviewer: Again.\n"),
        ":5:3",
        "duplicate key 'reviewer'",
    ),
    (
        "role not in roles",
        GOOD.replace("role: reviewer", "role: revewer"),
        ":11:11",
        "role 'revewer', which is not defined",
    ),
    (
        "model for unknown role",
        GOOD.replace("  planner: openai", "  planer: openai"),
        ":6:3",
        "model given for unknown role 'planer'",
    ),
    (
        "back_to unknown",
        GOOD + "    repeat: {back_to: nowhere, until_review_pass: true}\n",
        ":12:23",
        "not a step of this workflow",
    ),
    (
        "back_to a later step",
        GOOD.replace(
            "    role: planner\n", "    role: planner\n    repeat: {back_to: review, until_review_pass: true}\n"
        ),
        ":10:23",
        "is a later step",
    ),
    (
        "max_iterations too high",
        GOOD + "    repeat: {back_to: plan, until_review_pass: true, max_iterations: 21}\n",
        ":12:70",
        "less than or equal to 20",
    ),
    (
        "max_iterations zero",
        GOOD + "    repeat: {back_to: plan, until_review_pass: true, max_iterations: 0}\n",
        ":12:70",
        "greater than or equal to 1",
    ),
    (
        "no loop condition",
        GOOD + "    repeat: {back_to: plan}\n",
        ":12:13",
        "exactly one of",
    ),
    (
        "unknown context kind",
        GOOD + "    context: [fle:README.md]\n",
        ":12:15",
        "unknown context source kind 'fle' in 'fle:README.md' (did you mean 'file'?)",
    ),
    ("empty file source", GOOD + "    context: ['file:']\n", ":12:15", "'file:' is empty"),
    ("empty glob source", GOOD + "    context: ['glob:  ']\n", ":12:15", "is empty"),
    ("bad backend", GOOD + "    backend: claud\n", ":12:14", "backend"),
    (
        "agent of another provider",
        GOOD.replace("models:\n", "models:\n  reviewer: openai:gpt-4o\n") + "    backend: claude\n",
        ":13:14",
        "hands work to claude, which calls anthropic models, but role 'reviewer' has 'openai:gpt-4o'",
    ),
    (
        "idle_timeout on a command",
        GOOD.replace("role: reviewer", "run: make") + "    idle_timeout: 5\n",
        ":12:5",
        "does not go with `run:`",
    ),
    ("bad history visibility", GOOD + "    history_visibility: some\n", ":12:25", "history_visibility"),
    ("steps missing", "workflow: w\nroles: {a: b}\n", ":1:1", "steps is required"),
    ("no steps", "workflow: w\nroles: {a: b}\nsteps: []\n", ":3:8", "at least 1 item"),
]


@pytest.mark.parametrize(("name", "text", "where", "message"), CASES, ids=[c[0] for c in CASES])
def test_invalid_workflow_is_refused(name: str, text: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert caught.value.exit_code == 3
    assert f".aethr.yaml{where}" in caught.value.message
    assert message in caught.value.message


@pytest.mark.parametrize("command", [["validate"], ["run", "a task"]])
def test_an_invalid_workflow_stops_every_command_before_it_runs(tmp_path: Path, command: list[str]) -> None:
    _name, text, where, message = CASES[5]
    write_workflow(tmp_path, text)
    result = aethr(*command, cwd=tmp_path)
    assert result.code == 3, result.both
    assert f".aethr.yaml{where}" in result.err, result.err
    assert message in result.err
    assert "Traceback" not in result.both
    assert result.out == ""


def test_good_workflow_validates(tmp_path: Path) -> None:
    write_workflow(tmp_path, GOOD)
    result = aethr("validate", cwd=tmp_path)
    assert result.code == 0, result.both
    assert "ok · workflow w · 2 step(s) · 2 role(s)" in result.out


def test_missing_workflow_says_to_init(tmp_path: Path) -> None:
    result = aethr("run", "task", cwd=tmp_path)
    assert result.code == 3
    assert "no .aethr.yaml" in result.err
    assert "aethr init" in result.err


def test_validate_other_file_with_config_flag(tmp_path: Path) -> None:
    other = tmp_path / "flows" / "review.yaml"
    other.parent.mkdir()
    other.write_text(GOOD.replace("role: reviewer", "role: ghost"))
    result = aethr("validate", "--config", str(other), cwd=tmp_path)
    assert result.code == 3
    assert f"{other}:11:11" in result.err


def test_several_problems_are_all_listed(tmp_path: Path) -> None:
    write_workflow(tmp_path, GOOD.replace("role: planner", "role: planner\n    contxt: []\n    tmeout: 3"))
    result = aethr("validate", cwd=tmp_path)
    assert result.code == 3
    assert "'contxt'" in result.err and "'tmeout'" in result.err
    assert "did you mean 'timeout'?" in result.err


def test_verbose_shows_traceback(tmp_path: Path) -> None:
    write_workflow(tmp_path, "- a\n")
    result = aethr("validate", "--verbose", cwd=tmp_path)
    assert result.code == 3
    assert "Traceback" in result.err
