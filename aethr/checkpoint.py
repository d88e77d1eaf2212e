"""Checkpoints: a run's progress after each completed step, for `--resume-checkpoint`.

One JSON file per run at `$TMPDIR/aethr/<project-key>/<run-id>.json`, written
atomically (temp file, fsync, rename) with mode 0600, deleted when the run
succeeds. It holds the task, the workflow's name and digest, every completed
step's result and a fingerprint of the repository after the last step. It never
holds environment values or keys: results are model output only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aethr import __version__
from aethr.errors import CheckpointError
from aethr.results import Artifact, StepResult

FORMAT = 1


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
    fingerprint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "aethr_version": __version__,
            "task": self.task,
            "workflow": self.workflow,
            "workflow_digest": self.workflow_digest,
            "next_index": self.next_index,
            "passes": self.passes,
            "fingerprint": self.fingerprint,
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
                fingerprint=_fingerprint(data["fingerprint"]),
            )
        except (KeyError, TypeError, ValueError, StopIteration, AttributeError) as exc:
            raise CheckpointError(f"the checkpoint has the wrong shape ({type(exc).__name__}: {exc})") from None
        return state


_FINGERPRINT = re.compile(r"head:(none|[0-9a-f]{40,64}) tree:[0-9a-f]{40,64}")


def _fingerprint(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _FINGERPRINT.fullmatch(value):
        raise ValueError(f"fingerprint {value!r} is not of the form 'head:<sha> tree:<sha>'")
    return value


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
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = json.dumps(state.to_dict(), indent=1).encode()
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
