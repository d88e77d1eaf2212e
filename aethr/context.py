"""Explicit context: turn a step's declared sources into labelled, bounded blocks.

Rules, each visible as a one-line note in the prompt when it applies:
- every path and every byte passes the one secret policy (`sensitive`): nothing
  outside the project root, no `.git/` internals, no `.env` files or private keys,
  judged by name, by what a symlink resolves to, and by content; in a diff, a
  left-out file becomes a one-line note naming it;
- only regular files are read (`fileread`): a directory, FIFO, socket or device is a
  note, never a block or a crash; binary and non-UTF-8 files are skipped;
- every file and diff is read only up to its cap (and the longest secret's length past
  it, for the screen): a 50 MB file costs a 32 KB read.

Budgets are in estimated tokens (about 4 characters each), a deliberately cheap
estimate: it only has to keep prompts bounded, not bill anyone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from aethr import fileread, git, gitview, listing, sensitive, structured
from aethr.events import ContextItem
from aethr.names import ContextSource
from aethr.results import Artifact

CHARS_PER_TOKEN = 4
FILE_TOKENS = 8_000
STEP_TOKENS = 24_000


def estimate_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


class Gathered(NamedTuple):
    blocks: tuple[str, ...]
    report: tuple[ContextItem, ...]


class _Budget:
    def __init__(self, tokens: int) -> None:
        self.left = tokens

    def take(self, want_tokens: int) -> int:
        """Bytes that may be read for one item: the smaller of the per-file cap and what is left."""
        return max(0, min(want_tokens, self.left)) * CHARS_PER_TOKEN

    def spend(self, text: str) -> None:
        self.left -= estimate_tokens(text)


def gather(
    sources: Iterable[ContextSource],
    root: Path,
    latest: Artifact | None,
    *,
    step_tokens: int = STEP_TOKENS,
    file_tokens: int = FILE_TOKENS,
    workflow_file: str | None = None,
    files: Callable[[], listing.Listing] | None = None,
    outputs: dict[str, str] | None = None,
) -> Gathered:
    """Read every source of a step within the budgets. Never raises for a missing or
    refused input: each becomes a placeholder note in its block. An untracked
    `workflow_file` is left out of `git_diff` (it is aethr's, not the change's). `files`
    gives the project's file list (a run shares one `listing.Lister` across its steps)."""
    root = root.resolve()
    budget = _Budget(step_tokens)
    files = files or listing.Lister(root)

    sources = tuple(sources)
    globbed = listing.globbed([s.arg for s in sources if s.kind == "glob"], files)  # one pass for all
    blocks: list[str] = []
    report: list[ContextItem] = []
    for source in sources:
        budget.spend(_block(source, ""))  # the markers around a source count too
        if budget.left <= 0:
            note = "left out: the step's context budget is used up"
            blocks.append(_block(source, f"[{note}]"))
            report.append(ContextItem(str(source), "skipped", 0, note))
            continue
        if source.kind == "git_diff":
            body, item = _git_diff(root, source, budget, files, workflow_file)
        elif source.kind == "step":
            body, item = _step_output(source, structured.step_value(source.arg, outputs or {}), budget)
        elif source.kind == "latest_diff":
            body, item = _latest_diff(latest, source, budget)
        elif source.kind == "file":
            body, item = _file(root, source, budget, file_tokens)
        else:
            body, item = _glob(root, source, budget, file_tokens, globbed)
        blocks.append(_block(source, body))
        report.append(item)
    return Gathered(tuple(blocks), tuple(report))


def _block(source: ContextSource, body: str) -> str:
    return f"<<< context: {source} >>>\n{body.rstrip()}\n<<< end: {source} >>>"


# --- git diffs ---------------------------------------------------------------------------------


def _git_diff(
    root: Path,
    source: ContextSource,
    budget: _Budget,
    files: Callable[[], listing.Listing],
    workflow_file: str | None = None,
) -> tuple[str, ContextItem]:
    name = str(source)
    if git.toplevel(root) is None:
        note = git.why_not_a_repository(root)
        return f"[no diff: {note}]", ContextItem(name, "skipped", 0, note)
    room = budget.take(budget.left)
    file_room = FILE_TOKENS * CHARS_PER_TOKEN
    notes: list[str] = []
    lead = ""
    try:
        new = () if source.arg else files().untracked
        if workflow_file in new:
            lead = f"[left out {workflow_file}: the untracked workflow file is aethr's, not the change's]\n"
            notes.append(lead.strip("[]\n"))
            new = tuple(rel for rel in new if rel != workflow_file)
        # New work keeps a share of the budget that tracked changes cannot take.
        tracked_room = room - room // gitview.NEW_WORK_SHARE if new else room
        text, cut = gitview.tracked(root, source.arg or None, tracked_room - len(lead), file_room, notes)
        added, more = gitview.untracked(root, new, room - len(lead) - len(text), file_room, notes, fileread.read_text)
    except git.GitError as exc:
        return f"[no diff: {exc}]", ContextItem(name, "skipped", 0, str(exc))
    text = lead + text + added
    if not text.strip():
        note = f"no changes in {source.arg}" if source.arg else "no uncommitted changes"
        note = "nothing staged" if source.arg == git.STAGED else note
        return f"[{note}]", ContextItem(name, "empty", 0, note)
    budget.spend(text)
    status = "truncated" if cut or more else "included"
    return text, ContextItem(name, status, estimate_tokens(text), "; ".join(notes))


def _step_output(source: ContextSource, output: str | None, budget: _Budget) -> tuple[str, ContextItem]:
    """The latest output of an earlier step, through the same content rule and budget."""
    name = str(source)
    if output is None:
        note = f"step '{source.arg}' has not run yet"
        return f"[{note}]", ContextItem(name, "empty", 0, note)
    why = sensitive.by_content(output.encode("utf-8", "surrogateescape"))
    if why:
        note = f"refused the output of step '{source.arg}': {why}"
        return f"[{note}]", ContextItem(name, "refused", 0, note)
    cap = budget.take(budget.left)
    text = output if len(output) <= cap else output[:cap] + "\n[truncated: the output is longer than the budget left]"
    budget.spend(text)
    return text, ContextItem(name, "truncated" if len(output) > cap else "included", estimate_tokens(text))


def _latest_diff(latest: Artifact | None, source: ContextSource, budget: _Budget) -> tuple[str, ContextItem]:
    if latest is None:
        note = "no implementation step has run yet"
        return f"[{note}]", ContextItem(str(source), "empty", 0, note)
    text = f"{latest.describe()}.\n"
    if latest.changed_files:
        text += f"Changed files: {', '.join(latest.changed_files)}\n{latest.stat}\n\n"
        cap = budget.take(budget.left)
        patch = latest.patch[:cap]
        text += patch
        if len(latest.patch) > cap or latest.truncated:
            text += "\n[truncated: the patch is longer than this step's budget]"
    budget.spend(text)
    status = "truncated" if "[truncated" in text else "included"
    return text, ContextItem(str(source), status, estimate_tokens(text))


# --- files -------------------------------------------------------------------------------------


def _refusal(root: Path, rel: str) -> str | None:
    """Why `rel` must not be read, or None. `root` is already resolved."""
    why = sensitive.by_target(root, rel)
    return f"refused {rel}: {why}" if why else None


def _cut_note(rel: str, cap: int, file_tokens: int) -> str:
    """Why a file was cut, naming the limit that applied: the per-file cap or the budget left."""
    if cap >= file_tokens * CHARS_PER_TOKEN:
        return f"\n[truncated: {rel} is longer than the per-file cap of {cap // CHARS_PER_TOKEN:,} tokens]"
    return f"\n[truncated: {rel} is longer than the {cap // CHARS_PER_TOKEN:,} tokens left of this step's budget]"


def _file(root: Path, source: ContextSource, budget: _Budget, file_tokens: int) -> tuple[str, ContextItem]:
    name = str(source)
    refusal = _refusal(root, source.arg)
    if refusal:
        budget.spend(refusal)
        return f"[{refusal}]", ContextItem(name, "refused", 0, refusal)
    cap = budget.take(file_tokens)
    text, note = fileread.read_text(root / source.arg, cap)
    if text is None:
        budget.spend(note)
        return f"[{source.arg}: {note}]", ContextItem(name, "skipped", 0, note)
    if note == "truncated":
        text += _cut_note(source.arg, cap, file_tokens)
    budget.spend(text)
    return text, ContextItem(name, "truncated" if note else "included", estimate_tokens(text), note)


class _GlobNotes:
    """A glob's notes, each charged to the budget; deleted files grouped into one line, and
    once the budget is spent, the rest counted in one line instead of listed."""

    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self.lines: list[str] = []
        self.deleted: list[str] = []
        self.uncounted = 0

    def add(self, line: str) -> None:
        if self.budget.left <= 0:
            self.uncounted += 1
            return
        self.budget.spend(line)
        self.lines.append(line)

    def finish(self) -> list[str]:
        if self.deleted:
            shown = ", ".join(self.deleted[:8]) + (
                f" and {len(self.deleted) - 8} more" if len(self.deleted) > 8 else ""
            )
            line = f"{len(self.deleted)} matching file(s) are deleted in the working tree: {shown}"
            self.budget.spend(line)
            self.lines.append(line)
        if self.uncounted:
            self.lines.append(f"{self.uncounted} more note(s) left out: the step's context budget is used up")
        return self.lines


def _read_match(root: Path, rel: str, budget: _Budget, file_tokens: int, notes: _GlobNotes) -> tuple[str | None, str]:
    """One file a glob matched: its text for the prompt (None if left out), and what became
    of it: included, cut (included, truncated), refused (by path or content) or skipped."""
    refusal = _refusal(root, rel)
    if refusal:
        notes.add(refusal)
        return None, "refused"
    cap = budget.take(file_tokens)
    content, note = fileread.read_text(root / rel, cap)
    if content is None and note.startswith("missing"):
        notes.deleted.append(rel)  # grouped: a deleted folder is one line, not thousands
        return None, "skipped"
    if content is None:
        notes.add(f"{rel}: {note}")
        return None, "refused" if note.startswith("refused") else "skipped"  # refused by content: a key
    kind = "included"
    if note == "truncated":
        content += _cut_note(rel, cap, file_tokens)
        kind = "cut"
    body = f"--- {rel} ---\n{content}"
    budget.spend(body)
    return body, kind


def _glob(
    root: Path, source: ContextSource, budget: _Budget, file_tokens: int, matched: Callable[[str], list[str]]
) -> tuple[str, ContextItem]:
    name = str(source)
    pattern = source.arg
    if PurePosixPath(pattern).is_absolute() or ".." in PurePosixPath(pattern).parts:
        why = f"refused {pattern}: globs must stay inside the project root"
        return f"[{why}]", ContextItem(name, "refused", 0, why)
    candidates = matched(pattern)
    if not candidates:
        return "[no files match]", ContextItem(name, "empty", 0, "no files match")
    parts: list[str] = []
    notes = _GlobNotes(budget)
    counts = dict.fromkeys(("included", "cut", "refused", "skipped"), 0)
    stopped = False
    for position, rel in enumerate(candidates):
        if budget.left <= 0:
            notes.add(
                f"{len(candidates) - position} more matching file(s) left out: the step's context budget is used up"
            )
            stopped = True
            break
        body, kind = _read_match(root, rel, budget, file_tokens, notes)
        counts[kind] += 1
        if body is not None:
            parts.append(body)
    included, cut, refused = counts["included"] + counts["cut"], counts["cut"], counts["refused"]
    listed = notes.finish()
    text = "\n".join([*parts, *(f"[{line}]" for line in listed)])
    if included:
        status = "truncated" if cut or stopped else "included"
    else:
        status = "refused" if refused == len(candidates) else "skipped"
    summary = f"{included} of {len(candidates)} file(s) included"
    return text, ContextItem(name, status, estimate_tokens(text), "; ".join([summary, *listed]))
