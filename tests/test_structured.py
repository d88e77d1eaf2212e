"""Structured step outputs: an `output` schema per model step, asked for in the provider's
structured-output mode where LiteLLM says the model takes one (else in the prompt),
validated, asked again once, and failed with the errors when still wrong.

Live runs go through real LiteLLM to the loopback server; the request log shows what
the model was asked.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import aethr, write_workflow
from tests.fake_openai import FakeOpenAI

KEY = "sk-test-0123456789abcdef"
SCHEMA = {
    "type": "object",
    "required": ["verdict", "count"],
    "additionalProperties": False,
    "properties": {"verdict": {"enum": ["pass", "revise"]}, "count": {"type": "integer", "minimum": 0}},
}


def workflow(model: str = "openai:gpt-4o-mini", schema: object = None, extra: str = "") -> str:
    shown = json.dumps(SCHEMA if schema is None else schema)
    return f"""\
workflow: structured
roles: {{reviewer: Review.}}
models: {{reviewer: "{model}"}}
steps:
  - id: review
    role: reviewer
    output: {{schema: {shown}}}
{extra}"""


def live(server: FakeOpenAI) -> dict[str, str]:
    return {"AETHR_LIVE": "1", "OPENAI_API_KEY": KEY, "OPENAI_API_BASE": server.base_url}


def final_output(result_out: str) -> object:
    events = [json.loads(line) for line in result_out.splitlines()]
    finished = [e for e in events if e["event"] == "step_finished"]
    return json.loads(finished[-1]["output"])


def test_a_valid_answer_in_the_providers_structured_mode(repo: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "stream", "text": '{"verdict": "pass", "count": 0}'}]
    write_workflow(repo, workflow())
    result = aethr("run", "review", "--json", cwd=repo, env=live(server))
    assert result.code == 0, result.both
    assert final_output(result.out) == {"verdict": "pass", "count": 0}
    assert len(server.requests) == 1
    # gpt-4o-mini takes a response schema (LiteLLM's table): the request carries it.
    fmt = server.requests[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == SCHEMA
    assert "structured-output mode" in server.prompts()[0]


def test_a_model_that_cannot_enforce_gets_the_schema_in_its_prompt(repo: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "stream", "text": '```json\n{"verdict": "revise", "count": 2}\n```'}]
    write_workflow(repo, workflow(model="openai:house-model-7"))
    result = aethr("run", "review", "--json", cwd=repo, env=live(server))
    assert result.code == 0, result.both
    assert final_output(result.out) == {"verdict": "revise", "count": 2}
    assert "response_format" not in server.requests[0]
    prompt = server.prompts()[0]
    assert "Answer with one JSON value and nothing else" in prompt and '"minimum": 0' in prompt


def test_an_invalid_answer_is_asked_again_with_its_errors(repo: Path, server: FakeOpenAI) -> None:
    server.script = [
        {"kind": "stream", "text": '{"verdict": "maybe", "count": -1}'},
        {"kind": "stream", "text": '{"verdict": "revise", "count": 1}'},
    ]
    write_workflow(repo, workflow())
    result = aethr("run", "review", "--json", cwd=repo, env=live(server))
    assert result.code == 0, result.both
    assert final_output(result.out) == {"verdict": "revise", "count": 1}
    assert len(server.requests) == 2
    again = server.prompts()[1]
    assert "# Your previous answer does not fit the schema" in again
    assert "at $.count: -1 is less than the minimum of 0" in again
    assert "at $.verdict: 'maybe' is not one of ['pass', 'revise']" in again
    notices = [json.loads(line) for line in result.out.splitlines() if '"notice"' in line]
    assert any("asking again once" in n["text"] for n in notices)


def test_an_answer_that_never_fits_fails_the_step_naming_the_errors(repo: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "stream", "text": "I think it is fine."}, {"kind": "stream", "text": '{"count": 1}'}]
    write_workflow(repo, workflow())
    result = aethr("run", "review", cwd=repo, env=live(server))
    assert result.code == 1, result.both
    assert len(server.requests) == 2
    assert "step 'review': the answer does not fit its output schema, also when asked again" in result.err
    assert "at $: 'verdict' is a required property" in result.err
    assert "Traceback" not in result.err


def test_mock_mode_answers_fit_the_schema(repo: Path) -> None:
    write_workflow(repo, workflow())
    result = aethr("run", "review", "--json", cwd=repo)
    assert result.code == 0, result.both
    assert final_output(result.out) == {"verdict": "pass", "count": 0}


def test_show_prompt_says_how_the_schema_is_held(repo: Path) -> None:
    write_workflow(repo, workflow())
    enforced = aethr("run", "review", "--show-prompt", cwd=repo)
    write_workflow(repo, workflow(model="openai:house-model-7"))
    prompted = aethr("run", "review", "--show-prompt", cwd=repo)
    assert enforced.code == prompted.code == 0, enforced.both + prompted.both
    assert "structured-output mode" in enforced.out and "nothing else" not in enforced.out
    assert "Answer with one JSON value and nothing else" in prompted.out


def test_validate_checks_the_schema_itself(repo: Path) -> None:
    write_workflow(repo, workflow(schema={"type": "objekt"}))
    bad = aethr("validate", cwd=repo)
    assert bad.code == 3, bad.both
    assert "step 'review': output schema (inline) is not valid JSON Schema at $.type" in bad.err
    (repo / "review.schema.json").write_text(json.dumps(SCHEMA))
    write_workflow(repo, workflow(schema="file:review.schema.json"))
    assert aethr("validate", cwd=repo).code == 0
    write_workflow(repo, workflow(schema="file:../outside.json"))
    outside = aethr("validate", cwd=repo)
    assert outside.code == 3 and "'..' would leave the project root" in outside.err, outside.both
    write_workflow(repo, workflow(schema="file:missing.json"))
    missing = aethr("run", "t", cwd=repo)
    assert missing.code == 3 and "output.schema file:missing.json: no such file" in missing.err, missing.both


def test_output_is_for_model_steps_and_until_needs_it(repo: Path) -> None:
    write_workflow(repo, "workflow: w\nroles: {}\nsteps:\n  - {id: t, run: 'true', output: {schema: findings}}\n")
    refused = aethr("validate", cwd=repo)
    assert refused.code == 3 and "`output` goes with model steps only" in refused.err, refused.both
    loop = "    repeat: {back_to: review, until_review_pass: true}\n"
    write_workflow(repo, workflow(extra=loop))
    status = aethr("validate", cwd=repo)
    assert status.code == 3 and "use `until: {field: verdict, equals: pass}`" in status.err, status.both


LOOP = """\
workflow: fields
roles: {implementer: Build., reviewer: Review.}
models: {implementer: "openai:gpt-4o-mini", reviewer: "openai:gpt-4o-mini"}
steps:
  - id: implement
    role: implementer
  - id: review
    role: reviewer
    output: {schema: findings}
    repeat: {back_to: implement, until: {field: verdict, equals: pass}, max_iterations: 3}
  - id: summary
    role: implementer
    context: ["step:review.findings", "step:review.verdict"]
    history_visibility: none
"""
FINDING = {"path": "app.py", "line": 3, "severity": "high", "title": "subtracts", "body": "add() subtracts"}


def test_a_loop_stops_on_a_field_and_a_later_step_reads_fields(repo: Path, server: FakeOpenAI) -> None:
    revise = {"verdict": "revise", "summary": "one bug", "findings": [FINDING]}
    server.script = [
        {"kind": "stream", "text": "first attempt"},
        {"kind": "stream", "text": json.dumps(revise)},
        {"kind": "stream", "text": "second attempt"},
        {"kind": "stream", "text": json.dumps({"verdict": "pass", "findings": []})},
        {"kind": "stream", "text": "all done"},
    ]
    write_workflow(repo, LOOP)
    result = aethr("run", "fix add", "--json", cwd=repo, env=live(server))
    assert result.code == 0, result.both
    events = [json.loads(line) for line in result.out.splitlines()]
    loops = [(e["passed"], e["reason"]) for e in events if e["event"] == "loop_iteration"]
    assert loops == [(False, 'verdict: "revise"'), (True, 'verdict: "pass"')]
    assert len(server.requests) == 5
    prompts = server.prompts()
    assert 'Set `verdict` to "pass" only when the work is complete' in prompts[1]
    # step:review.findings is the field of the latest pass, as JSON; a string field is itself.
    summary = prompts[4]
    assert "<<< context: step:review.findings >>>\n[]\n<<< end: step:review.findings >>>" in summary
    assert "<<< context: step:review.verdict >>>\npass\n<<< end: step:review.verdict >>>" in summary
    assert events[-1]["verdict"] == "pass"  # the run's verdict from the reviewing step's field


def test_the_runs_verdict_comes_from_the_verdict_field(repo: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "stream", "text": json.dumps({"verdict": "revise", "findings": [FINDING]})}]
    write_workflow(repo, workflow(schema="findings"))
    result = aethr("run", "review", "--json", "--fail-on-revise", cwd=repo, env=live(server))
    assert result.code == 5, result.both
    assert json.loads(result.out.splitlines()[-1])["verdict"] == "revise"


def test_step_field_context_in_mock_mode_and_a_missing_field(repo: Path) -> None:
    text = LOOP.replace('"step:review.verdict"', '"step:review.nothing"')
    write_workflow(repo, text)
    result = aethr("run", "fix add", "--show-prompt", cwd=repo)
    assert result.code == 0, result.both
    mock = aethr("run", "fix add", "--json", cwd=repo)
    assert mock.code == 0, mock.both
    assert "[step 'review' answered no field 'nothing']" in mock.out
    write_workflow(repo, LOOP.replace('"step:review.verdict"', '"step:summary.verdict"'))
    later = aethr("validate", cwd=repo)
    assert later.code == 3 and "context step:summary.verdict in step 'summary' is not" in later.err, later.both
