"""One run with its checkpoint held, in the checkout or in a worktree of its own.

The checkpoint (and its lock) is keyed by the user's project root whatever tree the run
works in, so `last`, `aethr checkpoints` and `--prune` find isolated runs too. A run in the
checkout that may edit files refuses to start beside another live run in the checkout
(their diffs would mix); an isolated one works in its worktree and hands back a patch.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from aethr import checkpoint, fingerprint, git, isolation, runstore
from aethr.backends.router import Backends
from aethr.checkpoint import RunState
from aethr.errors import AethrError, EnvironmentNotReady, OutputClosed
from aethr.events import EventSink, Notice
from aethr.executor import Durability, Executor
from aethr.isolation import Asked, Handed, Tree
from aethr.report import Report
from aethr.schema import Workflow


class Where(NamedTuple):
    """The tree a run works on, and what was asked of it."""

    root: Path  # the user's project root
    config: Path  # the workflow file
    isolate: bool  # in a worktree of its own
    edits: bool  # some step may edit files
    asked: Asked


def where(root: Path, config: Path, isolated: bool, backends: Backends, asked: Asked, sink: EventSink) -> Where:
    """Where the run works. An isolated run none of whose steps edits files (a mock run: no agent
    starts, no `run:` step runs without --exec-commands) needs no worktree and makes none."""
    edits = any(backends.for_step(step).edits_tree for step in backends.workflow.steps)
    if isolated and not edits:
        sink.emit(Notice("", "isolate: no step of this run edits files, so it needs no worktree and makes none"))
    return Where(root, config, isolated and edits, edits, asked)


def run(
    make: Callable[[Path], Executor],
    workflow: Workflow,
    state: RunState,
    where: Where,
    path: Path,
    resumed: Path | None,
    force: bool,
    report: Report,
) -> None:
    """Run with its checkpoint at `path` (`resumed`, on a resume), held for the run's length,
    kept unless the run finishes. An isolated run's result is handed back once it finishes."""
    root = where.root
    held = runstore.hold(path)  # before the world check: a running run's tree is not settled
    finished = False
    tree: Tree | None = None
    executor: Executor | None = None
    try:
        if where.isolate:
            tree = isolation.enter(root, path, workflow, state.worktree)
            state = state.replace(worktree=tree.to_dict())
        elif where.edits and not where.asked.allow_shared_tree:
            _refuse_shared(root, path)
        executor = make(tree.root if tree else root)
        _run_in(executor, state, where, tree, resumed, force, path)
        finished = True
    except OutputClosed:
        # The reader went away (`| head`): the run stops there, as git does, and leaves nothing.
        finished = True
        if tree is not None:
            isolation.leave(tree)
        raise
    except AethrError as exc:
        if tree is not None:  # the boundary prints the message, after the run's own report
            exc.message += f"\n  the run's worktree is kept at {tree.where}: the resume goes on there"
        raise
    finally:
        runstore.release(path, held, finished=finished)
    assert executor is not None
    message = f"aethr: {workflow.workflow}: {state.task.strip()[:60]}"
    _finish(tree, where, path, executor.sink, message, report)


def _run_in(
    executor: Executor, state: RunState, where: Where, tree: Tree | None, resumed: Path | None, force: bool, path: Path
) -> None:
    work = executor.root
    config = tree.follow(where.config, where.root) if tree else where.config
    if resumed is not None:
        from aethr import resume  # a plain run never imports resuming

        resume.check_world(state, work, config, force)
    # A mock run's checkpoint is written (a SIGKILL can still resume it) but not fsynced: it
    # paid for nothing, and a successful run deletes it at once.
    save = checkpoint.save if executor.backends.mode == "live" else functools.partial(checkpoint.save, durable=False)
    executor.durability = Durability(path, save, lambda: fingerprint.take(work, config))
    executor.run(state, resumed_from=str(resumed) if resumed else None)


def _refuse_shared(root: Path, mine: Path) -> None:
    others = runstore.sharing(root, mine)
    if others:
        raise EnvironmentNotReady(
            f"another run is working in this checkout ({others[0].stem}): the two runs' edits and diffs would mix",
            hint="run it with --isolate (a worktree of its own), or pass --allow-shared-tree to run anyway",
        )


def _finish(tree: Tree | None, where: Where, path: Path, sink: EventSink, message: str, report: Report) -> None:
    """Hand back the result of a finished isolated run (named in `run_finished`), then remove
    its worktree."""
    if tree is None:
        return
    patch = path.with_suffix(".patch")
    try:
        handed = isolation.hand_back(tree, where.asked, patch, message)
    except git.GitError as exc:
        raise EnvironmentNotReady(
            f"cannot hand back the run's result: {exc}", hint=f"its worktree is kept at {tree.where}"
        ) from None
    isolation.leave(tree)
    report.patch = str(handed.patch) if handed.patch and not handed.branch else None
    report.branch = handed.branch
    sink.emit(Notice("", describe(handed, tree)))
    if handed.conflict is not None:
        raise EnvironmentNotReady(
            f"the run's patch does not apply to the checkout, which changed meanwhile: {handed.conflict}",
            hint=f"nothing was applied; the patch is kept at {patch} (try `git apply --3way {patch}`)",
        )


def describe(handed: Handed, tree: Tree) -> str:
    """The summary's line: where the result is, and the one command that applies it."""
    if handed.patch is None:
        return "isolated run: it changed no files, so there is nothing to hand back"
    quoted = shlex.quote(str(handed.patch))
    if handed.branch:
        return f"isolated run: its changes are committed on branch {handed.branch} (the checkout is as it was)"
    if handed.applied:
        return f"isolated run: its changes are applied to the checkout (the patch is kept at {quoted})"
    at_top = tree.root == tree.where
    apply = f"git apply {quoted}" if at_top else f"git -C {shlex.quote(str(tree.top))} apply {quoted}"
    return f"isolated run: its changes are in {quoted}; apply them with: {apply}"
