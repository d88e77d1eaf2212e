"""The workflow file's shape: strict pydantic models of `.aethr.yaml`, and nothing else.

Reading the file (YAML, FILE:LINE:COLUMN messages) is `config`; rules that span several
keys, such as which keys each step kind takes, are `rules`; the workflow a run actually
runs (a preset or the file, parameters applied, `--context` added) is `effective`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from aethr import agents
from aethr.names import CONTEXT_FORMS, ContextSource, parse_context_source

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"  # a parameter's name: a lowercase identifier
Scalar = str | int | float | bool

ContextSpec = Annotated[
    ContextSource,
    PlainValidator(parse_context_source),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(git_diff(:.+)?|latest_diff|file:.+|glob:.+|step:.+)$",
            "description": f"One of: {CONTEXT_FORMS}",
        }
    ),
]

BACKENDS = ("model", *agents.NAMES)


def _backend(value: str) -> str:
    if value not in BACKENDS:
        near = difflib.get_close_matches(value, BACKENDS, n=1)
        maybe = f" (did you mean '{near[0]}'?)" if near else ""
        raise ValueError(f"unknown backend '{value}'{maybe}; one of: {', '.join(BACKENDS)}")
    return value


# The choices come from the agent registry, so a new agent is one row there.
BackendName = Annotated[str, AfterValidator(_backend), WithJsonSchema({"enum": list(BACKENDS), "type": "string"})]


class _Strict(BaseModel):
    # Strict: `"yes"` is not a boolean, `true` is not a number, and infinity is not a timeout.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Param(_Strict):
    """One parameter: its type, what it is for, and a default or `required: true`."""

    type: Literal["string", "int", "float", "bool", "choice", "path"] = "string"
    description: str = ""
    default: Scalar | None = None
    required: bool = False
    choices: list[str] | None = Field(None, min_length=1, description="choice: the allowed values.")
    min: float | None = Field(None, description="int, float: the smallest value.")
    max: float | None = Field(None, description="int, float: the largest value.")
    pattern: str | None = Field(None, description="string: a regular expression the whole value matches.")

    @model_validator(mode="after")
    def _consistent(self) -> Param:
        if (self.default is None) == (not self.required):
            raise ValueError("give either `default: …` or `required: true` (not both)")
        if (self.choices is not None) != (self.type == "choice"):
            raise ValueError("`choices` goes with `type: choice`, and a choice needs them")
        if (self.min is not None or self.max is not None) and self.type not in ("int", "float"):
            raise ValueError("`min` and `max` go with `type: int` or `type: float`")
        if self.pattern is not None:
            if self.type != "string":
                raise ValueError("`pattern` goes with `type: string`")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"`pattern` is not a regular expression: {exc}") from None
        return self


class FieldEquals(_Strict):
    """A field of a step's structured answer (see `output`) that ends a loop when it equals a value."""

    field: str = Field(min_length=1, description="A top-level field of the step's JSON answer, e.g. verdict.")
    equals: Scalar = Field(description="The value that ends the loop, e.g. pass.")


class Output(_Strict):
    """A model step's answer is JSON valid against this schema (asked for, validated, asked again once)."""

    # `schema` would shadow a BaseModel attribute, so the field has another name; the file says `schema`.
    model_config = ConfigDict(validate_by_alias=True, validate_by_name=False, serialize_by_alias=True)

    json_schema: dict[str, Any] | str = Field(
        alias="schema",
        description="An inline JSON Schema (Draft 2020-12), `file:PATH` (inside the project), "
        "`findings` (aethr's review findings schema), or `text` (no schema: a free-text answer).",
    )


class Repeat(_Strict):
    """Send the run back to `back_to` until the condition holds, at most `max_iterations` passes."""

    back_to: str = Field(description="An earlier step id; the slice back_to..this step repeats.")
    until_review_pass: bool = Field(False, description="Stop when this step's output has a line 'Review status: pass'.")
    until_contains: str | None = Field(
        None, min_length=1, description="Stop when this step's output contains this text."
    )
    until_command_passes: bool = Field(
        False, description="Command steps: stop when the command passes (its exit code is in ok_exit_codes)."
    )
    until: FieldEquals | None = Field(
        None, description="Steps with an `output` schema: stop when a field of the answer equals a value."
    )
    max_iterations: int = Field(3, ge=1, le=20, description="Passes of the slice, 1 to 20.")

    @model_validator(mode="after")
    def _one_condition(self) -> Repeat:
        given = [self.until_review_pass, self.until_contains is not None, self.until_command_passes]
        if sum(given) + (self.until is not None) != 1:
            raise ValueError(
                "give exactly one of `until_review_pass: true`, `until_contains: …`, "
                "`until_command_passes: true` or `until: {field: …, equals: …}`"
            )
        return self


class Step(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Unique step id.")
    role: str = Field("", description="A role defined under `roles` (not on a `run:` step).")
    run: str | list[str] | None = Field(
        None,
        min_length=1,
        description="A command instead of a role: a string runs with /bin/sh -c, a list is an argv (no shell).",
    )
    cwd: str | None = Field(None, min_length=1, description="run: the folder to run in, relative to the project root.")
    env: dict[str, str] = Field(default_factory=dict, description="run: variables added to the environment.")
    ok_exit_codes: list[int] = Field(default_factory=lambda: [0], min_length=1, description="run: passing codes.")
    allow_failure: bool = Field(False, description="run: a failing command does not stop the run.")
    output_tokens: int = Field(4000, ge=100, le=24000, description="run: how much output later steps see.")
    max_output_tokens: int | None = Field(
        None, ge=1, description="Model steps: the most tokens the model may answer with (sent as its max tokens)."
    )
    allow_truncated: bool = Field(
        False,
        description="Model steps: take an answer cut at the output limit (finish reason `length`) instead of failing.",
    )
    backend: BackendName = Field(
        "model",
        description=f"`model` calls the role's model; an agent ({', '.join(f'`{n}`' for n in agents.NAMES)}) "
        "gets the step and edits the tree.",
    )
    unsafe_permissions: bool = Field(
        False, description="Agents: allow every tool without asking, not only file edits (each CLI's own flag)."
    )
    inherit_user_config: bool = Field(
        False, description="claude, codex, gemini: use your own agent config (hooks, MCP, memory), not a clean one."
    )
    idle_timeout: float | None = Field(
        None, gt=0, description="Seconds without output before the step is stopped (agents 180, models 60)."
    )
    prompt: str | None = Field(
        None, min_length=1, description="An instruction added to this step's prompt ({{params.NAME}} allowed)."
    )
    context: list[ContextSpec] = Field(default_factory=list)
    history_visibility: Literal["all", "latest", "summary", "none"] = "all"
    timeout: float | None = Field(None, gt=0, description="Seconds per model call, agent run or command.")
    repeat: Repeat | None = None
    output: Output | None = Field(None, description="Model steps: the JSON Schema the answer must fit.")

    @property
    def kind(self) -> str:
        """`command` for a `run:` step, else its backend (`model`, or an agent's name)."""
        return "command" if self.run is not None else self.backend


class ModelEntry(_Strict):
    """A role's model with its own endpoint: a gateway, a second server, a keyless local one."""

    model: str = Field(description="LiteLLM model, `provider:model` or `provider/model`.")
    api_base: str | None = Field(None, min_length=1, description="The endpoint for this role only.")
    api_key_env: str | None = Field(
        None,
        pattern=r"^([A-Z_][A-Z0-9_]*|none)$",
        description="The variable holding this endpoint's key, or `none` for a keyless local server.",
    )
    retries: int | None = Field(
        None, ge=0, le=5, description="Retries of a failed call (default: 2, or 0 behind a gateway)."
    )


class Price(_Strict):
    input: float = Field(ge=0, description="USD per million input tokens.")
    output: float = Field(ge=0, description="USD per million output tokens.")
    cached_input: float | None = Field(
        None, ge=0, description="USD per million input tokens read from the prompt cache (default: the input price)."
    )
    cache_write: float | None = Field(
        None, ge=0, description="USD per million input tokens written to the prompt cache (default: the input price)."
    )


class Isolate(_Strict):
    """`isolate: {link: [...]}`: an isolated run, with ignored paths it needs linked in."""

    link: list[str] = Field(
        default_factory=list,
        description="Ignored paths (.venv, node_modules) to symlink into the run's worktree.",
    )


class Workflow(_Strict):
    workflow: str = Field(min_length=1, description="The workflow's name.")
    roles: dict[str, str] = Field(
        default_factory=dict, description="Role name -> guidance text for that role (none: commands only)."
    )
    models: dict[str, str | ModelEntry] = Field(
        default_factory=dict,
        description="Role name -> LiteLLM model (`provider:model`), or {model, api_base, api_key_env, retries}.",
    )
    max_cost: float | None = Field(None, gt=0, description="A spend cap in USD for each run (the lowest cap wins).")
    env_passthrough: list[str] = Field(
        default_factory=list, description="Keys from .env that `run:` commands may see (none by default)."
    )
    prices: dict[str, Price] = Field(
        default_factory=dict, description="Model -> USD per million input and output tokens, for unpriced models."
    )
    params: dict[Annotated[str, StringConstraints(pattern=NAME_PATTERN)], Param] = Field(
        default_factory=dict,
        description="Name -> parameter, given with -p NAME=VALUE and used as {{params.NAME}}.",
        json_schema_extra={"additionalProperties": False},  # names are lowercase identifiers
    )
    isolate: bool | Isolate = Field(
        False, description="Run in a worktree of its own and hand back a patch (`aethr run --isolate`)."
    )
    steps: list[Step] = Field(min_length=1)

    def model_of(self, role: str) -> str | None:
        entry = self.models.get(role)
        return entry.model if isinstance(entry, ModelEntry) else entry

    def entry_of(self, role: str) -> ModelEntry | None:
        entry = self.models.get(role)
        return entry if isinstance(entry, ModelEntry) else None

    def step_index(self, step_id: str) -> int:
        return next(i for i, s in enumerate(self.steps) if s.id == step_id)

    def digest(self) -> str:
        """A hash of the normalized workflow: comments and formatting do not change it."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the workflow file, for editors and `aethr schema`."""
    schema = Workflow.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "aethr workflow (.aethr.yaml)"
    return schema
