"""What a run produces and carries forward: step results and implementation artifacts.

Plain frozen dataclasses with `to_dict`/`from_dict`, so checkpoints (and a
future record/replay) store exactly what later steps see.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from aethr.events import Usage


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepResult:
        """Rebuild a result from `to_dict` output. Raises KeyError/TypeError on a wrong shape."""
        art = data.get("artifact")
        return cls(
            step_id=str(data["step_id"]),
            role=str(data["role"]),
            model=data["model"],
            output=str(data["output"]),
            iteration=int(data["iteration"]),
            seconds=float(data["seconds"]),
            usage=Usage(**data["usage"]),
            artifact=None if art is None else Artifact(**{**art, "changed_files": tuple(art["changed_files"])}),
        )
