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


ONE_ROLE = "workflow: w\nroles: {r: go}\nmodels: {r: openai:gpt-4o-mini}\nsteps:\n"
MISPLACED = [
    (
        "max_output_tokens on a command",
        "  - id: t\n    run: make\n    max_output_tokens: 50\n",
        ":7:5",
        "step 't' runs a command: `max_output_tokens` does not go with `run:`",
    ),
    (
        "max_output_tokens on an agent",
        "  - id: t\n    role: r\n    backend: opencode\n    max_output_tokens: 50\n",
        ":8:5",
        "step 't' is an agent step (opencode): `max_output_tokens` goes with model steps only",
    ),
    (
        "unsafe_permissions on a model step",
        "  - id: t\n    role: r\n    unsafe_permissions: true\n",
        ":7:5",
        "step 't' is a model step: `unsafe_permissions` goes with agent steps only",
    ),
    (
        "a command key on a model step",
        "  - id: t\n    role: r\n    allow_failure: true\n",
        ":7:5",
        "step 't': `allow_failure` belongs to a `run:` step",
    ),
    (
        "prompt on a command",
        "  - id: t\n    run: make\n    prompt: do it\n",
        ":7:5",
        "step 't' runs a command: `prompt` does not go with `run:`",
    ),
]


@pytest.mark.parametrize(("case", "step", "where", "message"), MISPLACED, ids=[c[0] for c in MISPLACED])
def test_a_key_that_does_not_apply_to_a_steps_kind_is_a_load_error(
    tmp_path: Path, case: str, step: str, where: str, message: str
) -> None:
    write_workflow(tmp_path, ONE_ROLE + step)
    result = aethr("validate", cwd=tmp_path)
    assert result.code == 3, result.both
    assert f".aethr.yaml{where}: {message}" in result.err, result.err
    assert "Traceback" not in result.err


def test_the_keys_each_kind_takes_are_accepted(tmp_path: Path) -> None:
    """The table's other side: every key on a kind that takes it validates."""
    steps = (
        "  - {id: m, role: r, max_output_tokens: 50, idle_timeout: 5, prompt: p, timeout: 9}\n"
        "  - {id: a, role: r, backend: opencode, unsafe_permissions: true, inherit_user_config: true}\n"
        "  - {id: c, run: make, cwd: ., env: {A: b}, ok_exit_codes: [0, 1], allow_failure: true, output_tokens: 200}\n"
    )
    write_workflow(tmp_path, ONE_ROLE + steps)
    result = aethr("validate", cwd=tmp_path)
    assert result.code == 0, result.both


def test_a_workflow_of_only_commands_needs_no_roles(repo: Path) -> None:
    write_workflow(repo, "workflow: checks\nsteps:\n  - id: hello\n    run: 'echo hi-from-a-command > out.txt'\n")
    checked = aethr("validate", cwd=repo)
    assert checked.code == 0, checked.both
    assert "ok · workflow checks · 1 step(s) · 0 role(s)" in checked.out
    result = aethr("run", "task", "--exec-commands", cwd=repo)
    assert result.code == 0, result.both
    assert (repo / "out.txt").read_text() == "hi-from-a-command\n"


def test_a_model_step_without_roles_names_the_missing_role(tmp_path: Path) -> None:
    write_workflow(tmp_path, "workflow: w\nsteps:\n  - id: plan\n    role: planner\n")
    result = aethr("validate", cwd=tmp_path)
    assert result.code == 3, result.both
    assert ".aethr.yaml:4:11: step 'plan' uses role 'planner', which is not defined under roles" in result.err


def test_an_unknown_preset_beside_a_workflow_file_is_one_error(tmp_path: Path) -> None:
    write_workflow(tmp_path, GOOD)
    result = aethr("run", "task", "--preset", "nosuch", cwd=tmp_path)
    assert result.code == 2, result.both
    assert "unknown preset 'nosuch'" in result.err
    assert "wins" not in result.err, "no note that the preset wins over the file it does not replace"
    assert result.err.count("aethr:") == 1, result.err


@pytest.mark.parametrize("preset", ["plan-implement-review", "debug-failing-test"])
def test_validate_counts_a_parameter_read_as_a_variable_in_run(tmp_path: Path, preset: str) -> None:
    """Both presets read `tests` only as "$AETHR_PARAM_TESTS" in a `run:` line: that is a use."""
    assert aethr("init", preset, cwd=tmp_path).code == 0
    result = aethr("validate", cwd=tmp_path)
    assert result.code == 0, result.both
    assert "param tests = ''" in result.out
    assert "warning" not in result.err, result.err


def test_validate_still_warns_of_a_parameter_only_a_longer_variable_names(tmp_path: Path) -> None:
    text = (
        "workflow: w\nparams:\n  tests: {default: x}\n  other: {default: y}\nsteps:\n"
        "  - {id: a, run: 'echo ${AETHR_PARAM_OTHER:-none} $AETHR_PARAM_TESTS_DIR'}\n"
    )
    write_workflow(tmp_path, text)
    result = aethr("validate", cwd=tmp_path)
    assert result.code == 0, result.both
    assert "parameter 'tests' is declared but never used" in result.err
    assert "'other'" not in result.err


@pytest.mark.parametrize("script", ["[]", "{}"], ids=["empty list", "not a list"])
def test_a_bad_mock_script_is_refused_before_the_run(repo: Path, tmp_path: Path, clean_env: Path, script: str) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text(script)
    write_workflow(repo, GOOD)
    result = aethr("run", "task", cwd=repo, env={"AETHR_MOCK_RESPONSES": str(replies)})
    assert result.code == 3, result.both
    assert f"AETHR_MOCK_RESPONSES: {replies}" in result.err
    assert "── plan" not in result.out, "no step started"
    assert "resume:" not in result.err and list((clean_env / "aethr").glob("*/*.json")) == []


def test_a_last_checkpoint_of_another_preset_names_both_workflows(repo: Path, tmp_path: Path) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text('["only one reply"]')
    failed = aethr(
        "run", "task", "--preset", "plan-implement-review", cwd=repo, env={"AETHR_MOCK_RESPONSES": str(replies)}
    )
    assert failed.code == 1, failed.both
    result = aethr("run", "--preset", "review-existing-diff", "--resume-checkpoint", "last", cwd=repo)
    assert result.code == 3, result.both
    assert (
        "the checkpoint is of workflow 'plan-implement-review', and this run was given workflow "
        "'review-existing-diff' (preset review-existing-diff)"
    ) in result.err
    assert ".aethr.yaml" not in result.err, "no workflow file was given or exists"
