"""What a step changed in the working tree, measured, not as the step reported it.

A tree object before and after (a temporary index: the user's staging is kept),
then the changed files, the stat and the patch, screened by the one secret
policy so a secret an agent wrote never reaches a prompt or the checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from aethr import git, gitview
from aethr.errors import EnvironmentNotReady
from aethr.results import Artifact

ARTIFACT_BYTES = 400_000


def snapshot(root: Path) -> str:
    """The working tree now, as a tree id. Raises EnvironmentNotReady when git cannot."""
    try:
        return git.snapshot(root)
    except git.GitError as exc:
        raise EnvironmentNotReady(f"cannot record the working tree around a step: {exc}") from None


def artifact(root: Path, step_id: str, before: str) -> tuple[Artifact, str]:
    """The change since `before`, and the tree after it."""
    after = snapshot(root)
    files = tuple(git.changed_files(root, before, after))
    if not files:
        return Artifact(step_id, (), "", ""), after
    patch = git.diff_trees(root, before, after, ARTIFACT_BYTES)
    stat = git.diff_stat(root, before, after)
    return Artifact(step_id, files, stat, gitview.screen_patch(patch.text), patch.truncated), after


def left_behind(root: Path, before: str | None) -> str:
    """For a step stopped part-way: the files it had changed, which stay in the tree."""
    if before is None:
        return ""
    try:
        files = git.changed_files(root, before, git.snapshot(root))
    except git.GitError:
        return ""
    shown = ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
    return f"; its edits so far stay in the working tree: {shown}" if files else "; it had changed no files"
