"""The workflow a run actually runs, built in one order from what it was given:

1. the source: the file (`--config`, or `.aethr.yaml` here or above) or `--preset NAME`;
2. `--context` sources added to every model and agent step;
3. the parameter values put in place (`{{params.NAME}}` and `AETHR_PARAM_<NAME>`).

A checkpoint's workflow digest is taken after 2 and before 3: a resume needs the same
file and `--context`, and replays the run's own values. Promotion (`promote`) is the
inverse: from the workflow after 2 and the values, it writes a file that builds the same.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from aethr import CONFIG_NAME, project
from aethr.config import load, parse
from aethr.errors import UsageError
from aethr.names import parse_context_source
from aethr.params import Value, substitute
from aethr.schema import Step, Workflow

# A `git_diff:` range that came from a parameter must look like one: no option, no space.
_RANGE = re.compile(r"^(?!-)[A-Za-z0-9._/@^~{}+-]+$")


class Source(NamedTuple):
    """Where a run's workflow came from."""

    project: project.Project
    workflow: Workflow
    label: str  # how messages name it: the file's path, or `preset NAME`
    config_path: Path  # the file a resume fingerprints and leaves out of context (it may not exist)


def source(cwd: Path, config: Path | None, preset: str | None) -> Source:
    """The file or, with `preset`, a built-in workflow read from aethr itself: nothing is
    written, with or without a `.aethr.yaml` (which the preset wins over, said once the
    preset is known to exist). Raises UsageError or ConfigError."""
    if preset is None:
        found = project.require_config(cwd, config)
        assert found.config is not None
        return Source(found, load(found.config), str(found.config), found.config)
    if config is not None:
        raise UsageError("--preset and --config do not go together: choose one workflow")
    from aethr import presets

    chosen = presets.get(preset)  # an unknown name is the one error, before any note
    found = project.find(cwd)
    if found.config is not None:
        sys.stderr.write(f"aethr: --preset {preset} wins: {found.config} is not read for this run\n")
    label = f"preset {preset}"
    return Source(found, parse(chosen.text, name=label), label, found.config or found.root / CONFIG_NAME)


def with_context(workflow: Workflow, sources: tuple[str, ...]) -> Workflow:
    """The workflow with `--context` sources added to every model and agent step. They go
    through the same parser as the file's, and are read under the same rules."""
    if not sources:
        return workflow
    try:
        added = [parse_context_source(source) for source in sources]
    except ValueError as exc:
        raise UsageError(f"--context: {exc}") from None
    if any(source.kind == "step" for source in added):
        raise UsageError("--context: step:<id> names one step's output; write it in the workflow file")
    steps = [
        s if s.kind == "command" else s.model_copy(update={"context": [*s.context, *added]}) for s in workflow.steps
    ]
    return workflow.model_copy(update={"steps": steps})


def with_values(workflow: Workflow, values: Mapping[str, Value]) -> Workflow:
    """The workflow with the values in place, and in `AETHR_PARAM_<NAME>` of every `run:`
    step. A substituted context source is parsed again, as a literal one is."""
    if not workflow.params:
        return workflow
    roles = {role: substitute(guidance, values) for role, guidance in workflow.roles.items()}
    env = {f"AETHR_PARAM_{name.upper()}": value.text for name, value in values.items()}
    steps = [
        step.model_copy(update={"env": {**env, **step.env}}) if step.run is not None else _step(step, values)
        for step in workflow.steps
    ]
    return workflow.model_copy(update={"roles": roles, "steps": steps})


def _step(step: Step, values: Mapping[str, Value]) -> Step:
    sources = []
    for source in step.context:
        arg = substitute(source.arg, values)
        if arg and arg != source.arg and source.kind == "git_diff" and not _RANGE.match(arg):
            raise UsageError(f"step '{step.id}': git_diff:{arg} (from a parameter) is not a revision range")
        try:
            sources.append(parse_context_source(f"{source.kind}:{arg}" if arg else source.kind))
        except ValueError as exc:
            raise UsageError(f"step '{step.id}': {exc} (from a parameter)") from None
    update: dict[str, object] = {"context": sources}
    if step.prompt is not None:
        update["prompt"] = substitute(step.prompt, values)
    if step.output is not None and isinstance(step.output.json_schema, str):
        update["output"] = step.output.model_copy(update={"json_schema": substitute(step.output.json_schema, values)})
    if step.repeat is not None and step.repeat.until_contains is not None:
        update["repeat"] = step.repeat.model_copy(
            update={"until_contains": substitute(step.repeat.until_contains, values)}
        )
    return step.model_copy(update=update)
