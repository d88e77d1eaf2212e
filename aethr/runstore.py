"""Where checkpoints live, and who holds them.

One folder per project: `$TMPDIR/aethr/<project-name>-<hash of its path>/`, mode
0700, a `<run-id>.json` per unfinished run. A run holds an exclusive lock on its
`<run-id>.lock` (flock) while it runs, released by the OS however the run ends,
SIGKILL included. So `last` means the newest checkpoint no running run holds, an
explicit path to a held one is refused, and `aethr checkpoints --prune` never
removes a running run's file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import IO, NamedTuple

from aethr.errors import CheckpointError, EnvironmentNotReady


def folder_for(root: Path) -> Path:
    """This project's checkpoint folder in the system temp directory."""
    resolved = str(root.resolve())
    key = f"{root.resolve().name}-{hashlib.sha256(resolved.encode()).hexdigest()[:12]}"
    return Path(tempfile.gettempdir()) / "aethr" / key


def new_path(root: Path) -> Path:
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
    return folder_for(root) / f"{run_id}.json"


def _lock_path(path: Path) -> Path:
    return path.with_suffix(".lock")


def hold(path: Path) -> IO[bytes]:
    """Take the run's lock on the checkpoint at `path`; keep the returned handle open for as
    long as the run lasts. Raises EnvironmentNotReady if another live run holds it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = open(_lock_path(path), "ab")  # noqa: SIM115 - held for the run's lifetime
    except OSError as exc:
        raise EnvironmentNotReady(f"cannot lock the checkpoint {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise EnvironmentNotReady(
            f"checkpoint {path} belongs to a run that is still going",
            hint="wait for it to end (or stop it), then resume",
        ) from None
    return handle


def release(path: Path, handle: IO[bytes], *, finished: bool) -> None:
    """Let go of the run's lock; a finished run's checkpoint and lock file are removed, and so
    is the lock of a run that stopped before its first checkpoint (refused: nothing to resume)."""
    if finished:
        path.unlink(missing_ok=True)
    if finished or not path.exists():
        _lock_path(path).unlink(missing_ok=True)
    handle.close()


def in_use(path: Path) -> bool:
    """True while a running run holds this checkpoint."""
    try:
        with open(_lock_path(path), "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return False


def _kept(root: Path) -> list[Path]:
    folder = folder_for(root)
    if not folder.is_dir():
        return []
    found = [(p.stat().st_mtime, p) for p in folder.glob("*.json") if p.is_file()]
    return [p for _, p in sorted(found, reverse=True)]


def newest(root: Path) -> Path:
    """The most recent checkpoint of this project that no running run holds. Raises
    CheckpointError if there is none."""
    for path in _kept(root):
        if not in_use(path):
            return path
    raise CheckpointError(f"no checkpoint of this project in {folder_for(root)} that no running run holds")


def sharing(root: Path, mine: Path) -> list[Path]:
    """The checkpoints of this project's other live runs that work in the checkout itself. An
    isolated run's worktree folder (`<run-id>.tree`, made as soon as it holds its lock) says it
    works elsewhere."""
    folder = folder_for(root)
    locks = sorted(folder.glob("*.lock")) if folder.is_dir() else []
    paths = [lock.with_suffix(".json") for lock in locks]
    return [p for p in paths if p != mine and not p.with_suffix(".tree").exists() and in_use(p)]


class Kept(NamedTuple):
    path: Path
    age_seconds: float
    running: bool


def kept(root: Path) -> list[Kept]:
    """This project's checkpoints, newest first."""
    now = time.time()
    return [Kept(p, max(now - p.stat().st_mtime, 0.0), in_use(p)) for p in _kept(root)]


def prune(root: Path) -> list[Path]:
    """Remove every checkpoint of this project that no running run holds; the removed ones."""
    removed = []
    for item in kept(root):
        if not item.running:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(item.path)
            _lock_path(item.path).unlink(missing_ok=True)
            removed.append(item.path)
    return removed
