"""Run a workflow: steps in order, bounded repeat loops, a checkpoint after each step.

The executor never prints. It emits events to a sink and raises AethrError
subclasses; `cli.py` decides what the user sees. Its state (`RunState`) is all
a resume needs, so a resumed run continues exactly where the last completed
step left it, loop counters included.

Loop rule: a step with `repeat` is a controller. After it runs, its condition is
checked; if it fails and fewer than `max_iterations` passes ran, the run goes
back to `back_to` (the loops inside that slice start counting afresh). When the
passes run out the run stops with LoopExhausted; resuming grants a new round.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from aethr import context, git, prompts
from aethr.backends import Backends, Request
from aethr.checkpoint import RunState
from aethr.config import Step, Workflow
from aethr.errors import AethrError, EnvironmentNotReady, Interrupted, LoopExhausted
from aethr.events import (
    CheckpointSaved,
    EventSink,
    LoopIteration,
    PromptBuilt,
    RunFailed,
    RunFinished,
    RunStarted,
    StepFinished,
    StepPlan,
    StepStarted,
    TextChunk,
    Usage,
)
from aethr.results import Artifact, StepResult

ARTIFACT_BYTES = 400_000


class Durability(NamedTuple):
    """Where checkpoints go, and how the repository is fingerprinted after each step."""

    path: Path
    save: Callable[[Path, RunState], None]
    fingerprint: Callable[[], str | None]


class Executor:
    def __init__(
        self,
        workflow: Workflow,
        root: Path,
        backends: Backends,
        sink: EventSink,
        durability: Durability | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workflow = workflow
        self.root = root
        self.backends = backends
        self.sink = sink
        self.durability = durability
        self.clock = clock
        self.preview = backends.mode == "preview"
        self._saved = False
        self._tree_changed = False

    def new_state(self, task: str) -> RunState:
        return RunState(task=task, workflow=self.workflow.workflow, workflow_digest=self.workflow.digest())

    def run(self, state: RunState, *, resumed_from: str | None = None) -> RunState:
        """Run from `state.next_index` to the end. Returns the final state.

        Raises StepFailed, LoopExhausted or Interrupted (with `.checkpoint` set when a
        checkpoint exists), after emitting RunFailed.
        """
        started = self.clock()
        plan = tuple(StepPlan(s.id, s.role, s.backend, self.backends.model_for(s)) for s in self.workflow.steps)
        checkpoint = str(self.durability.path) if self.durability else None
        self._saved = resumed_from is not None
        if self.durability:
            # Model steps never touch files, so the fingerprint is taken now and again only
            # after a step that edits the tree (see `_checkpoint`).
            state.fingerprint = self.durability.fingerprint()
            self._tree_changed = False
            if resumed_from is None:
                # Saved before any step, so even a failure in the first step leaves a resumable run.
                self.durability.save(self.durability.path, state)
                self._saved = True
        self.sink.emit(
            RunStarted(self.workflow.workflow, state.task, self.backends.mode, plan, checkpoint, resumed_from)
        )
        current: Step | None = None
        try:
            while state.next_index < len(self.workflow.steps):
                current = self.workflow.steps[state.next_index]
                result = self._run_step(current, state)
                state.results.append(result)
                if result.artifact is not None:
                    state.latest = result.artifact
                self._advance(current, result, state)
        except KeyboardInterrupt:
            error: AethrError = Interrupted("interrupted" + (f" during step '{current.id}'" if current else ""))
            self._fail(state, error, current, started)
            raise error from None
        except AethrError as exc:
            self._fail(state, exc, current, started)
            raise
        finished = tuple(self._finished(r) for r in state.results)
        self.sink.emit(RunFinished(self.workflow.workflow, self.clock() - started, _total(state), finished))
        return state

    def _fail(self, state: RunState, error: AethrError, step: Step | None, started: float) -> None:
        if self.durability and self._saved:
            error.checkpoint = str(self.durability.path)
        finished = tuple(self._finished(r) for r in state.results)
        self.sink.emit(
            RunFailed(
                self.workflow.workflow,
                error.message,
                int(error.exit_code),
                step.id if step else None,
                self.clock() - started,
                _total(state),
                error.checkpoint,
                finished,
            )
        )

    def _run_step(self, step: Step, state: RunState) -> StepResult:
        iteration = 1 + sum(1 for r in state.results if r.step_id == step.id)
        model = self.backends.model_for(step)
        backend = self.backends.for_step(step)
        self.sink.emit(StepStarted(step.id, step.role, step.backend, model, iteration))
        gathered = context.gather(step.context, self.root, state.latest)
        prompt = prompts.build(self.workflow, step, state.task, state.results, state.latest, gathered.blocks)
        self.sink.emit(PromptBuilt(step.id, prompt, gathered.report))
        request = Request(
            step_id=step.id,
            role=step.role,
            backend=step.backend,
            model=model,
            task=state.task,
            prompt=prompt,
            timeout=self.backends.timeout_for(step),
            root=self.root,
            unsafe_permissions=step.unsafe_permissions,
            done_marker=_done_marker(step),
        )
        begin = self.clock()
        before = self._snapshot() if backend.edits_tree else None
        self._tree_changed = self._tree_changed or backend.edits_tree
        completion = backend.complete(request, self.sink.emit)
        artifact = None
        text = completion.text
        if step.backend != "model":
            artifact = self._artifact(step, before) if before is not None else self._unrun_artifact(step)
            if before is not None:
                # Say plainly what the agent changed, as measured, not as the agent reported it.
                files = f": {', '.join(artifact.changed_files)}" if artifact.changed_files else ""
                lead = "" if not text or text.endswith("\n") else "\n"
                note = f"{lead}[aethr] {artifact.describe()}{files}\n"
                self.sink.emit(TextChunk(step.id, note))
                text += note
        seconds = self.clock() - begin
        return StepResult(step.id, step.role, model, text, iteration, seconds, completion.usage, artifact)

    def _advance(self, step: Step, result: StepResult, state: RunState) -> None:
        """Move to the next step (or back into a loop), then checkpoint the new position."""
        self.sink.emit(self._finished(result))
        loop = step.repeat
        if loop is None or self.preview:
            state.next_index += 1
            self._checkpoint(state, step)
            return
        passes = state.passes.get(step.id, 0) + 1
        state.passes[step.id] = passes
        passed, reason = _loop_done(step, result.output)
        self.sink.emit(LoopIteration(step.id, loop.back_to, passes, loop.max_iterations, passed, reason))
        if passed:
            state.passes.pop(step.id, None)
            state.next_index += 1
            self._checkpoint(state, step)
            return
        back = self.workflow.step_index(loop.back_to)
        if passes < loop.max_iterations:
            for inner in self.workflow.steps[back : state.next_index]:
                state.passes.pop(inner.id, None)
            state.next_index = back
            self._checkpoint(state, step)
            return
        # Exhausted: the checkpoint points back into the loop with a fresh round of passes.
        state.passes.pop(step.id, None)
        state.next_index = back
        self._checkpoint(state, step)
        raise LoopExhausted(
            f"the loop from '{loop.back_to}' to '{step.id}' ran {passes} pass(es) without {_goal(step)}",
            hint=f"read the last '{step.id}' output above; raise repeat.max_iterations "
            "or resume to grant the loop another round",
        )

    def _checkpoint(self, state: RunState, step: Step) -> None:
        if self.durability is None:
            return
        if self._tree_changed:
            state.fingerprint = self.durability.fingerprint()
            self._tree_changed = False
        self.durability.save(self.durability.path, state)
        self._saved = True
        self.sink.emit(CheckpointSaved(str(self.durability.path), step.id))

    def _snapshot(self) -> str:
        try:
            return git.snapshot(self.root)
        except git.GitError as exc:
            raise EnvironmentNotReady(f"cannot record the working tree before an agent step: {exc}") from None

    def _artifact(self, step: Step, before: str) -> Artifact:
        after = self._snapshot()
        files = tuple(git.changed_files(self.root, before, after))
        if not files:
            return Artifact(step.id, (), "", "")
        patch = git.diff_trees(self.root, before, after, ARTIFACT_BYTES)
        stat = git.diff_stat(self.root, before, after)
        return Artifact(step.id, files, stat, patch.text, patch.truncated)

    def _unrun_artifact(self, step: Step) -> Artifact:
        if self.preview:
            note = f"[the changes made by step '{step.id}' will appear here when the workflow runs]"
        else:
            note = f"step '{step.id}' was simulated (mock mode): no files were changed"
        return Artifact(step.id, (), "", "", note=note)

    def _finished(self, r: StepResult) -> StepFinished:
        files = r.artifact.changed_files if r.artifact is not None else None
        return StepFinished(r.step_id, r.role, r.model, r.iteration, r.seconds, r.usage, r.output, files)


def _total(state: RunState) -> Usage:
    total = Usage()
    for r in state.results:
        total = total + r.usage
    return total


def _done_marker(step: Step) -> str | None:
    if step.repeat is None:
        return None
    return prompts.PASS_LINE if step.repeat.until_review_pass else step.repeat.until_contains


def _goal(step: Step) -> str:
    assert step.repeat is not None
    if step.repeat.until_review_pass:
        return f"'{prompts.PASS_LINE}'"
    return f"the text '{step.repeat.until_contains}'"


def _loop_done(step: Step, output: str) -> tuple[bool, str]:
    assert step.repeat is not None
    if step.repeat.until_contains is not None:
        found = step.repeat.until_contains in output
        return found, ("found" if found else "not found") + f": '{step.repeat.until_contains}'"
    status = prompts.review_status(output)
    if status is None:
        return False, "no 'Review status:' line in the reply; counted as revise"
    return status == "pass", f"Review status: {status}"
