"""The one safe read of a project file for a prompt: bounded, non-blocking, screened.

- Only regular files are read. A directory, a FIFO, a socket, a device or anything else
  is skipped with a note naming what it is, found without blocking: a FIFO is opened
  non-blocking, and a socket (which cannot be opened at all) is recognised by its mode.
- Binary (a NUL byte in the first 8 KiB) and non-UTF-8 files are skipped.
- At most `cap` bytes are kept, but the secret policy screens `sensitive.overread()`
  bytes more: a key that straddles the cap is seen whole, so no part of it is sent.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from aethr import sensitive

SNIFF = 8192
_KINDS = (
    (stat.S_ISDIR, "it is a directory"),
    (stat.S_ISFIFO, "it is a FIFO (named pipe)"),
    (stat.S_ISSOCK, "it is a socket"),
    (stat.S_ISCHR, "it is a character device"),
    (stat.S_ISBLK, "it is a block device"),
)


def not_regular(mode: int) -> str | None:
    """Why a file of this mode is not read ("skipped: it is a socket"), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    what = next((why for test, why in _KINDS if test(mode)), "it is not a regular file")
    return f"skipped: {what}, not a regular file"


def read_text(path: Path, cap: int) -> tuple[str | None, str]:
    """Up to `cap` bytes of a text file (`cap` 0: just whether it may be read), with "" or
    "truncated"; or (None, why it was skipped, refused or missing)."""
    try:
        # Non-blocking, and no controlling terminal: a FIFO or a device never blocks the run.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        return None, "missing: no such file"
    except OSError as exc:
        return None, _unopened(path, exc)
    try:
        why = not_regular(os.fstat(fd).st_mode)
        if why:
            return None, why
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(cap + sensitive.overread() if cap > 0 else SNIFF)
    finally:
        os.close(fd)
    return _decoded(data, cap)


def _unopened(path: Path, exc: OSError) -> str:
    """Why `path` could not be opened: a socket (ENXIO) or other special file by its mode."""
    if exc.errno in (errno.ENXIO, errno.EISDIR, errno.ENODEV, errno.EOPNOTSUPP):
        try:
            why = not_regular(path.stat().st_mode)
        except OSError:
            why = None
        if why:
            return why
    return f"unreadable: {exc.strerror or exc}"


def _decoded(data: bytes, cap: int) -> tuple[str | None, str]:
    if b"\0" in data[:SNIFF]:
        return None, "skipped: binary file"
    why = sensitive.by_content(data)  # all that was read, past the cap too
    if why:
        return None, f"refused: {why}"
    truncated = cap > 0 and len(data) > cap
    data = data[:cap]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A cut inside a multi-byte character at the cap is not a reason to skip the file.
        if truncated and exc.start >= len(data) - 3:
            text = data[: exc.start].decode("utf-8", errors="strict")
        else:
            return None, "skipped: not UTF-8 text"
    return text, "truncated" if truncated else ""
