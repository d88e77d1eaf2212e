"""A model step's output schema: found, checked, asked for, and each answer validated.

A step with `output: {schema: …}` answers in JSON. Its schema is inline, `file:PATH`
(read under the same rules as `file:` context: inside the project, no secrets), or
`findings` (aethr's review findings schema, `aethr.ci.findings`). The schema itself must
be valid JSON Schema (Draft 2020-12): `aethr validate` and the run both check it.

How the model is asked: where LiteLLM's model table says the model supports a response
schema (`supports_response_schema`, read as data), the call carries `response_format`
(the provider's structured-output mode) and the prompt says so; otherwise the prompt
holds the schema and asks for JSON only. `--show-prompt` shows which. Either way the
answer is parsed and validated: an answer that does not fit is asked for again once,
with the errors; a second miss fails the step (exit 1) naming them. An answer that does
not fit is never a success. The step's output is then the JSON value itself, so
`step:ID.FIELD`, loops on a field and the run's verdict read it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from aethr.errors import ConfigError, StepFailed
from aethr.schema import Step

MAX_SCHEMA_BYTES = 1024 * 1024


class OutputSpec(NamedTuple):
    name: str  # `findings`, the file's path, or `inline`
    schema: dict[str, Any]
    enforced: bool  # the provider's structured-output mode holds the model to the schema


def resolve(step: Step, root: Path, model: str | None) -> OutputSpec | None:
    """The step's output spec, its schema read and checked. Raises ConfigError."""
    if step.output is None or step.output.json_schema == "text":
        return None  # `text`: a free-text answer (a parameter can choose it, as the review preset's does)
    value = step.output.json_schema
    if isinstance(value, dict):
        name, schema = "inline", value
    elif value == "findings":
        from aethr.ci.findings import SCHEMA

        name, schema = "findings", SCHEMA
    elif value.startswith("file:"):
        name, schema = value[5:], _read(step.id, root, value[5:])
    else:
        raise ConfigError(
            f"step '{step.id}': output.schema '{value}' is neither a JSON Schema, `file:PATH`, `findings` nor `text`"
        )
    check(step.id, name, schema)
    return OutputSpec(name, schema, supports_schema(model))


def _read(step_id: str, root: Path, rel: str) -> dict[str, Any]:
    from aethr import sensitive

    where = f"step '{step_id}': output.schema file:{rel}"
    why = sensitive.by_target(root.resolve(), rel)
    if why:
        raise ConfigError(f"{where} is refused: {why}")
    try:
        data = (root / rel).read_bytes()[: MAX_SCHEMA_BYTES + 1]
        schema = json.loads(data) if len(data) <= MAX_SCHEMA_BYTES else None
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file", hint="give a path relative to the project root") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where} is not a readable JSON file: {exc}") from None
    if not isinstance(schema, dict):
        raise ConfigError(f"{where} must hold one JSON object (a schema) of at most 1 MiB")
    return schema


def check(step_id: str, name: str, schema: dict[str, Any]) -> None:
    """Raise ConfigError when `schema` is not valid against the Draft 2020-12 meta-schema."""
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = f"step '{step_id}': output schema ({name})"
        raise ConfigError(f"{where} is not valid JSON Schema at {exc.json_path}: {exc.message}") from None


def supports_schema(model: str | None) -> bool:
    """Whether LiteLLM's model table says `model` takes a response schema (read as data)."""
    from aethr import pricing

    found = pricing.entry(model) if model else None
    return bool(found and found.get("supports_response_schema") is True)


def response_format(spec: OutputSpec) -> dict[str, Any]:
    """The `response_format` of a call in the provider's structured-output mode."""
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in Path(spec.name).stem)[:64] or "answer"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": spec.schema, "strict": False}}


def instruction(spec: OutputSpec) -> str:
    """The prompt's section on the answer's form, saying how the schema is held to."""
    shown = json.dumps(spec.schema, indent=2, ensure_ascii=False)
    if spec.enforced:
        lead = (
            "Answer with one JSON value valid against this JSON Schema; the provider's "
            "structured-output mode is asked to hold you to it (`response_format`)."
        )
    else:
        lead = (
            "Answer with one JSON value and nothing else: no prose, no code fence. "
            "It must be valid against this JSON Schema:"
        )
    return f"{lead}\n```json\n{shown}\n```"


def validated(text: str, schema: dict[str, Any]) -> tuple[Any, list[str]]:
    """The answer's JSON value and the ways it breaks `schema` (empty: it fits)."""
    from aethr.ci.findings import errors, loads

    value = loads(text)
    if value is None:
        return None, ["the answer is not JSON" + (f" (it starts: {text.strip()[:60]!r})" if text.strip() else "")]
    return value, errors(value, schema)


def again(prompt: str, answer: str, problems: list[str]) -> str:
    """The prompt of the one second try: the first answer and why it does not fit."""
    listed = "\n".join(f"- {p}" for p in problems[:20])
    return (
        f"{prompt}\n# Your previous answer does not fit the schema\n{answer.strip()[:4000]}\n\n"
        f"Its problems:\n{listed}\n\nAnswer again, with JSON that fits the schema.\n"
    )


def failure(step_id: str, problems: list[str]) -> StepFailed:
    listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    return StepFailed(
        f"step '{step_id}': the answer does not fit its output schema, also when asked again: {listed}",
        hint="read the answer above; make the schema or the step's prompt clearer, or choose another model",
    )


def step_value(arg: str, outputs: dict[str, str]) -> str | None:
    """What `step:ARG` shows: a step's latest output, or with `step:ID.FIELD` (a dotted path
    for nested fields) that field of its JSON answer, as JSON (a string as itself). None when
    the step has not run; a note in brackets when its answer has no such field."""
    from aethr.ci.findings import loads
    from aethr.rules import step_of

    step_id, field = step_of(arg, list(outputs))
    output = outputs.get(step_id)
    if output is None or field is None:
        return output
    value: Any = loads(output)
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return f"[step '{step_id}' answered no field '{field}']"
        value = value[part]
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
