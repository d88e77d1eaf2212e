"""What a run produces and carries forward: step results and implementation artifacts.

Plain frozen dataclasses with `to_dict`/`from_dict`, so checkpoints (and a
future record/replay) store exactly what later steps see.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from aethr.events import StepFinished
from aethr.usage import Usage


@dataclass(frozen=True)
class Artifact:
    """The working-tree change of one agent step: files, stat and patch."""

    step_id: str
    changed_files: tuple[str, ...]
    stat: str
    patch: str
    truncated: bool = False
    note: str = ""  # set when the step did not really run (mock mode, preview)

    def describe(self) -> str:
        if self.note:
            return self.note
        if not self.changed_files:
            return f"step '{self.step_id}' changed no files"
        return f"step '{self.step_id}' changed {len(self.changed_files)} file(s)"


@dataclass(frozen=True)
class StepResult:
    step_id: str
    role: str
    model: str | None
    output: str
    iteration: int
    seconds: float
    usage: Usage = field(default_factory=Usage)
    artifact: Artifact | None = None
    passed: bool | None = None  # command steps: whether the command passed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def finished(self) -> StepFinished:
        """The event that reports this result."""
        files = self.artifact.changed_files if self.artifact is not None else None
        return StepFinished(
            self.step_id,
            self.role,
            self.model,
            self.iteration,
            self.seconds,
            self.usage,
            self.output,
            files,
            self.passed,
        )

    @classmethod
    def from_dict(cls, data: Any) -> StepResult:
        """Rebuild a result from `to_dict` output. Raises KeyError/TypeError/ValueError on a
        wrong shape."""
        if not isinstance(data, dict):
            raise TypeError("a result must be an object")
        art = data["artifact"]
        strings = [data[k] for k in ("step_id", "role", "output")]
        if not all(isinstance(v, str) for v in strings) or not isinstance(data["model"], str | None):
            raise TypeError("a result's step_id, role, model and output must be strings")
        iteration, seconds = data["iteration"], data["seconds"]
        if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 1:
            raise ValueError(f"a result's iteration must be 1 or more, not {iteration!r}")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError(f"a result's seconds must be 0 or more, not {seconds!r}")
        return cls(
            step_id=data["step_id"],
            role=data["role"],
            model=data["model"],
            output=data["output"],
            iteration=iteration,
            seconds=float(seconds),
            usage=usage_from_dict(data["usage"]),
            artifact=None if art is None else _artifact(art),
            passed=_passed(data.get("passed")),
        )


def _passed(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise TypeError("a result's passed must be true, false or null")
    return value


def _artifact(data: Any) -> Artifact:
    if not isinstance(data, dict) or not isinstance(data.get("changed_files"), list):
        raise TypeError("an artifact must be an object with a list of changed_files")
    files = tuple(data["changed_files"])
    fields = (data["step_id"], data["stat"], data["patch"], data["note"])
    if not all(isinstance(f, str) for f in (*files, *fields)) or not isinstance(data["truncated"], bool):
        raise TypeError("an artifact's fields have the wrong types")
    return Artifact(data["step_id"], files, data["stat"], data["patch"], data["truncated"], data["note"])


def usage_from_dict(data: Any) -> Usage:
    """A `Usage` from its dict form. Raises TypeError/ValueError for a wrong shape."""
    if not isinstance(data, dict):
        raise TypeError("usage must be an object")
    tokens_in, tokens_out = data["prompt_tokens"], data["completion_tokens"]
    cost, at_least, estimated = data["cost_usd"], data.get("at_least", False), data.get("estimated", False)
    if not (isinstance(tokens_in, int) and isinstance(tokens_out, int) and tokens_in >= 0 and tokens_out >= 0):
        raise ValueError("usage tokens must be whole numbers, 0 or more")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int | float) or cost < 0):
        raise ValueError("usage cost must be a number, 0 or more, or null")
    if not isinstance(at_least, bool) or not isinstance(estimated, bool):
        raise ValueError("usage at_least and estimated must be true or false")
    # A checkpoint written before cached tokens were counted has neither field: none were.
    cached, written = data.get("cached_tokens", 0), data.get("cache_write_tokens", 0)
    if not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= tokens_in for n in (cached, written)):
        raise ValueError("usage cached tokens must be whole numbers, 0 to the prompt tokens")
    cost_usd = None if cost is None else float(cost)
    return Usage(tokens_in, tokens_out, cost_usd, at_least, estimated, cached, written)
