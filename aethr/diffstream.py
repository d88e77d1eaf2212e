"""`git diff --raw -z -p` read in one pass: the changed paths first, then the patch's lines.

git writes the raw records (`:modes shas STATUS\\0path\\0`, a rename or copy with a second
path) before any patch, and ends them with one more NUL. Reading them first names every
changed file, so a diff cut for its budget can still say which files it left out without
asking git a second time. Paths are verbatim under `-z` (no quoting, newlines kept).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO

LINE = 65536  # at most this many bytes of a patch line at a time: a huge line is never held whole


def read_names(stdout: IO[bytes]) -> tuple[list[str], bytes]:
    """The paths of the raw records (both sides of a rename), and the bytes already read past
    them (the patch's start). Stops at the records' end, or at the end of the stream."""
    names: list[str] = []
    data, pos = b"", 0
    while True:
        parsed = _record(data, pos)
        if parsed is None:  # the record is not all here yet
            more = stdout.read(LINE)
            if not more:
                return names, data[pos:]
            data, pos = data[pos:] + more, 0
            continue
        paths, pos = parsed
        if not paths:  # the NUL that ends the records
            return names, data[pos:]
        names += paths


def _record(data: bytes, pos: int) -> tuple[list[str], int] | None:
    """One record at `pos`: its paths and where the next one starts; ([], after) for the end
    marker, or None when `data` does not hold all of it yet."""
    if pos >= len(data):
        return None
    if data[pos] != ord(":"):
        return [], pos + 1 if data[pos] == 0 else pos
    end = data.find(b"\0", pos)
    if end < 0:
        return None
    status = data[pos:end].rsplit(b" ", 1)[-1][:1]
    paths = []
    for _ in range(2 if status in (b"R", b"C") else 1):
        start, end = end + 1, data.find(b"\0", end + 1)
        if end < 0:
            return None
        paths.append(data[start:end].decode("utf-8", "surrogateescape"))
    return paths, end + 1


def lines(head: bytes, stdout: IO[bytes]) -> Iterator[bytes]:
    """The patch's lines, as bytes: `head` (already read) then the rest of `stdout`, each line
    at most `LINE` bytes at a time."""
    start = io.BytesIO(head)
    for line in iter(lambda: start.readline(LINE), b""):
        if not line.endswith(b"\n") and len(line) < LINE:  # cut where the read stopped: finish it
            line += stdout.readline(LINE - len(line))
        yield line
    yield from iter(lambda: stdout.readline(LINE), b"")
