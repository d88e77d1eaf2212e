"""The lines of a pull request's unified diff that GitHub takes review comments on.

GitHub accepts a comment on a line the diff shows: an added or context line on the new
side (`RIGHT`), or a removed line on the old side (`LEFT`); any other line is a 422. The
map is read from the diff itself (`git diff -M base...head`, as GitHub computes it), file
by file: renames (old and new path), new and deleted files (`/dev/null` on one side),
several hunks. Hunk bodies are read by their counts, so a removed line that reads
`--- a/x` is a line, not a header. Binary and mode-only changes have no lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


@dataclass
class FileDiff:
    """One file's change; `right`/`left` map a commentable line to its hunk's number."""

    old_path: str | None = None  # None: a new file
    new_path: str | None = None  # None: a deleted file
    right: dict[int, int] = field(default_factory=dict)  # added and context lines, new numbering
    left: dict[int, int] = field(default_factory=dict)  # removed lines, old numbering


@dataclass(frozen=True)
class DiffMap:
    files: tuple[FileDiff, ...]

    def by_new(self, path: str) -> FileDiff | None:
        return next((f for f in self.files if f.new_path == path), None)

    def by_old(self, path: str) -> FileDiff | None:
        return next((f for f in self.files if f.old_path == path), None)


def unquote(name: str) -> str:
    """A path as git prints it: C-quoted (`"a/t\\303\\251st"`) when it holds odd bytes."""
    if not (len(name) >= 2 and name[0] == name[-1] == '"'):
        return name
    out, i, body = bytearray(), 0, name[1:-1]
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "01234567" and re.fullmatch("[0-7]{3}", body[i + 1 : i + 4]):
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, ord(nxt)))
            i += 2
            continue
        out += char.encode()
        i += 1
    return out.decode("utf-8", errors="replace")


def _side_path(rest: str, prefix: str) -> str | None:
    """`a/x` (or `/dev/null`) from a `---`/`+++` line's rest; git ends a name with a space in a tab."""
    name = unquote(rest[:-1] if rest.endswith("\t") else rest)
    if name == "/dev/null":
        return None
    return name[len(prefix) :] if name.startswith(prefix) else name


def _header_paths(line: str) -> tuple[str, str]:
    """Both paths of `diff --git a/x b/y`, for changes with no `---` line (binary, mode)."""
    rest = line[len("diff --git ") :]
    if rest.startswith('"'):
        end = rest.index('"', 1)
        while rest[end - 1] == "\\":
            end = rest.index('"', end + 1)
        old, new = rest[: end + 1], rest[end + 2 :]
    else:
        half = len(rest) // 2  # unquoted names of an unrenamed file: `a/NAME b/NAME`
        old, new = rest[:half], rest[half + 1 :]
    return _side_path(old, "a/") or "", _side_path(new, "b/") or ""


def parse(text: str) -> DiffMap:
    """The map of a unified diff as `git diff` writes it (a/ and b/ prefixes)."""
    files: list[FileDiff] = []
    lines = text.split("\n")
    i, hunk = 0, 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("diff --git "):
            old, new = _header_paths(line)
            files.append(FileDiff(old, new))
        elif not files:
            continue
        elif line.startswith("new file mode"):
            files[-1].old_path = None
        elif line.startswith("deleted file mode"):
            files[-1].new_path = None
        elif line.startswith("rename from "):
            files[-1].old_path = unquote(line[len("rename from ") :])
        elif line.startswith("rename to "):
            files[-1].new_path = unquote(line[len("rename to ") :])
        elif line.startswith("--- "):
            files[-1].old_path = _side_path(line[4:], "a/")
        elif line.startswith("+++ "):
            files[-1].new_path = _side_path(line[4:], "b/")
        elif (match := _HUNK.match(line)) is not None:
            hunk += 1
            i = _read_hunk(files[-1], lines, i, match, hunk)
    return DiffMap(tuple(files))


def _read_hunk(target: FileDiff, lines: list[str], i: int, match: re.Match[str], hunk: int) -> int:
    """Record one hunk's lines from `lines[i]` on; returns the index after the hunk."""
    old, old_left = int(match.group(1)), int(match.group(2) or "1")
    new, new_left = int(match.group(3)), int(match.group(4) or "1")
    while (old_left > 0 or new_left > 0) and i < len(lines):
        line = lines[i]
        i += 1
        kind = line[:1]
        if kind == "\\":  # "\ No newline at end of file"
            continue
        if kind == "-":
            target.left[old] = hunk
            old, old_left = old + 1, old_left - 1
        elif kind == "+":
            target.right[new] = hunk
            new, new_left = new + 1, new_left - 1
        else:  # a context line (an empty one may have lost its space)
            target.right[new] = hunk
            old, new, old_left, new_left = old + 1, new + 1, old_left - 1, new_left - 1
    return i
