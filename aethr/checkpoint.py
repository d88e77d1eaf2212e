"""Checkpoints: a run's progress after each completed step, for `--resume-checkpoint`.

One JSON file per run (where: `runstore`), written atomically with mode 0600,
deleted when the run succeeds. It holds the task, the mode it ran in, the
workflow's name and digest, every completed step's result, the run's spend and a
fingerprint of the repository after the last step. It never holds environment
values or keys: results are model output only. Every field is checked on load; a
wrong one is refused (exit 3), never guessed at.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aethr import __version__
from aethr.errors import CheckpointError, EnvironmentNotReady
from aethr.events import Usage
from aethr.fingerprint import Fingerprint
from aethr.fsutil import atomic_write
from aethr.results import Artifact, StepResult, usage_from_dict

FORMAT = 3
MODES = ("mock", "live")


@dataclass
class RunState:
    """Where a run stands: what finished, what runs next, how far each loop has got."""

    task: str
    workflow: str
    workflow_digest: str
    mode: str = "mock"  # the mode it ran in; a resume continues in it
    model_override: str | None = None  # AETHR_MODEL, when it was set
    results: list[StepResult] = field(default_factory=list)
    next_index: int = 0
    passes: dict[str, int] = field(default_factory=dict)
    latest: Artifact | None = None
    fingerprint: Fingerprint | None = None
    spent: Usage = field(default_factory=Usage)  # every step's usage, failed ones included
    params: dict[str, str] = field(default_factory=dict)  # the resolved parameter values, replayed on resume

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "aethr_version": __version__,
            "task": self.task,
            "mode": self.mode,
            "model_override": self.model_override,
            "workflow": self.workflow,
            "workflow_digest": self.workflow_digest,
            "next_index": self.next_index,
            "passes": self.passes,
            "fingerprint": self.fingerprint.to_dict() if self.fingerprint else None,
            "spent": dataclasses.asdict(self.spent),
            "params": self.params,
            "latest_step": self.latest.step_id if self.latest else None,
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Any) -> RunState:
        """Raises CheckpointError (never KeyError/TypeError) for any wrong shape."""
        try:
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
            results = [StepResult.from_dict(r) for r in _list(data["results"])]
            latest_id = data["latest_step"]
            latest = None
            if latest_id is not None:
                latest = next(r.artifact for r in reversed(results) if r.step_id == latest_id)
                if latest is None:
                    raise ValueError(f"latest_step {latest_id!r} changed no tree")
            passes = {_str(k): _count(v, "a loop's passes") for k, v in _dict(data["passes"]).items()}
            mode = _str(data["mode"])
            if mode not in MODES:
                raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
            override = data["model_override"]
            state = cls(
                task=_str(data["task"]),
                workflow=_str(data["workflow"]),
                workflow_digest=_str(data["workflow_digest"]),
                mode=mode,
                model_override=None if override is None else _str(override),
                results=results,
                next_index=_count(data["next_index"], "next_index", least=0),
                passes=passes,
                latest=latest,
                fingerprint=Fingerprint.from_dict(data["fingerprint"]),
                spent=usage_from_dict(data["spent"]),
                params={_str(k): _str(v) for k, v in _dict(data.get("params", {})).items()},
            )
        except (KeyError, TypeError, ValueError, StopIteration, AttributeError) as exc:
            raise CheckpointError(f"the checkpoint has the wrong shape ({type(exc).__name__}: {exc})") from None
        return state


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _count(value: Any, what: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{what} must be a whole number of at least {least}, not {value!r}")
    return value


def save(path: Path, state: RunState) -> None:
    """Write atomically with mode 0600: a reader sees the old file or the new one, never half."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise EnvironmentNotReady(f"cannot create the checkpoint folder {path.parent}: {exc.strerror}") from None
    atomic_write(path, json.dumps(state.to_dict(), indent=1).encode(), mode=0o600)


def load(path: Path) -> RunState:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path} is not valid JSON (truncated or garbled): {exc}") from None
    try:
        return RunState.from_dict(data)
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc.message}") from None
