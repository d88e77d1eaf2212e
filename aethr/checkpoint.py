"""Checkpoints: a run's progress after each completed step, for `--resume-checkpoint`.

One JSON file per run (where: `runstore`), written atomically with mode 0600,
deleted when the run succeeds. It holds the task, the mode it ran in, the
workflow's name and digest, every completed step's result, the run's spend and a
fingerprint of the repository after the last step, and the no-progress memory
of failing command loops. It never holds environment
values or keys: results are model output only. Every field is checked on load; a
wrong one is refused (exit 3), never guessed at.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from aethr import __version__
from aethr.errors import CheckpointError, EnvironmentNotReady
from aethr.fingerprint import Fingerprint
from aethr.fsutil import atomic_write
from aethr.results import Artifact, StepResult, usage_from_dict
from aethr.run.state import RunState

__all__ = ["FORMAT", "RunState", "from_dict", "load", "save", "to_dict"]

FORMAT = 3
MODES = ("mock", "live")


def to_dict(state: RunState) -> dict[str, Any]:
    """The checkpoint's JSON form of `state`."""
    return {
        "format": FORMAT,
        "aethr_version": __version__,
        "task": state.task,
        "mode": state.mode,
        "model_override": state.model_override,
        "workflow": state.workflow,
        "workflow_digest": state.workflow_digest,
        "next_index": state.next_index,
        "passes": dict(state.passes),
        "progress": dict(state.progress),
        "fingerprint": state.fingerprint.to_dict() if state.fingerprint else None,
        "spent": dataclasses.asdict(state.spent),
        "params": dict(state.params),
        "retry_from": state.retry_from,
        "worktree": dict(state.worktree) if state.worktree is not None else None,
        "latest_step": state.latest.step_id if state.latest else None,
        "results": [r.to_dict() for r in state.results],
    }


def from_dict(data: Any) -> RunState:
    """Raises CheckpointError (never KeyError/TypeError) for any wrong shape. A checkpoint
    written before `progress` was kept loads with none (a loop's no-progress memory starts
    afresh); one of another format is refused, naming both formats."""
    try:
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        results = tuple(StepResult.from_dict(r) for r in _list(data["results"]))
        mode = _str(data["mode"])
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        override = data["model_override"]
        return RunState(
            task=_str(data["task"]),
            workflow=_str(data["workflow"]),
            workflow_digest=_str(data["workflow_digest"]),
            mode=mode,
            model_override=None if override is None else _str(override),
            results=results,
            next_index=_count(data["next_index"], "next_index", least=0),
            passes={_str(k): _count(v, "a loop's passes") for k, v in _dict(data["passes"]).items()},
            progress={_str(k): _str(v) for k, v in _dict(data.get("progress", {})).items()},
            latest=_latest(data["latest_step"], results),
            fingerprint=Fingerprint.from_dict(data["fingerprint"]),
            spent=usage_from_dict(data["spent"]),
            params={_str(k): _str(v) for k, v in _dict(data.get("params", {})).items()},
            retry_from=_tree_id(data.get("retry_from")),
            worktree=_worktree(data.get("worktree")),
        )
    except (KeyError, TypeError, ValueError, StopIteration, AttributeError) as exc:
        raise CheckpointError(f"the checkpoint has the wrong shape ({type(exc).__name__}: {exc})") from None


def _latest(step_id: Any, results: tuple[StepResult, ...]) -> Artifact | None:
    """The artifact `latest_diff` reads: the last change of step `step_id`."""
    if step_id is None:
        return None
    latest = next(r.artifact for r in reversed(results) if r.step_id == step_id)
    if latest is None:
        raise ValueError(f"latest_step {step_id!r} changed no tree")
    return latest


def _worktree(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    found = {_str(k): _str(v) for k, v in _dict(value).items()}
    if set(found) != {"path", "head", "staged", "tree"}:
        raise ValueError("worktree must name its path and its head, staged and tree ids")
    return found


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


def _tree_id(value: Any) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", _str(value)):
        raise ValueError(f"retry_from must be a git tree id, not {value!r}")
    return _str(value)


def _count(value: Any, what: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{what} must be a whole number of at least {least}, not {value!r}")
    return value


def save(path: Path, state: RunState, durable: bool = True) -> None:
    """Write atomically with mode 0600: a reader sees the old file or the new one, never half.
    `durable`: on disk (fsync) before returning, so a power cut keeps what a live run paid for."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise EnvironmentNotReady(f"cannot create the checkpoint folder {path.parent}: {exc.strerror}") from None
    atomic_write(path, json.dumps(to_dict(state), indent=1).encode(), mode=0o600, durable=durable)


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
        return from_dict(data)
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc.message}") from None
