"""The git side of an isolated run: a detached worktree made from the user's working tree,
and the patch or branch that carries the run's work back.

The worktree starts as the checkout was when the run began: HEAD, the user's staged
changes in its index, their unstaged and untracked-not-ignored files in its files. It is
made from tree objects written through temporary index files, so the user's index, files
and branches are never touched; the only trace in the repository while it runs is git's
own `worktrees/` entry, which `git worktree remove` (or `prune`, after a SIGKILL) clears.
Untracked files the secret policy refuses by name (`.env`, private keys) are left out.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

from aethr import git, sensitive


class Start(NamedTuple):
    """The tree a run started from, as tree ids (stored in the checkpoint for the resume)."""

    head: str  # the commit HEAD pointed at
    staged: str  # the user's index
    tree: str  # the whole working tree: staged, unstaged and untracked-not-ignored

    def to_dict(self) -> dict[str, str]:
        return self._asdict()


def _index_tree(top: Path) -> str:
    """The tree of the user's index, written through a copy so the index itself is not rewritten."""
    with tempfile.TemporaryDirectory(prefix="aethr-index-") as tmp:
        index = Path(tmp) / "index"
        real = Path(git.command(top, "rev-parse", "--absolute-git-dir").strip()) / "index"
        if real.exists():
            shutil.copy2(real, index)  # its mtime too: git judges "racily clean" entries by it
        return git.command(top, "write-tree", env={"GIT_INDEX_FILE": str(index)}).strip()


def left_out(top: Path, extra: list[str] | None = None) -> list[str]:
    """Untracked files never carried into or out of a worktree: those the secret policy refuses."""
    _, untracked = git.list_files_split(top)
    return [name for name in untracked if sensitive.by_name(name)] + list(extra or [])


def snapshot(top: Path) -> Start:
    """What the run starts from. Raises GitError (no commit yet, an unmerged index)."""
    head = git.head(top)
    if head is None:
        raise git.GitError("the repository has no commit yet: a worktree starts from one")
    return Start(head, _index_tree(top), git.snapshot(top, exclude=left_out(top)))


def create(top: Path, where: Path, start: Start) -> None:
    """A detached worktree at `where` holding `start`: the files of `start.tree`, the index of
    `start.staged`, its stat cache refreshed so later diffs do not rehash every file."""
    git.command(top, "worktree", "add", "--quiet", "--detach", "--no-checkout", str(where), start.head)
    git.command(where, "read-tree", "-u", "--reset", start.tree)
    # -m keeps the stat data of the entries the two trees share, so the refresh below looks
    # only at the files with unstaged changes instead of rehashing every file.
    git.command(where, "read-tree", "-m", start.staged)
    git.command(where, "update-index", "-q", "--refresh", check=False)  # exits 1 for unstaged files


def is_worktree(where: Path) -> bool:
    return where.is_dir() and git.toplevel(where) == where.resolve()


def remove(top: Path, where: Path) -> None:
    """Remove the worktree and git's entry for it; a folder git no longer knows goes too."""
    git.command(top, "worktree", "remove", "--force", str(where), check=False)
    if where.exists():
        shutil.rmtree(where, ignore_errors=True)
    git.command(top, "worktree", "prune", check=False)


def end_tree(where: Path, leave_out: list[str]) -> str:
    """The worktree's files now, as a tree (linked paths and secret-named files left out)."""
    return git.snapshot(where, exclude=left_out(where, leave_out))


def write_patch(where: Path, start: Start, end: str, patch: Path) -> bool:
    """Write the run's own changes (`start.tree` to `end`) to `patch`; False when there are none."""
    if start.tree == end:
        return False
    args = ("diff", "--binary", "--full-index", "--no-ext-diff", "--no-textconv", "--no-color", "--no-renames")
    git.command(where, *args, f"--output={patch}", start.tree, end, "--")
    patch.chmod(0o600)
    return True


def apply(top: Path, patch: Path) -> str | None:
    """Apply `patch` to the checkout if it applies cleanly; otherwise what conflicts (nothing applied)."""
    try:
        git.command(top, "apply", "--check", str(patch))
    except git.GitError as exc:
        return str(exc).split(": ", 1)[-1]
    git.command(top, "apply", str(patch))
    return None


def check_branch(top: Path, name: str) -> str | None:
    """Why `name` cannot be a new branch, or None."""
    if git.command(top, "check-ref-format", "--branch", name, check=False).strip() != name:
        return f"'{name}' is not a valid branch name"
    if git.command(top, "rev-parse", "--verify", "--quiet", f"refs/heads/{name}", check=False).strip():
        return f"a branch '{name}' exists already"
    return None


def make_branch(top: Path, name: str, start: Start, end: str, message: str) -> str:
    """Commit the result on a new branch `name`, leaving HEAD and the checkout alone: one commit
    of the uncommitted changes the run started from (if any), then one of the run's own, so
    `git diff NAME~1 NAME` is what the run did. Returns the branch's commit."""
    parent = start.head
    head_tree = git.command(top, "rev-parse", f"{start.head}^{{tree}}").strip()
    if start.tree != head_tree:
        note = "aethr: the uncommitted changes the run started from"
        parent = git.command(top, "commit-tree", start.tree, "-p", parent, "-m", note).strip()
    commit = git.command(top, "commit-tree", end, "-p", parent, "-m", message).strip()
    git.command(top, "branch", "--end-of-options", name, commit)
    return commit
