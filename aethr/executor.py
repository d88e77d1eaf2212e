"""Run a workflow: steps in order, bounded repeat loops, a checkpoint after each step.

The executor never prints. It emits events to a sink and raises AethrError
subclasses; `boundary.py` decides what the user sees. Its state (`RunState`) is all
a resume needs, so a resumed run continues exactly where the last completed
step left it, loop counters included.

Loop rule: a step with `repeat` is a controller. After it runs, its condition
(`conditions`) is checked; if it fails and fewer than `max_iterations` passes
ran, the run goes back to `back_to` (the loops inside that slice start counting
afresh). When the passes run out the run stops with LoopExhausted; resuming
grants a new round.

Spend: `state.spent` counts every step's usage, failed and interrupted ones
included (a failure carries its usage; an agent reports usage as it goes), so the
run's total is what was really spent, and an unknown cost stays unknown.

The executor knows no modes: it asks its backends which backend answers a step,
whether loops are followed (not in a preview), and whether a step edits the tree.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from aethr import changes, conditions, context, listing, prompts, steps
from aethr.backends import Backend, Completion, Request, Router
from aethr.backends.command import describe
from aethr.checkpoint import RunState
from aethr.errors import AethrError, InternalError, Interrupted, LoopExhausted, OutputClosed, SpendCapReached
from aethr.events import (
    BudgetReached,
    CheckpointSaved,
    ContextNoted,
    Event,
    EventSink,
    LoopIteration,
    Notice,
    PromptBuilt,
    RunFailed,
    RunFinished,
    RunStarted,
    StepFinished,
    StepPlan,
    StepStarted,
    TextChunk,
    Usage,
    UsageReported,
)
from aethr.fingerprint import Fingerprint
from aethr.ledger import Ledger
from aethr.results import Artifact, StepResult
from aethr.schema import Step, Workflow


class Durability(NamedTuple):
    """Where checkpoints go, and how the repository is fingerprinted after each step."""

    path: Path
    save: Callable[[Path, RunState], None]
    fingerprint: Callable[[], Fingerprint | None]


class Executor:
    def __init__(
        self,
        workflow: Workflow,
        root: Path,
        backends: Router,
        sink: EventSink,
        durability: Durability | None = None,
        clock: Callable[[], float] = time.monotonic,
        config_file: str | None = None,
        cap: float | None = None,
    ) -> None:
        self.workflow = workflow
        self.root = root
        self.backends = backends
        self.sink = sink
        self.durability = durability
        self.clock = clock
        self.cap = cap  # the spend cap in USD (see `ledger`), if any
        self.config_file = config_file  # the workflow file, relative to the root (kept out of git_diff while untracked)
        self._saved = False
        self.ledger: Ledger | None = None
        self._tree_changed = False
        self._reported: Usage | None = None  # the running step's usage so far, as its agent reported it
        self._before: str | None = None  # the tree before the running step, when it edits the tree
        self._files = listing.Lister(root.resolve())  # the tree, listed once and shared by every step
        self._after: str | None = None  # the tree after the last step that may edit it
        self._progress = steps.Progress()  # failing command loops: is anything changing?

    def new_state(self, task: str) -> RunState:
        return RunState(task=task, workflow=self.workflow.workflow, workflow_digest=self.workflow.digest())

    def run(self, state: RunState, *, resumed_from: str | None = None) -> RunState:
        """Run from `state.next_index` to the end. Returns the final state.

        Raises StepFailed, LoopExhausted or Interrupted (with `.checkpoint` set when a
        checkpoint exists), after emitting RunFailed.
        """
        started = self.clock()
        plan = tuple(
            StepPlan(s.id, s.role or "command", s.kind, self.backends.model_for(s)) for s in self.workflow.steps
        )
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
        self.ledger = Ledger(self.cap, state.spent) if self.cap is not None else None
        try:
            while state.next_index < len(self.workflow.steps):
                current = self.workflow.steps[state.next_index]
                result = self._run_step(current, state)
                state.results.append(result)
                self._count(state, current, result.usage)
                if result.artifact is not None and current.kind != "command":
                    state.latest = result.artifact  # latest_diff stays the agent's, not a formatter's
                self._advance(current, result, state)
        except KeyboardInterrupt:
            where = f" during step '{current.id}'" if current else ""
            error: AethrError = Interrupted(f"interrupted{where}", usage=self._cut_short(current))
            self._fail(state, error, current, started)
            raise error from None
        except AethrError as exc:
            if isinstance(exc, SpendCapReached) and self.ledger is not None and current is not None:
                self._at_cap(exc, state, current, self.ledger)
            self._fail(state, exc, current, started)
            raise
        except OutputClosed:
            raise  # nobody is reading: nothing to report
        except Exception as exc:  # a bug: still leave the checkpoint, and say it is one
            error = InternalError(f"{type(exc).__name__}: {exc}", usage=self._cut_short(current))
            self._fail(state, error, current, started)
            raise error from exc
        finished = tuple(self._finished(r) for r in state.results)
        cap = self.ledger.cap if self.ledger else None
        self.sink.emit(RunFinished(self.workflow.workflow, self.clock() - started, state.spent, finished, cap))
        return state

    def _count(self, state: RunState, step: Step, usage: Usage) -> None:
        """Add a finished step's usage to the run's spend, and say when it nears the cap."""
        state.spent = state.spent + usage
        if self.ledger is not None:
            self.ledger.spent = state.spent
            notice = self.ledger.near()
            if notice:
                self.sink.emit(Notice(step.id, notice))

    def _at_cap(self, exc: SpendCapReached, state: RunState, step: Step, ledger: Ledger) -> None:
        spent = (state.spent + (exc.usage or Usage())).cost_usd or 0.0
        self.sink.emit(BudgetReached(step.id, spent, ledger.cap))
        exc.message += changes.left_behind(self.root, self._before)

    def _cut_short(self, step: Step | None) -> Usage | None:
        """What a step stopped mid-way spent: its reported usage as a floor; unknown if it
        could spend and reported nothing; nothing if it had not started or spends nothing."""
        if step is None or self._reported is None:
            return None
        return self._reported.cut_short()

    def _fail(self, state: RunState, error: AethrError, step: Step | None, started: float) -> None:
        if error.usage is not None:
            state.spent = state.spent + error.usage
        self._reported = None
        error.reported = True
        if self.durability and self._saved:
            with contextlib.suppress(OSError):
                # Keep what the failed step spent: a resume counts it.
                self.durability.save(self.durability.path, state)
            error.checkpoint = str(self.durability.path)
        finished = tuple(self._finished(r) for r in state.results)
        self.sink.emit(
            RunFailed(
                self.workflow.workflow,
                error.message,
                int(error.exit_code),
                step.id if step else None,
                self.clock() - started,
                state.spent,
                error.checkpoint,
                finished,
                error.usage,
                self.ledger.cap if self.ledger else None,
            )
        )

    def _run_step(self, step: Step, state: RunState) -> StepResult:
        iteration = 1 + sum(1 for r in state.results if r.step_id == step.id)
        model = self.backends.model_for(step)
        backend = self.backends.for_step(step)
        role = step.role or "command"
        self.sink.emit(StepStarted(step.id, role, step.kind, model, iteration))
        command = self.backends.command_for(step)
        timeout = self.backends.timeout_for(step)
        if command is not None:
            prompt = describe(command, timeout)
            self.sink.emit(PromptBuilt(step.id, prompt, ()))
        else:
            prompt = self._prompt(step, state)
            warning = self.backends.check_window(step, prompt)
            if warning:
                self.sink.emit(Notice(step.id, warning))
        condition = conditions.for_step(step)
        request = Request(
            step_id=step.id,
            role=role,
            backend=step.backend,
            model=model,
            task=state.task,
            prompt=prompt,
            timeout=timeout,
            root=self.root,
            unsafe_permissions=step.unsafe_permissions,
            done_marker=condition.marker if condition else None,
            endpoint=self.backends.endpoint_for(step),
            command=command,
            iteration=iteration,
            inherit_user_config=step.inherit_user_config,
        )
        begin = self.clock()
        completion = self._complete(backend, request, step)
        artifact, text = self._artifact_of(step, completion)
        if completion.passed is False:
            steps.check_command(step, completion, self.backends.follows_loops)
        seconds = self.clock() - begin
        usage = completion.usage
        return StepResult(step.id, role, model, text, iteration, seconds, usage, artifact, completion.passed)

    def _prompt(self, step: Step, state: RunState) -> str:
        outputs = {r.step_id: r.output for r in state.results}
        gathered = context.gather(
            step.context, self.root, state.latest, workflow_file=self.config_file, files=self._files, outputs=outputs
        )
        history, output = state.results, self.backends.output_for(step)
        prompt = prompts.build(self.workflow, step, state.task, history, state.latest, gathered.blocks, output)
        self.sink.emit(PromptBuilt(step.id, prompt, gathered.report))
        for item in gathered.report:
            if item.status in ("refused", "skipped", "empty"):
                self.sink.emit(ContextNoted(step.id, item.source, item.status, item.note))
        return prompt

    def _complete(self, backend: Backend, request: Request, step: Step) -> Completion:
        """Call the backend, recording the tree before an editing step and watching its usage."""
        self._before = changes.snapshot(self.root) if backend.edits_tree else None
        self._tree_changed = self._tree_changed or backend.edits_tree
        if backend.edits_tree:
            self._files.forget()  # the agent may add or remove files: list them again after it
        self._reported = None if backend.free else Usage(0, 0, None)
        ledger = self.ledger if not backend.free else None
        if ledger is not None and request.command is None:
            request = ledger.admit(request, self.backends.price_for(step))

        def emit(event: Event) -> None:
            if isinstance(event, UsageReported):
                self._reported = event.usage
                if ledger is not None:
                    self.sink.emit(event)
                    ledger.watch(request.step_id, event.usage)  # raises at the cap: the agent is stopped
                    return
            self.sink.emit(event)

        completion = backend.complete(request, emit)
        self._reported = None
        return completion

    def _artifact_of(self, step: Step, completion: Completion) -> tuple[Artifact | None, str]:
        """The step's change (measured, or the stand-in a simulated agent gave) and its text."""
        text = completion.text
        if self._before is None:
            if completion.simulated_change is None:
                return None, text
            return Artifact(step.id, (), "", "", note=completion.simulated_change), text
        artifact, self._after = changes.artifact(self.root, step.id, self._before)
        if step.kind == "command" and not artifact.changed_files:
            return None, text  # a command that changed nothing: nothing to say
        # Say plainly what the agent changed, as measured, not as the agent reported it.
        files = f": {', '.join(artifact.changed_files)}" if artifact.changed_files else ""
        lead = "" if not text or text.endswith("\n") else "\n"
        note = f"{lead}[aethr] {artifact.describe()}{files}\n"
        self.sink.emit(TextChunk(step.id, note))
        return artifact, text + note

    def _advance(self, step: Step, result: StepResult, state: RunState) -> None:
        """Move to the next step (or back into a loop), then checkpoint the new position."""
        self.sink.emit(self._finished(result))
        loop = step.repeat
        condition = conditions.for_step(step)
        if loop is None or condition is None or not self.backends.follows_loops:
            state.next_index += 1
            self._checkpoint(state, step)
            return
        passes = state.passes.get(step.id, 0) + 1
        state.passes[step.id] = passes
        passed, reason = condition.check(result.output, result.passed)
        stuck = None if passed or step.kind != "command" else self._progress.stuck(step.id, result.output, self._after)
        if stuck:
            reason = f"{reason}; {stuck}"
        self.sink.emit(LoopIteration(step.id, loop.back_to, passes, loop.max_iterations, passed, reason))
        if passed:
            state.passes.pop(step.id, None)
            state.next_index += 1
            self._checkpoint(state, step)
            return
        back = self.workflow.step_index(loop.back_to)
        if passes < loop.max_iterations and not stuck:
            for inner in self.workflow.steps[back : state.next_index]:
                state.passes.pop(inner.id, None)
            state.next_index = back
            self._checkpoint(state, step)
            return
        # Exhausted (or stuck): the checkpoint points back into the loop with a fresh round.
        state.passes.pop(step.id, None)
        state.next_index = back
        self._checkpoint(state, step)
        what = f"made no progress at pass {passes}: {stuck}" if stuck else f"ran {passes} pass(es) without"
        raise LoopExhausted(
            f"the loop from '{loop.back_to}' to '{step.id}' {what}{'' if stuck else ' ' + condition.goal}",
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

    def _finished(self, r: StepResult) -> StepFinished:
        files = r.artifact.changed_files if r.artifact is not None else None
        return StepFinished(r.step_id, r.role, r.model, r.iteration, r.seconds, r.usage, r.output, files, r.passed)
