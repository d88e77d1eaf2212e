"""Reading the workflow file (`.aethr.yaml`): YAML without aliases, duplicate keys refused,
the models of `schema` and the rules of `rules` applied.

`load(path)` returns a validated `Workflow` or raises `ConfigError` whose
message lists every problem as `FILE:LINE:COLUMN: what is wrong`, pointing at
the YAML node that caused it (pydantic's error locations are mapped back to
the nodes yaml composed).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from aethr import CONFIG_NAME
from aethr.errors import ConfigError
from aethr.rules import Loc, Problem, cross_check
from aethr.schema import Repeat, Step, Workflow


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
