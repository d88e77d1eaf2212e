"""Promotion: a run that worked becomes an editable workflow file (`--save-workflow PATH`).

No history is kept anywhere: what is saved is the run's own effective workflow, from
what it was given: the file or `--preset`, its `--context` additions, the parameters
with the values it used as their defaults, the models it called (`AETHR_MODEL`
included) and its spend cap. Running the saved file with `--config PATH` and no `-p`
builds the same prompts. A failed run is promoted from its checkpoint
(`--resume-checkpoint … --save-workflow PATH`), which keeps its values and model.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aethr import __version__
from aethr.errors import UsageError
from aethr.fsutil import atomic_write
from aethr.params import Value

if TYPE_CHECKING:
    from aethr.schema import Workflow


def check_target(path: Path, force: bool) -> None:
    """Refuse (before the run) to overwrite a file without --force."""
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; nothing was saved over it", hint="pass --force to replace it")


def effective(
    workflow: Workflow, values: Mapping[str, Value], model_override: str | None, cap: float | None
) -> dict[str, Any]:
    """The workflow as this run ran it, as plain data (templates kept, values as defaults)."""
    data = workflow.model_dump(mode="json", exclude_defaults=True)
    data["workflow"] = workflow.workflow
    for name, param in data.get("params", {}).items():
        declared = workflow.params[name]
        raw = values[name].text if name in values else None
        default = _typed(declared.type, raw) if raw is not None else declared.default
        rest = {k: v for k, v in param.items() if k not in ("type", "required", "default")}
        data["params"][name] = {"type": declared.type, **rest, "default": default}
    if model_override is not None:
        used = {step.role for step in workflow.steps if step.run is None}
        data["models"] = {**data.get("models", {}), **{role: model_override for role in sorted(used)}}
    if cap is not None:
        data["max_cost"] = min(cap, workflow.max_cost or cap)
    order = ["workflow", "params", "roles", "models", "max_cost", "env_passthrough", "prices", "steps"]
    return {key: data[key] for key in order if key in data}


def save(path: Path, data: dict[str, Any], task: str, force: bool) -> None:
    import yaml

    check_target(path, force)
    first = " ".join(task.split())[:100]
    head = (
        f"# Saved by aethr {__version__} on {datetime.date.today().isoformat()} from a run of the task:\n"
        f"#   {first}\n"
        "# Parameters hold the values that run used as their defaults; give -p NAME=VALUE to change them.\n"
        f'# Run it:  aethr run --config {path.name} "task"     Check it:  aethr validate --config {path.name}\n'
    )
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    atomic_write(path, (head + body).encode(), mode=0o644)


def _typed(kind: str, raw: str) -> object:
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "bool":
        return raw == "true"
    return raw
