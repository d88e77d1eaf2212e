"""`git_diff` as a step sees it: git's own view, screened, bounded file by file.

- Tracked changes come from `git diff` (paths relative to the project root, as
  the untracked listing gives them); untracked files are rendered as
  `git add -N; git diff` would render them: symlinks as their target path with
  mode 120000, the exec bit, line endings kept, no hunk for an empty file.
- Every file passes the one secret policy (`sensitive`) by name and by content;
  a cut file is screened with the longest secret's length read past its cut, so a
  key that straddles the cut is refused whole; a patch that is not UTF-8 is not
  guessed at. Each left-out file becomes a
  one-line note naming it, never a silent gap.
- Each file obeys the per-file cap and the step's budget: a file that does not
  fit is cut and later files still get their turn; untracked files (new work)
  keep a share of the budget that tracked changes (a flood of deletions) cannot
  take; files that found no room are named, and counted, in one marker.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from aethr import git, sensitive

_HEADER = re.compile(r"^diff --git (?:\"?a/)(.*?)\"? \"?b/(.*?)\"?$", re.M)
NEW_WORK_SHARE = 3  # untracked files keep 1/3 of the budget when there are any
SHOWN_NAMES = 8
_PARTIAL_TAIL = re.compile("[\udc80-\udcff]{1,3}$")


class DiffView(NamedTuple):
    text: str
    truncated: bool
    notes: tuple[str, ...]  # left-out and cut files, as listed in the text


def _note(notes: list[str], line: str) -> str:
    notes.append(line)
    return f"[{line}]\n"


def _path_of(section: str) -> str:
    match = _HEADER.match(section)
    return match.group(2) if match else section.split("\n", 1)[0]


def _screened(section: str, notes: list[str], beyond: bytes = b"") -> str:
    """One file's patch, or a note in its place when it may not be shown. `beyond` is what
    followed the cut of a cut patch: screened with it, so a key straddling the cut is seen."""
    path = _path_of(section)
    why = sensitive.by_name(path) or sensitive.by_content(section.encode("utf-8", "surrogateescape") + beyond)
    if why is None and re.search("[\udc80-\udcff]", section):
        why = "its change is not UTF-8 text, and is not guessed at"
    if why is None:
        return section
    return section.split("\n", 1)[0] + "\n" + _note(notes, f"left out {path}: {why}")


READ_LIMIT = 64 * 1024 * 1024  # bytes of `git diff` read at most, however much is discarded


class _Section:
    def __init__(self, header: bytes) -> None:
        self.data = bytearray(header)
        self.beyond = bytearray()  # bytes past the cut, read for the screen only (never sent)
        self.cut = False
        self.refused = False


def _read_sections(lines: Iterator[bytes], room: int, file_room: int) -> tuple[list[_Section], bool]:
    """Split git's diff into files, keeping at most `file_room` bytes of each, until `room`
    is kept; and whether it stopped before the end."""
    sections: list[_Section] = []
    kept = read = 0
    for raw in lines:
        read += len(raw)
        if raw.startswith(b"diff --git "):
            if kept >= room:
                return sections, True
            sections.append(_Section(b""))
            # A file the policy refuses by name keeps only its header: its bytes cost no room.
            header = raw.decode("utf-8", "surrogateescape")
            sections[-1].refused = sensitive.by_name(_path_of(header.rstrip("\n"))) is not None
        if not sections:
            continue
        current = sections[-1]
        if current.refused and current.data:
            continue
        space = min(file_room - len(current.data), room - kept)
        if space <= 0 or len(raw) > space:
            current.cut = True
        take = raw[: max(space, 0)]
        current.data += take
        kept += len(take)
        if current.cut and len(current.beyond) < sensitive.overread():
            current.beyond += raw[len(take) : len(take) + sensitive.overread() - len(current.beyond)]
        if read > READ_LIMIT:
            return sections, True
    return sections, False


def tracked(root: Path, revision_range: str | None, room: int, file_room: int, notes: list[str]) -> tuple[str, bool]:
    """Tracked changes within `room` characters, each file within `file_room`; and whether
    any file was cut or left out for room. Files the policy refuses by name are dropped as
    they stream past; one git call names the files and reads the patch."""
    parts: list[str] = []
    with git.diff_lines(root, revision_range) as diff:
        sections, stopped = _read_sections(diff.lines, room, file_room)
    seen: set[str] = set()
    for item in sections:
        text = bytes(item.data).decode("utf-8", "surrogateescape")
        if item.cut:  # a cut may fall inside a character: drop its first bytes
            text = _PARTIAL_TAIL.sub("", text)
        path = _path_of(text)
        header = _HEADER.match(text)
        seen.update(header.groups() if header else (path,))  # a rename shown is shown by both names
        text = _screened(text, notes, bytes(item.beyond))
        if item.cut and not text.endswith("]\n"):
            text = text.rstrip("\n") + "\n" + _note(notes, f"cut {path}: its patch is longer than its share")
        parts.append(text)
    if stopped:
        names = diff.names
        missing = [rel for rel in names if rel not in seen and not sensitive.by_name(rel)]
        refused = [rel for rel in names if rel not in seen and sensitive.by_name(rel)]
        parts += [_note(notes, f"left out {rel}: {sensitive.by_name(rel)}") for rel in refused]
        if missing:
            parts.append(_no_room(missing, "changed", notes))
    return "".join(parts), stopped or any(item.cut for item in sections)


def untracked(
    root: Path,
    names: tuple[str, ...],
    room: int,
    file_room: int,
    notes: list[str],
    read: Callable[[Path, int], tuple[str | None, str]],
) -> tuple[str, bool]:
    """Untracked files as new-file patches within `room`, each within `file_room`."""
    parts: list[str] = []
    cut = False
    for position, rel in enumerate(names):
        if room <= 0:
            parts.append(_no_room(list(names[position:]), "untracked", notes))
            return "".join(parts), True
        patch = _untracked_patch(root, rel, min(file_room, room), notes, read)
        cut = cut or patch.endswith("is longer than its share]\n")
        parts.append(patch)
        room -= len(patch)
    return "".join(parts), cut


def screen_patch(patch: str) -> str:
    """An agent's diff with every file the policy refuses replaced by a note naming it."""
    starts = [m.start() for m in _HEADER.finditer(patch)]
    if not starts:
        return patch
    notes: list[str] = []
    ends = [*starts[1:], len(patch)]
    return patch[: starts[0]] + "".join(_screened(patch[b:e], notes) for b, e in zip(starts, ends, strict=True))


def _no_room(paths: list[str], what: str, notes: list[str]) -> str:
    shown = ", ".join(paths[:SHOWN_NAMES]) + (
        f" and {len(paths) - SHOWN_NAMES} more" if len(paths) > SHOWN_NAMES else ""
    )
    return _note(notes, f"left out for the budget: {len(paths)} {what} file(s): {shown}")


def _untracked_patch(
    root: Path, rel: str, cap: int, notes: list[str], read: Callable[[Path, int], tuple[str | None, str]]
) -> str:
    path = root / rel
    try:
        info = path.lstat()
    except OSError:
        return f"diff --git a/{rel} b/{rel}\n" + _note(notes, f"left out {rel}: it disappeared while it was read")
    link = stat.S_ISLNK(info.st_mode)
    mode = "120000" if link else ("100755" if info.st_mode & 0o100 else "100644")
    header = f"diff --git a/{rel} b/{rel}\nnew file mode {mode}\n"
    refusal = sensitive.by_name(rel)
    if refusal:
        return header + _note(notes, f"left out {rel}: {refusal}")
    if link:
        body = f"+{os.readlink(path)}\n\\ No newline at end of file\n"
        return f"{header}--- /dev/null\n+++ b/{rel}\n@@ -0,0 +1 @@\n{body}"
    content, why = read(path, max(cap - len(header) - 60, 0))
    if content is None:
        return header + _note(notes, f"left out {rel}: {why}")
    if not content:
        return header
    lines = content.split("\n")
    last = lines.pop()  # "" when the file ends with a newline
    body = "".join(f"+{line}\n" for line in lines)
    if last and why != "truncated":
        body += f"+{last}\n\\ No newline at end of file\n"
        lines.append(last)
    elif last:
        body += f"+{last}\n"
        lines.append(last)
    count = "" if len(lines) == 1 else f",{len(lines)}"
    patch = f"{header}--- /dev/null\n+++ b/{rel}\n@@ -0,0 +1{count} @@\n{body}"
    if why == "truncated":
        patch += _note(notes, f"cut {rel}: the file is longer than its share")
    return patch
