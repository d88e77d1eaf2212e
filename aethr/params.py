"""Workflow parameter values: `-p NAME=VALUE` on the command line, checked against the
file's `params:` (declared as `schema.Param`), and substituted into templates.

    params:
      base: {type: string, description: "the branch to review against", default: ""}
      focus: {type: choice, choices: [security, tests], required: true}

Values are coerced by type (`string`, `int`, `float`, `bool`, `choice`, `path`) and
checked (`choices`, `min`/`max`, `pattern`, a `path` that exists inside the project).
Only `{{params.NAME}}` is replaced, after the YAML is parsed, in one pass (a value is
never scanned again): in role guidance, a step's `prompt:`, context source arguments and
`until_contains`. Every other `{{…}}` is left as it is. A substituted context source goes
through the same parser and read rules as a literal one; a `git_diff:` range must look
like one. A `run:` line is code: values reach it only as `AETHR_PARAM_<NAME>` variables.
Putting the values into a workflow is `effective.with_values`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from aethr.errors import UsageError

if TYPE_CHECKING:
    from aethr.schema import Param, Scalar

REFERENCE = re.compile(r"\{\{\s*params\.([A-Za-z0-9_]+)\s*\}\}")
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


class Value(NamedTuple):
    text: str  # the value as substituted and as set in AETHR_PARAM_<NAME>
    source: str  # default, flag, asked or checkpoint


def text(value: Scalar) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def problem(param: Param, raw: str, root: Path | None) -> str | None:
    """What is wrong with `raw` as a value of `param`, or None."""
    kind = param.type
    if kind in ("int", "float"):
        try:
            number = int(raw) if kind == "int" else float(raw)
        except ValueError:
            return f"is not {'an integer' if kind == 'int' else 'a number'}"
        if param.min is not None and number < param.min:
            return f"is below the minimum {param.min:g}"
        if param.max is not None and number > param.max:
            return f"is above the maximum {param.max:g}"
    elif kind == "bool" and raw.lower() not in _TRUE | _FALSE:
        return "is not true or false"
    elif kind == "choice" and raw not in (param.choices or []):
        return f"is not one of {', '.join(param.choices or [])}"
    elif kind == "string" and param.pattern is not None and not re.fullmatch(param.pattern, raw):
        return f"does not match the pattern {param.pattern!r}"
    elif kind == "path" and root is not None:
        where = (root / raw).resolve()
        if Path(raw).is_absolute() or not where.is_relative_to(root.resolve()) or not where.exists():
            return "is not a path that exists inside the project"
    return None


def canonical(param: Param, raw: str) -> str:
    if param.type == "bool":
        return "true" if raw.lower() in _TRUE else "false"
    return str(int(raw)) if param.type == "int" else raw


def resolve(
    declared: Mapping[str, Param],
    given: list[str],
    root: Path,
    ask: Callable[[str, Param], str] | None,
    missing_ok: bool = False,
) -> dict[str, Value]:
    """Every declared parameter's value: from `-p`, else its default, else asked (on a
    terminal), else a UsageError (left out with `missing_ok`). An undeclared name or a bad
    value is a UsageError too."""
    flags: dict[str, str] = {}
    for item in given:
        name, sep, raw = item.partition("=")
        if not sep:
            raise UsageError(f"-p {item!r}: write -p NAME=VALUE")
        if name not in declared:
            near = difflib.get_close_matches(name, list(declared), n=1)
            maybe = f" (did you mean '{near[0]}'?)" if near else ""
            known = ", ".join(declared) or "none"
            raise UsageError(f"-p {name}: this workflow has no parameter '{name}'{maybe}; its parameters: {known}")
        flags[name] = raw
    values: dict[str, Value] = {}
    for name, param in declared.items():
        if name in flags:
            raw, source = flags[name], "flag"
        elif param.default is not None:
            raw, source = text(param.default), "default"
        elif ask is not None:
            raw, source = ask(name, param), "asked"
        elif missing_ok:
            continue
        else:
            raise UsageError(f"the parameter '{name}' is required and was not given{_about(name, param)}")
        why = problem(param, raw, root)
        if why:
            raise UsageError(f"-p {name}={raw!r} {why}{_about(name, param)}")
        values[name] = Value(canonical(param, raw), source)
    return values


def _about(name: str, param: Param) -> str:
    return f" ({name}: {param.type}{f', {param.description}' if param.description else ''}; give -p {name}=…)"


def substitute(template: str, values: Mapping[str, Value]) -> str:
    """`{{params.NAME}}` replaced in one pass; a value is never scanned again."""
    return REFERENCE.sub(lambda m: values[m.group(1)].text if m.group(1) in values else m.group(0), template)
