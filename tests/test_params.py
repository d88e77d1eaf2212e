"""Workflow parameters through the CLI, on real temporary repositories: declaring, giving,
substituting, their safety, and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import aethr, ceiling, git, write_workflow
from tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).parent.parent

TYPED = """\
workflow: typed
params:
  name: {type: string, description: who it is for, default: world, pattern: "[a-z]+"}
  count: {type: int, description: how many, default: 3, min: 1, max: 9}
  ratio: {type: float, description: how much, default: 0.5, max: 1}
  loud: {type: bool, description: shout, default: false}
  tone: {type: choice, description: the tone, choices: [calm, curt], default: calm}
  spec: {type: path, description: the spec file, default: README.md}
roles:
  writer: "{{params.name}} {{params.count}} {{params.ratio}} {{params.loud}} {{params.tone}} {{params.spec}}"
steps:
  - id: write
    role: writer
"""

REFUSED = [
    ("string", "name=World1", "does not match the pattern"),
    ("int", "count=three", "is not an integer"),
    ("int range", "count=12", "is above the maximum 9"),
    ("float", "ratio=lots", "is not a finite number"),
    ("bool", "loud=maybe", "is not a bool: give true/false, yes/no, on/off or 1/0"),
    ("choice", "tone=angry", "is not one of calm, curt"),
    ("path", "spec=missing.md", "is not a path that exists inside the project"),
    ("path outside", "spec=../outside", "is not a path that exists inside the project"),
    ("unknown", "tones=calm", "has no parameter 'tones' (did you mean 'tone'?)"),
    ("no equals", "tone", "write -p NAME=VALUE"),
]


def test_each_type_is_coerced_and_listed_with_its_source(repo: Path) -> None:
    write_workflow(repo, TYPED)
    given = ["-p", "count=07", "-p", "loud=YES", "-p", "tone=curt", "-p", "spec=README.md"]
    result = aethr("run", "task", "--show-prompt", *given, cwd=repo)
    assert result.code == 0, result.both
    assert "world 7 0.5 true curt README.md" in result.out, "coerced: 07 is 7, YES is true"
    assert "params: name='world' (default), count='7' (flag)" in result.out
    listed = aethr("validate", "-p", "tone=curt", cwd=repo)
    assert "param tone = 'curt' (flag) · choice · the tone" in listed.out
    assert "param count = '3' (default) · int · how many" in listed.out


@pytest.mark.parametrize(("case", "given", "message"), REFUSED, ids=[c[0] for c in REFUSED])
def test_a_bad_value_is_refused_with_exit_2(repo: Path, case: str, given: str, message: str) -> None:
    write_workflow(repo, TYPED)
    result = aethr("run", "task", "-p", given, cwd=repo)
    assert result.code == 2, result.both
    assert message in result.err, result.err


def test_a_missing_required_parameter_unattended_is_exit_2_and_calls_nothing(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, TYPED.replace("default: calm", "required: true").replace("writer\n", "writer\n"))
    env = {"AETHR_LIVE": "1", "OPENAI_API_KEY": "sk-test-0123456789", "OPENAI_API_BASE": server.base_url}
    text = TYPED.replace("default: calm", "required: true") + "models: {writer: openai:gpt-4o-mini}\n"
    write_workflow(repo, text)
    result = aethr("run", "task", cwd=repo, env={**env, "CI": "true"})
    assert result.code == 2, result.both
    assert "the parameter 'tone' is required and was not given (tone: choice, the tone; give -p tone=…)" in result.err
    assert server.requests == []


OTHER = """\
workflow: literal
params:
  note: {type: string, default: ""}
  other: {type: string, default: SHOULD-NOT-APPEAR}
roles:
  writer: "Note: {{params.note}} · keep {{ github.sha }} and {{params.missing_not}}"
steps:
  - id: write
    role: writer
"""


def test_values_reach_the_prompt_literally_in_one_pass(repo: Path) -> None:
    write_workflow(repo, OTHER.replace(" and {{params.missing_not}}", ""))
    value = "line one\nkey: [not, yaml]\n{{params.other}} stays"
    result = aethr("run", "task", "--show-prompt", "-p", f"note={value}", cwd=repo)
    assert result.code == 0, result.both
    assert f"Note: {value} · keep {{{{ github.sha }}}}" in result.out, "multi-line, not re-scanned, other {{…}} kept"
    listing = "other='SHOULD-NOT-APPEAR' (default)"
    assert listing in result.out and "SHOULD-NOT-APPEAR" not in result.out.partition(listing)[2], "only listed"
    checked = aethr("validate", cwd=repo)
    assert checked.code == 0 and "warning: parameter 'other' is declared but never used" in checked.err


def test_an_undeclared_reference_and_a_reference_in_run_are_load_errors(repo: Path) -> None:
    write_workflow(repo, OTHER)
    result = aethr("validate", cwd=repo)
    assert result.code == 3 and "{{params.missing_not}} names no parameter" in result.err, result.both
    in_run = OTHER.replace(" and {{params.missing_not}}", "") + "  - id: check\n    run: echo {{params.note}}\n"
    write_workflow(repo, in_run)
    result = aethr("validate", cwd=repo)
    assert result.code == 3 and '"$AETHR_PARAM_NOTE" instead' in result.err and ".aethr.yaml:11:10" in result.err


def test_run_steps_get_values_as_variables_only(repo: Path) -> None:
    text = (
        OTHER.replace(" and {{params.missing_not}}", "") + "  - id: check\n    run: 'printf %s \"$AETHR_PARAM_NOTE\"'\n"
    )
    write_workflow(repo, text)
    result = aethr("run", "task", "--exec-commands", "-p", "note=$(touch pwned)", cwd=repo)
    assert result.code == 0, result.both
    assert "$(touch pwned)" in result.out and not (repo / "pwned").exists()


SOURCES = """\
workflow: sources
params:
  spec: {type: string, default: README.md}
  base: {type: string, default: HEAD}
roles: {reviewer: Review.}
steps:
  - id: review
    role: reviewer
    context: ["file:{{params.spec}}", "git_diff:{{params.base}}...HEAD"]
"""


def test_a_value_in_a_context_source_gets_the_same_checks(repo: Path, tmp_path: Path) -> None:
    (repo.parent / "secret").write_text("OUTSIDE-SECRET\n")
    write_workflow(repo, SOURCES)
    result = aethr("run", "task", "--show-prompt", "-p", "spec=../secret", cwd=repo)
    assert result.code == 0, result.both
    assert "file:../secret: refused" in result.out and "OUTSIDE-SECRET" not in result.out
    target = tmp_path / "written-by-git"
    result = aethr("run", "task", "--show-prompt", "-p", f"base=--output={target}", cwd=repo)
    assert result.code == 2 and "is not a revision range" in result.err, result.both
    assert not target.exists()


def test_a_resume_replays_the_values_and_refuses_new_ones(repo: Path, tmp_path: Path) -> None:
    text = OTHER.replace(" and {{params.missing_not}}", "") + "  - id: second\n    role: writer\n"
    write_workflow(repo, text)
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["first"]))  # the second step runs out of replies: the run fails there
    failed = aethr("run", "task", "-p", "note=REPLAYED", cwd=repo, env={"AETHR_MOCK_RESPONSES": str(replies)})
    assert failed.code == 1, failed.both
    again = aethr("run", "--resume-checkpoint", "last", "-p", "note=x", cwd=repo)
    assert again.code == 2 and "-p does not go with --resume-checkpoint" in again.err
    resumed = aethr("run", "--resume-checkpoint", "last", "--json", cwd=repo)
    assert resumed.code == 0, resumed.both
    prompts = [json.loads(line) for line in resumed.out.splitlines() if '"prompt_built"' in line]
    assert "Note: REPLAYED" in prompts[-1]["prompt"]
    assert git(repo, "status", "--porcelain") == "?? .aethr.yaml\n"


def test_the_json_schema_accepts_every_preset_and_rejects_a_bad_params_block() -> None:
    import jsonschema

    schema = json.loads((ROOT / "aethr" / "workflow.schema.json").read_text())
    for path in sorted((ROOT / "presets").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    bad = yaml.safe_load(TYPED.replace("type: int", "type: integer"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(TYPED.replace("  loud:", "  Loud:")), schema)


def _prompts(out: str) -> list[str]:
    return [json.loads(line)["prompt"] for line in out.splitlines() if '"prompt_built"' in line]


def test_a_saved_workflow_validates_and_builds_the_same_prompts(repo: Path, server: FakeOpenAI) -> None:
    (repo / "spec.md").write_text("the spec\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "spec")
    given = ("-p", "focus=TYPOS\nand: grammar", "--context", "file:spec.md", "--max-cost", "0.25")
    one_off = ("run", "review it", "--preset", "review-existing-diff", *given, "--json")
    env = {"AETHR_MODEL": "openai:gpt-4o", "OPENAI_API_KEY": "sk-test-0123456789", "OPENAI_API_BASE": server.base_url}
    ran = aethr(*one_off, "--save-workflow", "saved.yaml", cwd=repo, env=env)
    assert ran.code == 0, ran.both
    saved = (repo / "saved.yaml").read_text()
    assert saved.startswith("# Saved by aethr") and "review it" in saved.splitlines()[1]
    data = yaml.safe_load(saved)
    assert data["models"] == {"reviewer": "openai:gpt-4o"} and data["max_cost"] == 0.25
    assert data["params"]["focus"]["default"] == "TYPOS\nand: grammar"
    assert aethr("validate", "--config", "saved.yaml", cwd=repo).code == 0
    git(repo, "add", "saved.yaml")  # committed, as a team would: an untracked workflow file is noted in git_diff
    git(repo, "commit", "-qm", "the saved workflow")
    again = aethr("run", "review it", "--config", "saved.yaml", "--json", cwd=repo, env=env)
    assert again.code == 0, again.both
    assert _prompts(again.out) == _prompts(ran.out), "the same prompts, byte for byte"
    refused = aethr(*one_off, "--save-workflow", "saved.yaml", cwd=repo)
    assert refused.code == 2 and "already exists" in refused.err and yaml.safe_load(saved) == data


def test_a_failed_run_is_promoted_from_its_checkpoint(repo: Path, tmp_path: Path) -> None:
    text = OTHER.replace(" and {{params.missing_not}}", "") + "  - id: second\n    role: writer\n"
    write_workflow(repo, text)
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["first"]))
    failed = aethr("run", "task", "-p", "note=KEPT", cwd=repo, env={"AETHR_MOCK_RESPONSES": str(replies)})
    assert failed.code == 1, failed.both
    promoted = aethr("run", "--resume-checkpoint", "last", "--save-workflow", "kept.yaml", cwd=repo)
    assert promoted.code == 0, promoted.both
    assert yaml.safe_load((repo / "kept.yaml").read_text())["params"]["note"]["default"] == "KEPT"
    assert aethr("validate", "--config", "kept.yaml", cwd=repo).code == 0


def test_on_a_terminal_a_missing_required_parameter_is_asked_for(repo: Path) -> None:
    import os
    import pty
    import subprocess
    import sys

    write_workflow(repo, TYPED.replace("default: calm", "required: true"))
    controller, child = pty.openpty()
    command = [sys.executable, "-m", "aethr", "run", "task", "--show-prompt"]
    with subprocess.Popen(
        command, cwd=repo, stdin=child, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        os.close(child)
        os.write(controller, b"curt\n")
        out, err = proc.communicate(timeout=ceiling(120))
    os.close(controller)
    assert proc.returncode == 0, out + err
    assert "aethr: parameter tone (one of calm, curt: the tone): " in err
    assert "tone='curt' (asked)" in out and "world 3 0.5 false curt README.md" in out
