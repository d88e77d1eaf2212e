"""The one atomic write: checkpoints, the `.env` that `auth` keeps, `.gitignore`, presets.

A reader sees the old file or the new one, never half of one; the data is fsynced
before the rename; the file gets its mode before it holds any data, so a secret
is never readable by others even for a moment; and a failed write leaves no
temporary file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from aethr.errors import EnvironmentNotReady


def atomic_write(path: Path, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Replace `path` with `data`, with `mode`. Raises EnvironmentNotReady naming the path
    and the reason when it cannot (a read-only folder, a folder in the way, a full disk).
    `durable` waits until the data is on disk (fsync): what a power cut must not lose."""
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "it is a folder", str(path))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _not_written(path, exc) from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _not_written(path, exc) from None
        raise


def _not_written(path: Path, exc: OSError) -> EnvironmentNotReady:
    return EnvironmentNotReady(
        f"cannot write {path}: {exc.strerror or exc}",
        hint="check that the folder exists and is writable (and that nothing else has that name)",
    )
