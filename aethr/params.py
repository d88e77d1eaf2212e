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
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


class Value(NamedTuple):
    text: str  # the value as substituted and as set in AETHR_PARAM_<NAME>
    source: str  # default, flag, asked or checkpoint


def text(value: Scalar) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def problem(param: Param, raw: str, root: Path | None) -> str | None:
    """What is wrong with `raw` as a value of `param`, or None. Strict, never guessed at: a
    value with leading or trailing whitespace is refused (not stripped: a quoting slip should
    not pass as a value), numbers are ASCII and finite (`nan`, `inf`, `١٢`, `1_000` are not)."""
    kind = param.type
    if raw != raw.strip():
        return "has leading or trailing whitespace"
    if kind in ("int", "float"):
        if not (_INT if kind == "int" else _FLOAT).fullmatch(raw):
            return f"is not {'an integer' if kind == 'int' else 'a finite number'} (ASCII digits)"
        number = int(raw) if kind == "int" else float(raw)
        if number != number or number in (float("inf"), float("-inf")):
            return "is not a finite number"
        if param.min is not None and number < param.min:
            return f"is below the minimum {param.min:g}"
        if param.max is not None and number > param.max:
            return f"is above the maximum {param.max:g}"
    elif kind == "bool" and raw.lower() not in _TRUE | _FALSE:
        return "is not a bool: give true/false, yes/no, on/off or 1/0"
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
    ask: Callable[[str, Param, str | None], str] | None,
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
        if name in flags:
            raise UsageError(f"-p {name} is given twice ({flags[name]!r} and {raw!r}): give each parameter once")
        flags[name] = raw
    values: dict[str, Value] = {}
    for name, param in declared.items():
        if name in flags:
            raw, source = flags[name], "flag"
        elif param.default is not None:
            raw, source = text(param.default), "default"
        elif ask is not None:
            raw, source = _asked(name, param, root, ask), "asked"
        elif missing_ok:
            continue
        else:
            raise UsageError(f"the parameter '{name}' is required and was not given{_about(name, param)}")
        why = problem(param, raw, root)
        if why:
            raise UsageError(f"-p {name}={raw!r} {why}{_about(name, param)}")
        values[name] = Value(canonical(param, raw), source)
    return values


def _asked(name: str, param: Param, root: Path, ask: Callable[[str, Param, str | None], str]) -> str:
    """A value asked for on a terminal; a bad answer is asked again (with what was wrong),
    an empty one (or the end of input) is taken as it is, to fail as given."""
    why = None
    while True:
        raw = ask(name, param, why)
        why = problem(param, raw, root)
        if not why or not raw:
            return raw
        why = f"{raw!r} {why}"


def _about(name: str, param: Param) -> str:
    return f" ({name}: {param.type}{f', {param.description}' if param.description else ''}; give -p {name}=…)"


def substitute(template: str, values: Mapping[str, Value]) -> str:
    """`{{params.NAME}}` replaced in one pass; a value is never scanned again."""
    return REFERENCE.sub(lambda m: values[m.group(1)].text if m.group(1) in values else m.group(0), template)
