"""Checkpoints: a run's progress after each completed step, for `--resume-checkpoint`.

One JSON file per run at `$TMPDIR/aethr/<project-key>/<run-id>.json`, written
atomically (temp file, fsync, rename) with mode 0600, deleted when the run
succeeds. It holds the task, the workflow's name and digest, every completed
step's result and a fingerprint of the repository after the last step. It never
holds environment values or keys: results are model output only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aethr import __version__
from aethr.errors import CheckpointError, EnvironmentNotReady
from aethr.events import Usage
from aethr.fingerprint import Fingerprint
from aethr.fsutil import atomic_write
from aethr.results import Artifact, StepResult, usage_from_dict

FORMAT = 2


@dataclass
class RunState:
    """Where a run stands: what finished, what runs next, how far each loop has got."""

    task: str
    workflow: str
    workflow_digest: str
    results: list[StepResult] = field(default_factory=list)
    next_index: int = 0
    passes: dict[str, int] = field(default_factory=dict)
    latest: Artifact | None = None
    fingerprint: Fingerprint | None = None
    spent: Usage = field(default_factory=Usage)  # every step's usage, failed ones included

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "aethr_version": __version__,
            "task": self.task,
            "workflow": self.workflow,
            "workflow_digest": self.workflow_digest,
            "next_index": self.next_index,
            "passes": self.passes,
            "fingerprint": self.fingerprint.to_dict() if self.fingerprint else None,
            "spent": dataclasses.asdict(self.spent),
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
            results = [StepResult.from_dict(r) for r in data["results"]]
            latest_id = data["latest_step"]
            latest = None
            if latest_id is not None:
                latest = next(r.artifact for r in reversed(results) if r.step_id == latest_id)
            passes = {str(k): int(v) for k, v in dict(data["passes"]).items()}
            state = cls(
                task=_str(data["task"]),
                workflow=_str(data["workflow"]),
                workflow_digest=_str(data["workflow_digest"]),
                results=results,
                next_index=int(data["next_index"]),
                passes=passes,
                latest=latest,
                fingerprint=Fingerprint.from_dict(data["fingerprint"]),
                spent=usage_from_dict(data["spent"]),
            )
        except (KeyError, TypeError, ValueError, StopIteration, AttributeError) as exc:
            raise CheckpointError(f"the checkpoint has the wrong shape ({type(exc).__name__}: {exc})") from None
        return state


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def folder_for(root: Path) -> Path:
    """This project's checkpoint folder in the system temp directory."""
    resolved = str(root.resolve())
    key = f"{root.resolve().name}-{hashlib.sha256(resolved.encode()).hexdigest()[:12]}"
    return Path(tempfile.gettempdir()) / "aethr" / key


def new_path(root: Path) -> Path:
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
    return folder_for(root) / f"{run_id}.json"


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


def newest(root: Path) -> Path:
    """The most recent checkpoint of this project. Raises CheckpointError if there is none."""
    folder = folder_for(root)
    found = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    if not found:
        raise CheckpointError(f"no checkpoint of this project in {folder}")
    return found[-1]
