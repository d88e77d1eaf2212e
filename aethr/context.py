"""Explicit context: turn a step's declared sources into labelled, bounded blocks.

Rules, each visible as a one-line note in the prompt when it applies:
- nothing outside the project root is read: `..`, absolute paths and symlinks
  whose target leaves the root are refused;
- `.git/` internals, `.env` / `.env.*` files and private keys are never included,
  whatever a glob matches;
- binary (a NUL byte in the first 8 KiB) and non-UTF-8 files are skipped;
- every file and diff is read only up to its cap: a 50 MB file costs a 32 KB read.

Budgets are in estimated tokens (about 4 characters each), a deliberately cheap
estimate: it only has to keep prompts bounded, not bill anyone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from aethr import git
from aethr.config import ContextSource
from aethr.events import ContextItem
from aethr.results import Artifact

CHARS_PER_TOKEN = 4
FILE_TOKENS = 8_000
STEP_TOKENS = 24_000
_SNIFF = 8192
_SECRET_NAMES = re.compile(r"(^|/)(\.env(\..*)?|id_(rsa|dsa|ecdsa|ed25519)|.*\.(pem|key|p12|pfx))$")
_PRIVATE_KEY = b"PRIVATE KEY-----"
_SECRET_PATHSPECS = [
    ":(exclude,glob)**/.env",
    ":(exclude,glob)**/.env.*",
    ":(exclude,glob)**/*.pem",
    ":(exclude,glob)**/*.key",
    ":(exclude,glob)**/id_rsa",
    ":(exclude,glob)**/id_ed25519",
]


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
) -> Gathered:
    """Read every source of a step within the budgets. Never raises for a missing or
    refused input: each becomes a placeholder note in its block."""
    root = root.resolve()
    budget = _Budget(step_tokens)
    blocks: list[str] = []
    report: list[ContextItem] = []
    for source in sources:
        if budget.left <= 0:
            note = "left out: the step's context budget is used up"
            blocks.append(_block(source, f"[{note}]"))
            report.append(ContextItem(str(source), "skipped", 0, note))
            continue
        if source.kind == "git_diff":
            body, item = _git_diff(root, source, budget)
        elif source.kind == "latest_diff":
            body, item = _latest_diff(latest, source, budget)
        elif source.kind == "file":
            body, item = _file(root, source, budget, file_tokens)
        else:
            body, item = _glob(root, source, budget, file_tokens)
        blocks.append(_block(source, body))
        report.append(item)
    return Gathered(tuple(blocks), tuple(report))


def _block(source: ContextSource, body: str) -> str:
    return f"<<< context: {source} >>>\n{body.rstrip()}\n<<< end: {source} >>>"


# --- git diffs ---------------------------------------------------------------------------------


def _git_diff(root: Path, source: ContextSource, budget: _Budget) -> tuple[str, ContextItem]:
    name = str(source)
    try:
        top = git.toplevel(root)
    except git.GitMissing:
        return "[no diff: git is not installed]", ContextItem(name, "skipped", 0, "git not installed")
    if top is None:
        note = "not a git repository"
        return f"[no diff: {note}]", ContextItem(name, "skipped", 0, note)
    cap = budget.take(budget.left)
    try:
        diff = git.tracked_diff(root, cap, source.arg or None, pathspecs=_SECRET_PATHSPECS)
        parts, truncated = [diff.text], diff.truncated
        if not source.arg:
            room = cap - diff.bytes_read
            for rel in git.list_files(root, untracked_only=True):
                patch = _untracked_patch(root, rel, room)
                if patch is None:
                    continue
                if len(patch) > room:
                    truncated = True
                    break
                parts.append(patch)
                room -= len(patch)
    except git.GitError as exc:
        return f"[no diff: {exc}]", ContextItem(name, "skipped", 0, str(exc))
    text = "".join(parts)
    if not text.strip():
        note = f"no changes in {source.arg}" if source.arg else "no uncommitted changes"
        return f"[{note}]", ContextItem(name, "empty", 0, note)
    if truncated:
        text += f"\n[truncated: the diff is longer than this step's budget of {cap // 1024} KB]"
    budget.spend(text)
    status = "truncated" if truncated else "included"
    return text, ContextItem(name, status, estimate_tokens(text))


def _untracked_patch(root: Path, rel: str, room: int) -> str | None:
    """A new-file patch for an untracked file, a one-line note for one that is refused, or None."""
    header = f"diff --git a/{rel} b/{rel}\nnew file mode 100644\n"
    refusal = _refusal(root, rel)
    if refusal:
        return f"{header}[{refusal}]\n"
    content, note = _read(root / rel, max(room, 0))
    if content is None:
        return f"{header}[{note}]\n"
    lines = content.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    return f"{header}--- /dev/null\n+++ b/{rel}\n@@ -0,0 +1,{len(lines)} @@\n{body}"


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
    pure = PurePosixPath(rel.replace(os.sep, "/"))
    if pure.is_absolute() or Path(rel).is_absolute():
        return f"refused {rel}: absolute paths are not allowed; use a path inside the project"
    if ".." in pure.parts:
        return f"refused {rel}: '..' would leave the project root"
    if ".git" in pure.parts:
        return f"refused {rel}: git internals are never included"
    if _SECRET_NAMES.search(pure.as_posix()):
        return f"refused {rel}: it may hold secrets (.env files and private keys are never included)"
    resolved = (root / rel).resolve()
    if not resolved.is_relative_to(root):
        return f"refused {rel}: it is a symlink that leads outside the project root"
    return None


def _read(path: Path, cap: int) -> tuple[str | None, str]:
    """Up to `cap` bytes of a text file, or (None, why it was skipped)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(cap + 1 if cap > 0 else _SNIFF)
    except FileNotFoundError:
        return None, "missing: no such file"
    except IsADirectoryError:
        return None, "skipped: it is a directory"
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    if b"\0" in data[:_SNIFF]:
        return None, "skipped: binary file"
    if _PRIVATE_KEY in data[:_SNIFF]:
        return None, "refused: it looks like a private key"
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
    if truncated:
        return text, "truncated"
    return text, ""


def _file(root: Path, source: ContextSource, budget: _Budget, file_tokens: int) -> tuple[str, ContextItem]:
    name = str(source)
    refusal = _refusal(root, source.arg)
    if refusal:
        return f"[{refusal}]", ContextItem(name, "refused", 0, refusal)
    text, note = _read(root / source.arg, budget.take(file_tokens))
    if text is None:
        return f"[{source.arg}: {note}]", ContextItem(name, "skipped", 0, note)
    if note == "truncated":
        text += f"\n[truncated: {source.arg} is longer than the cap of {budget.take(file_tokens) // 1024} KB]"
    budget.spend(text)
    return text, ContextItem(name, "truncated" if note else "included", estimate_tokens(text), note)


def _glob(root: Path, source: ContextSource, budget: _Budget, file_tokens: int) -> tuple[str, ContextItem]:
    name = str(source)
    pattern = source.arg
    if PurePosixPath(pattern).is_absolute() or ".." in PurePosixPath(pattern).parts:
        why = f"refused {pattern}: globs must stay inside the project root"
        return f"[{why}]", ContextItem(name, "refused", 0, why)
    matcher = glob_regex(pattern)
    candidates = [rel for rel in _project_files(root) if matcher.fullmatch(rel)]
    if not candidates:
        return "[no files match]", ContextItem(name, "empty", 0, "no files match")
    parts: list[str] = []
    notes: list[str] = []
    included = 0
    for position, rel in enumerate(candidates):
        if budget.left <= 0:
            rest = len(candidates) - position
            notes.append(f"{rest} more matching file(s) left out: the step's context budget is used up")
            parts.append(f"[{notes[-1]}]")
            break
        refusal = _refusal(root, rel)
        if refusal:
            notes.append(refusal)
            parts.append(f"[{refusal}]")
            continue
        cap = budget.take(file_tokens)
        content, note = _read(root / rel, cap)
        if content is None:
            notes.append(f"{rel}: {note}")
            parts.append(f"[{rel}: {note}]")
            continue
        if note == "truncated":
            content += f"\n[truncated: {rel} is longer than the cap of {cap // 1024} KB]"
            notes.append(f"{rel}: truncated")
        body = f"--- {rel} ---\n{content}"
        budget.spend(body)
        parts.append(body)
        included += 1
    text = "\n".join(parts)
    status = "truncated" if any("truncated" in n or "left out" in n for n in notes) else "included"
    summary = f"{included} of {len(candidates)} file(s)"
    return text, ContextItem(name, status, estimate_tokens(text), "; ".join([summary, *notes]))


def _project_files(root: Path) -> list[str]:
    """Files git knows (tracked plus untracked-not-ignored), sorted; outside git, a walk."""
    try:
        if git.toplevel(root) is not None:
            return sorted(git.list_files(root))
    except git.GitError:
        pass
    found = []
    ignored = _top_gitignore(root)
    for folder, dirs, files in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel_folder == "." else rel_folder + "/"
        dirs[:] = sorted(d for d in dirs if d != ".git" and not _ignored(prefix + d, ignored))
        found += [prefix + f for f in files if not _ignored(prefix + f, ignored)]
    return sorted(found)


def _top_gitignore(root: Path) -> list[re.Pattern[str]]:
    """Patterns of the root `.gitignore` (negations are not supported outside git)."""
    try:
        lines = (root / ".gitignore").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    patterns = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        line = line.rstrip("/")
        anchored = line.startswith("/") or "/" in line
        line = line.lstrip("/")
        patterns.append(glob_regex(line if anchored else f"**/{line}"))
    return patterns


def _ignored(rel: str, patterns: list[re.Pattern[str]]) -> bool:
    return any(p.fullmatch(rel) for p in patterns)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a glob with `**` (any number of folders) to a regex over posix paths."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
