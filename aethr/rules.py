"""Rules of a workflow file that span several keys: step ids, roles, models, loops, command
steps and `step:` references. Each problem points at the YAML node that causes it.
"""

from __future__ import annotations

import difflib
import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, NamedTuple

from aethr import agents, params
from aethr.names import litellm_model_name, model_problem
from aethr.params import REFERENCE

if TYPE_CHECKING:
    import yaml

    from aethr.schema import Step, Workflow

Loc = tuple[int | str, ...]
# A shell use of a parameter's variable; the name is read whole, as the shell reads it.
_VARIABLE = re.compile(r"\$\{?AETHR_PARAM_([A-Z0-9_]+)")

# Which keys each kind of step takes: a model step (`role:`), an agent step (`backend: <agent>`)
# and a command step (`run:`). This is the one table: a key a step gives that its kind does not
# take is a load error at that key. Every key of `Step` has a row (a structure test checks).
_ALL, _MODEL_OR_AGENT = frozenset({"model", "agent", "command"}), frozenset({"model", "agent"})
STEP_KEYS: dict[str, frozenset[str]] = {
    "id": _ALL,
    "timeout": _ALL,
    "repeat": _ALL,
    "role": _MODEL_OR_AGENT,
    "backend": _MODEL_OR_AGENT,
    "prompt": _MODEL_OR_AGENT,
    "context": _MODEL_OR_AGENT,
    "history_visibility": _MODEL_OR_AGENT,
    "idle_timeout": _MODEL_OR_AGENT,
    "max_output_tokens": frozenset({"model"}),  # sent as the model's max tokens; an agent has its own
    "allow_truncated": frozenset({"model"}),  # an agent's answer has no length limit
    "output": frozenset({"model"}),  # a schema the model's answer is checked against
    "unsafe_permissions": frozenset({"agent"}),
    "inherit_user_config": frozenset({"agent"}),
    "run": frozenset({"command"}),
    "cwd": frozenset({"command"}),
    "env": frozenset({"command"}),
    "ok_exit_codes": frozenset({"command"}),
    "allow_failure": frozenset({"command"}),
    "output_tokens": frozenset({"command"}),
}


class Problem(NamedTuple):
    loc: Loc
    message: str
    on_key: bool = False  # point at the key itself (unknown or duplicate keys), not its value
    node: yaml.Node | None = None  # the exact node, when the location is ambiguous (duplicates)


def cross_check(wf: Workflow) -> list[Problem]:
    """Rules that span several keys: step ids, roles, models and loop targets."""
    problems: list[Problem] = []
    roles = list(wf.roles)
    role_list = ", ".join(roles) or "(none)"
    for role in wf.models:
        if role not in wf.roles:
            msg = f"model given for unknown role '{role}'{_near(role, roles)}; roles: {role_list}"
            problems.append(Problem(("models", role), msg, on_key=True))
    # Models of roles that model steps call go to LiteLLM; an agent's model is the agent's business.
    for role in dict.fromkeys(s.role for s in wf.steps if s.kind == "model"):
        model = wf.model_of(role)
        problem = model_problem(model) if model is not None else None
        if problem:
            where = ("models", role, "model") if wf.entry_of(role) else ("models", role)
            problems.append(Problem(where, f"models.{role}: {problem}"))
    problems += _param_defaults(wf)
    problems += _param_references(wf)
    seen: dict[str, int] = {}
    ids = [s.id for s in wf.steps]
    for i, step in enumerate(wf.steps):
        if step.id in seen:
            msg = f"duplicate step id '{step.id}' (also used by steps[{seen[step.id]}])"
            problems.append(Problem(("steps", i, "id"), msg))
        seen.setdefault(step.id, i)
        problems += _command_step(i, step)
        problems += _agent_model(i, step, wf)
        problems += _output(i, step)
        if any(source.kind == "step" for source in step.context):  # the lists only when needed: 20,000 steps
            problems += _step_sources(i, step, ids[:i], ids[i + 1 :])
        if step.run is None and step.role and step.role not in wf.roles:
            msg = (
                f"step '{step.id}' uses role '{step.role}', which is not defined under roles"
                f"{_near(step.role, roles)}; roles: {role_list}"
            )
            problems.append(Problem(("steps", i, "role"), msg))
        if step.repeat:
            target = step.repeat.back_to
            earlier = [s.id for s in wf.steps[: i + 1]]
            if target not in earlier:
                later = any(s.id == target for s in wf.steps[i + 1 :])
                why = "a later step" if later else "not a step of this workflow"
                msg = (
                    f"repeat.back_to '{target}' in step '{step.id}' is {why}"
                    f"{_near(target, earlier)}; it must name this step or an earlier one"
                )
                problems.append(Problem(("steps", i, "repeat", "back_to"), msg))
    return problems


def _near(word: str, choices: list[str]) -> str:
    near = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{near[0]}'?)" if near else ""


def kind_class(step: Step) -> str:
    """`model`, `agent` or `command`: the column of `STEP_KEYS` a step is checked against."""
    return "agent" if agents.get(step.kind) is not None else step.kind


def _command_step(i: int, step: Step) -> list[Problem]:
    """Each key a step gives must be one its kind takes (`STEP_KEYS`); a model or agent step
    needs a role; a loop's condition must fit the step's kind; a `cwd` stays in the project."""
    kind = kind_class(step)
    found = [
        Problem(("steps", i, key), _misplaced(step, kind, key), on_key=True)
        for key in type(step).model_fields
        if key in step.model_fields_set and kind not in STEP_KEYS[key]
    ]
    if kind != "command" and not step.role:
        found.append(Problem(("steps", i), f"step '{step.id}' needs a `role` (or `run:` for a command step)"))
    if step.repeat and step.repeat.until_command_passes and kind != "command":
        msg = f"step '{step.id}': until_command_passes needs a `run:` step; a model step can use until_review_pass"
        found.append(Problem(("steps", i, "repeat", "until_command_passes"), msg))
    if step.repeat and step.repeat.until_review_pass and kind == "command":
        msg = f"step '{step.id}' runs a command: use until_command_passes, not until_review_pass"
        found.append(Problem(("steps", i, "repeat", "until_review_pass"), msg))
    if step.cwd is not None:
        pure = PurePosixPath(step.cwd)
        if pure.is_absolute() or ".." in pure.parts:
            msg = f"step '{step.id}': cwd must be a folder inside the project root, relative to it"
            found.append(Problem(("steps", i, "cwd"), msg))
    return found


def _misplaced(step: Step, kind: str, key: str) -> str:
    takers = STEP_KEYS[key]
    goes = " and ".join(k for k in ("model", "agent", "command") if k in takers) + " steps"
    if kind == "command":
        return f"step '{step.id}' runs a command: `{key}` does not go with `run:`; `{key}` goes with {goes} only"
    if takers == {"command"}:
        return f"step '{step.id}': `{key}` belongs to a `run:` step"
    what = "a model step" if kind == "model" else f"an agent step ({step.backend})"
    return f"step '{step.id}' is {what}: `{key}` goes with {goes} only"


def _templates(wf: Workflow) -> list[tuple[Loc, str]]:
    """Every text where `{{params.NAME}}` is replaced, with where it stands."""
    found: list[tuple[Loc, str]] = [(("roles", role), text) for role, text in wf.roles.items()]
    for i, step in enumerate(wf.steps):
        found += [(("steps", i, "context", n), source.arg) for n, source in enumerate(step.context)]
        if step.prompt is not None:
            found.append((("steps", i, "prompt"), step.prompt))
        if step.output is not None and isinstance(step.output.json_schema, str):
            found.append((("steps", i, "output", "schema"), step.output.json_schema))
        if step.repeat is not None and step.repeat.until_contains is not None:
            found.append((("steps", i, "repeat", "until_contains"), step.repeat.until_contains))
    return found


def unused_params(wf: Workflow) -> list[str]:
    """Declared parameters nothing refers to (a warning, not an error): no `{{params.NAME}}`
    in a template and no `$AETHR_PARAM_NAME` (or `${AETHR_PARAM_NAME…}`) in a `run:` line.
    A command that reads the variable only inside a script it runs is not seen."""
    used = {name for _, text in _templates(wf) for name in REFERENCE.findall(text)}
    for step in wf.steps:
        lines = [step.run] if isinstance(step.run, str) else (step.run or [])
        used |= {name.lower() for line in lines for name in _VARIABLE.findall(line)}
    return [name for name in wf.params if name not in used]


def _param_defaults(wf: Workflow) -> list[Problem]:
    """A default is a value like any other: it passes its own type's checks (a `path` is
    checked when the run knows its root)."""
    found = []
    for name, param in wf.params.items():
        if param.default is not None and param.type != "path":
            why = params.problem(param, params.text(param.default), None)
            if why:
                found.append(Problem(("params", name), f"params.{name}: the default {param.default!r} {why}"))
    return found


def _param_references(wf: Workflow) -> list[Problem]:
    """A reference names a declared parameter; a `run:` line has none: values reach it as variables."""
    declared = list(wf.params)
    found = []
    for loc, text in _templates(wf):
        for name in REFERENCE.findall(text):
            if name not in declared:
                msg = f"{{{{params.{name}}}}} names no parameter{_near(name, declared)}; declare it under `params:`"
                found.append(Problem(loc, msg))
    for i, step in enumerate(wf.steps):
        lines = [step.run] if isinstance(step.run, str) else (step.run or [])
        for name in dict.fromkeys(n for line in lines for n in REFERENCE.findall(line)):
            msg = (
                f"step '{step.id}': {{{{params.{name}}}}} in `run:` would splice a value into code; "
                f'read the variable "$AETHR_PARAM_{name.upper()}" instead'
            )
            found.append(Problem(("steps", i, "run"), msg))
    return found


def _agent_model(i: int, step: Step, wf: Workflow) -> list[Problem]:
    """An agent CLI speaks to one provider: its role's model must be one of that provider's."""
    agent = agents.get(step.kind)
    wanted = agent.provider if agent is not None else None
    model = wf.model_of(step.role) if step.role in wf.roles else None
    if wanted is None or model is None:
        return []
    provider = litellm_model_name(model).partition("/")[0]
    if provider == wanted:
        return []
    msg = (
        f"step '{step.id}' hands work to {step.backend}, which calls {wanted} models, but role "
        f"'{step.role}' has '{model}'; give the role a model like {wanted}:…, or choose another backend"
    )
    return [Problem(("steps", i, "backend"), msg)]


def _output(i: int, step: Step) -> list[Problem]:
    """A loop on a field needs `output` (a model step's key: `STEP_KEYS`), and a status line does
    not fit JSON."""
    loop = step.repeat
    if step.output is not None and step.kind != "model":
        return []  # refused by the table already
    if loop is not None and loop.until is not None and step.output is None:
        msg = f"step '{step.id}': repeat.until reads a field of the answer, so the step needs `output: {{schema: …}}`"
        return [Problem(("steps", i, "repeat", "until"), msg)]
    if loop is not None and loop.until_review_pass and step.output is not None:
        msg = (
            f"step '{step.id}' answers in JSON (`output`), which has no 'Review status:' line; "
            "use `until: {field: verdict, equals: pass}`"
        )
        return [Problem(("steps", i, "repeat", "until_review_pass"), msg)]
    return []


def _step_sources(i: int, step: Step, earlier: list[str], later: list[str]) -> list[Problem]:
    found = []
    for n, source in enumerate(step.context):
        named = step_of(source.arg, earlier + later)[0] if source.kind == "step" else None
        if named is not None and named not in earlier:
            why = "a later step" if named in later else "not a step of this workflow"
            msg = f"context step:{source.arg} in step '{step.id}' is {why}{_near(source.arg, earlier)}"
            found.append(Problem(("steps", i, "context", n), msg + "; it must name an earlier step"))
    return found


def step_of(arg: str, ids: list[str]) -> tuple[str, str | None]:
    """`step:ARG` as (step id, field): the whole of ARG when it names a step (ids may hold
    dots), else the longest step id before a dot and the field after it (`review.findings`)."""
    if arg in ids:
        return arg, None
    for cut in range(len(arg) - 1, 0, -1):
        if arg[cut] == "." and arg[:cut] in ids:
            return arg[:cut], arg[cut + 1 :]
    return arg, None
