"""An isolated run (`aethr run --isolate`, `isolate:` in the workflow): where its worktree
lives, how it starts or is found again on a resume, and what it hands back.

The worktree is `<checkpoint folder>/<run-id>.tree`, beside the run's checkpoint and lock,
outside the project. It exists from the moment the run holds its lock, so a plain run
started beside it can tell an isolated neighbour (harmless) from one in the checkout
(refused, see `runstore.sharing`). A finished run removes it; a failed or interrupted one
keeps it for the resume, and the checkpoint names it. The result is a patch of the run's
own changes, `<run-id>.patch` in the same folder (kept until the OS clears its temp
folder: it is the run's product), applied or committed on a branch when asked.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from aethr import git, sensitive, worktree
from aethr.checkpoint import RunState
from aethr.errors import CheckpointError, EnvironmentNotReady, UsageError
from aethr.schema import Isolate, Workflow
from aethr.worktree import Start


class Asked(NamedTuple):
    """What the command line asks of an isolated run's result."""

    isolate: bool | None = None  # --isolate / --no-isolate; None: the workflow decides
    apply: bool = False  # --apply: apply the patch to the checkout
    branch: str | None = None  # --branch NAME: commit the result on a new branch
    allow_shared_tree: bool = False  # --allow-shared-tree: run in the checkout beside a live run


class Tree(NamedTuple):
    """One isolated run's worktree."""

    top: Path  # the user's repository
    where: Path  # the worktree
    root: Path  # the project root inside the worktree
    start: Start
    links: tuple[str, ...]  # project-relative paths linked in (kept out of the patch)

    def follow(self, path: Path, root: Path) -> Path:
        """`path` under the user's project `root`, as the same path in the worktree."""
        return self.root / path.resolve().relative_to(root.resolve())

    def to_dict(self) -> dict[str, str]:
        return {"path": str(self.where), **self.start.to_dict()}


PREVIEW = (
    "isolate: the run works in a worktree of its own, made from the checkout as it is (HEAD plus the "
    "staged, unstaged and untracked changes) beside its checkpoint, and hands back a patch; a preview makes none"
)


def decide(asked: Asked, workflow: Workflow, state: RunState | None, root: Path) -> bool:
    """Whether the run is isolated: the flag, else the workflow; a resume goes on where its run worked."""
    if state is None:
        isolated = wanted(asked, workflow)
    else:
        isolated = state.worktree is not None
        if asked.isolate is not None and asked.isolate != isolated:
            where = "in its worktree" if isolated else "in the checkout"
            raise UsageError(
                f"a resume goes on where its run worked: {where}", hint="leave out --isolate when resuming"
            )
    check_asked(asked, isolated, root)
    return isolated


def wanted(asked: Asked, workflow: Workflow) -> bool:
    """The flag wins over the workflow's `isolate:`."""
    return asked.isolate if asked.isolate is not None else workflow.isolate is not False


def tree_path(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(".tree")


def check_asked(asked: Asked, isolated: bool, root: Path) -> None:
    """--apply and --branch need an isolated run, not both, and a branch name that is free."""
    if (asked.apply or asked.branch) and not isolated:
        raise UsageError("--apply and --branch hand back an isolated run's result", hint="add --isolate")
    if asked.apply and asked.branch:
        raise UsageError("--apply and --branch do not go together: the result goes to one of them")
    if asked.branch:
        why = worktree.check_branch(git.toplevel(root) or root, asked.branch)
        if why:
            raise UsageError(f"--branch {asked.branch}: {why}")


def _top(root: Path) -> tuple[Path, Path]:
    top = git.toplevel(root)
    if top is None:
        raise EnvironmentNotReady(f"--isolate needs a git repository: {root} is {git.why_not_a_repository(root)}")
    return top, root.resolve().relative_to(top)


def enter(root: Path, checkpoint: Path, workflow: Workflow, saved: Mapping[str, str] | None) -> Tree:
    """The run's worktree: made now from the checkout, or, on a resume, the one its checkpoint names."""
    top, rel = _top(root)
    links = tuple(workflow.isolate.link) if isinstance(workflow.isolate, Isolate) else ()
    if saved is not None:
        where = Path(saved["path"])
        if not worktree.is_worktree(where):
            raise CheckpointError(
                f"the run's worktree {where} is gone",
                hint="start a new run (aethr checkpoints --prune clears this one)",
            )
        start = Start(saved["head"], saved["staged"], saved["tree"])
        return Tree(top, where, where / rel, start, links)
    where = tree_path(checkpoint)
    where.mkdir(mode=0o700, exist_ok=True)  # first: the mark of an isolated run (see the module doc)
    try:
        start = worktree.snapshot(top)
        worktree.create(top, where, start)
    except git.GitError as exc:
        worktree.remove(top, where)
        raise EnvironmentNotReady(f"cannot make the run's worktree: {exc}") from None
    tree = Tree(top, where, where / rel, start, links)
    try:
        _link(tree, root.resolve())
    except BaseException:
        worktree.remove(top, where)
        raise
    return tree


def _link(tree: Tree, root: Path) -> None:
    """Symlink each named ignored path of the project into the worktree; refuse what the secret
    policy refuses, and what is not ignored (the worktree has it already)."""
    for name in tree.links:
        source, target = root / name, tree.root / name
        why = sensitive.by_target(root, name)
        if why is None and not source.exists():
            continue  # a missing one is skipped (git cannot tell whether `dir/` ignores it)
        if why is None and not git.is_ignored(root, name):
            why = "it is not ignored by git, so the worktree has it already"
        if why:
            raise UsageError(f"isolate: link: {name}: not linked: {why}")
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source.resolve(), target_is_directory=source.is_dir())


class Handed(NamedTuple):
    """What an isolated run handed back."""

    patch: Path | None  # None: the run changed nothing
    branch: str | None
    applied: bool
    conflict: str | None  # why --apply did not apply the patch


def hand_back(tree: Tree, asked: Asked, patch: Path, message: str) -> Handed:
    """Write the patch of the run's own changes, then apply it or commit it as asked."""
    rel = tree.root.relative_to(tree.where)
    leave_out = [(rel / name).as_posix() for name in tree.links]
    end = worktree.end_tree(tree.where, leave_out)
    if not worktree.write_patch(tree.where, tree.start, end, patch):
        return Handed(None, None, False, None)
    if asked.branch:
        worktree.make_branch(tree.top, asked.branch, tree.start, end, message)
        return Handed(patch, asked.branch, False, None)
    if asked.apply:
        conflict = worktree.apply(tree.top, patch)
        return Handed(patch, None, conflict is None, conflict)
    return Handed(patch, None, False, None)


def leave(tree: Tree) -> None:
    """Remove the worktree (a finished run)."""
    worktree.remove(tree.top, tree.where)


def stray_trees(root: Path) -> list[Path]:
    """Worktree folders of this project with no checkpoint beside them whose run is over (one
    SIGKILLed before its first checkpoint): `aethr checkpoints` lists them, `--prune` clears them."""
    from aethr import runstore

    folder = runstore.folder_for(root)
    found = sorted(folder.glob("*.tree")) if folder.is_dir() else []
    return [p for p in found if not p.with_suffix(".json").exists() and not runstore.in_use(p.with_suffix(".json"))]


def prune(root: Path, checkpoints: list[Path]) -> int:
    """Remove the worktrees of the pruned `checkpoints`, and any worktree folder beside them whose
    run no longer holds its lock (a run SIGKILLed before its first checkpoint). The count removed."""
    from aethr import runstore

    top = git.toplevel(root)
    folder = runstore.folder_for(root)
    found = {tree_path(p) for p in checkpoints} | set(folder.glob("*.tree") if folder.is_dir() else ())
    removed = 0
    for where in sorted(found):
        if where.exists() and not runstore.in_use(where.with_suffix(".json")):
            if top is not None:
                worktree.remove(top, where)
            shutil.rmtree(where, ignore_errors=True)
            removed += 1
    if top is not None:
        git.command(top, "worktree", "prune", check=False)
    return removed


def prune_message(root: Path, removed: list[Path]) -> str:
    """`aethr checkpoints --prune`: remove the pruned checkpoints' worktrees too, and say what went."""
    trees = prune(root, removed)
    also = f" and {trees} worktree(s)" if trees else ""
    return f"Removed {len(removed)} checkpoint(s){also} of {root}."
