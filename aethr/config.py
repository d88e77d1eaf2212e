"""The workflow file (`.aethr.yaml`): strict pydantic models and a loader.

`load(path)` returns a validated `Workflow` or raises `ConfigError` whose
message lists every problem as `FILE:LINE:COLUMN: what is wrong`, pointing at
the YAML node that caused it (pydantic's error locations are mapped back to
the nodes yaml composed).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from aethr import CONFIG_NAME
from aethr.errors import ConfigError
from aethr.names import CONTEXT_FORMS, ContextSource, parse_context_source
from aethr.params import NAME_PATTERN, Param
from aethr.rules import Loc, Problem, cross_check

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


class _Strict(BaseModel):
    # Strict: `"yes"` is not a boolean, `true` is not a number, and infinity is not a timeout.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


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
    max_iterations: int = Field(3, ge=1, le=20, description="Passes of the slice, 1 to 20.")

    @model_validator(mode="after")
    def _one_condition(self) -> Repeat:
        given = [self.until_review_pass, self.until_contains is not None, self.until_command_passes]
        if sum(given) != 1:
            raise ValueError(
                "give exactly one of `until_review_pass: true`, `until_contains: …` or `until_command_passes: true`"
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
    backend: Literal["model", "opencode", "claude", "codex", "gemini"] = Field(
        "model",
        description="`model` calls the role's model; an agent (`opencode`, `claude`, `codex`, `gemini`) "
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


class Workflow(_Strict):
    workflow: str = Field(min_length=1, description="The workflow's name.")
    roles: dict[str, str] = Field(description="Role name -> guidance text for that role.")
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


# --- loading ---------------------------------------------------------------------------------


def load(path: Path) -> Workflow:
    """Read and validate a workflow file. Raises ConfigError naming FILE:LINE:COLUMN."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no workflow file here",
            hint="run `aethr init` to create one from a preset (`aethr init --list` shows them)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the workflow file: {exc}") from None
    return parse(text, str(path))


class _AliasRefused(yaml.composer.ComposerError):
    pass


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases: `*name` is refused where it stands, so a few hundred bytes cannot
    expand into billions of nodes (an "alias bomb"), and every value is written where it is used."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _AliasRefused(
                None,
                None,
                f"YAML aliases (*{getattr(event, 'anchor', '')}) are not allowed in a workflow file; "
                "write the value out where it is used",
                event.start_mark,
            )
        return super().compose_node(parent, index)  # type: ignore[arg-type]


def parse(text: str, name: str = CONFIG_NAME) -> Workflow:
    """Validate workflow YAML text; `name` is used in error locations."""
    try:
        loader = _NoAliasLoader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        what = "" if isinstance(exc, _AliasRefused) else "malformed YAML: "
        raise ConfigError(f"{where}: {what}{exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: malformed YAML: {exc}") from None

    if root is None or data is None:
        raise ConfigError(
            f"{name}:1:1: the workflow file is empty",
            hint="run `aethr init --force` to start again from a preset",
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"{_where(name, root)}: the workflow file must be a mapping with `workflow`, `roles`, `models` and `steps`"
        )
    problems = _duplicate_keys(root, ())
    if not problems:
        try:
            workflow = Workflow.model_validate(data)
        except ValidationError as exc:
            problems = [_describe(err) for err in exc.errors()]
        else:
            problems = cross_check(workflow)
            if not problems:
                return workflow
    lines = [f"{_where(name, p.node or _node_at(root, p.loc, p.on_key))}: {p.message}" for p in problems]
    raise ConfigError("\n".join(lines), hint="`aethr schema` prints every allowed key")


def _where(name: str, node: yaml.Node) -> str:
    return f"{name}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _node_at(root: yaml.Node, loc: Loc, on_key: bool) -> yaml.Node:
    """The deepest node along `loc`; a key that is named but absent falls back to its parent."""
    node = root
    for depth, item in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == item), None)
            if pair is None:
                return node
            last = depth == len(loc) - 1
            node = pair[0] if last and on_key else pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(item, int) and item < len(node.value):
            node = node.value[item]
        else:
            return node
    return node


def _duplicate_keys(node: yaml.Node, loc: Loc) -> list[Problem]:
    found: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                found.append(Problem((*loc, key.value), f"duplicate key '{key.value}'", node=key))
            seen.add(key.value)
            found += _duplicate_keys(value, (*loc, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            found += _duplicate_keys(value, (*loc, i))
    return found


def _path(loc: Loc) -> str:
    text = ""
    for item in loc:
        text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else str(item))
    return text or "(top level)"


def _fields_at(parent: Loc) -> list[str]:
    if not parent:
        return list(Workflow.model_fields)
    if parent[0] == "steps" and len(parent) == 2:
        return list(Step.model_fields)
    if parent[0] == "steps" and len(parent) == 3 and parent[2] == "repeat":
        return list(Repeat.model_fields)
    return []


def _describe(err: Any) -> Problem:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        key, parent = loc[-1], loc[:-1]
        allowed = _fields_at(parent)
        near = difflib.get_close_matches(str(key), allowed, n=1)
        maybe = f" (did you mean '{near[0]}'?)" if near else ""
        where = f" in {_path(parent)}" if parent else ""
        msg = f"unknown key '{key}'{where}{maybe}; allowed: {', '.join(allowed)}"
        return Problem(loc, msg, on_key=True)
    if kind == "missing":
        return Problem(loc, f"{_path(loc)} is required")
    msg = str(err["msg"]).removeprefix("Value error, ")
    return Problem(loc, f"{_path(loc)}: {msg}")


def json_schema() -> dict[str, Any]:
    schema = Workflow.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "aethr workflow (.aethr.yaml)"
    return schema
