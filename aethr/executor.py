"""Run a workflow: prepare a step, call its backend, measure, settle, move on.

The executor never prints. It emits events to a sink and raises AethrError
subclasses; `boundary.py` decides what the user sees. It orchestrates values and
objects of their own: the run's state (`run.state`, frozen), the one transition
(`run.loops.advance`: the loop rule lives there), the spend (`run.meter`) and the
tree (`run.tree`). After each step it commits the next state in one assignment,
saves the checkpoint, and only then emits what happened: a Ctrl-C while a finished
step is shown finds it already saved, so a resume never runs it again.

A step's output is what its backend said. aethr's own note of what a step changed
goes to the artifact and the event stream, never into the text that loop conditions,
history, `step:` context and the checkpoint read.

The executor knows no modes: it asks its backends which backend answers a step,
whether loops are followed (not in a preview), and whether a step edits the tree.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from aethr import steps
from aethr.backends import Backend, Completion, Request, Router
from aethr.errors import AethrError, InternalError, Interrupted, OutputClosed, SpendCapReached
from aethr.events import (
    BudgetReached,
    CheckpointSaved,
    Event,
    EventSink,
    Notice,
    RunFailed,
    RunFinished,
    RunStarted,
    StepPlan,
    StepStarted,
    TextChunk,
    UsageReported,
)
from aethr.fingerprint import Fingerprint
from aethr.results import StepResult
from aethr.run import loops
from aethr.run.meter import Meter, charge, in_flight
from aethr.run.prepare import Preparer
from aethr.run.state import RunState
from aethr.run.tree import TreeWatch
from aethr.schema import Step, Workflow
from aethr.usage import Usage


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
        announced: bool = False,
    ) -> None:
        self.workflow, self.root, self.backends, self.sink = workflow, root, backends, sink
        self.durability, self.clock, self.cap = durability, clock, cap
        # The runner emitted the run's header itself, before the slow set-up (`header`).
        self.announced = announced
        self.config_file = config_file  # the workflow file, relative to the root (kept out of git_diff while untracked)
        self.tree = TreeWatch(root)
        self.prepare = Preparer(workflow, root, backends, sink, self.tree.files, config_file)
        self.meter = Meter(cap, Usage())
        self.state = self.new_state("")
        self._saved = False  # a checkpoint exists for this run
        self._running: Usage | None = None  # the running step's spend so far, while it may spend

    def new_state(self, task: str, **fields: Any) -> RunState:
        return RunState(task, self.workflow.workflow, self.workflow.digest(), **fields)

    def run(self, state: RunState, *, resumed_from: str | None = None) -> RunState:
        """Run from `state.next_index` to the end. Returns the final state.

        Raises StepFailed, LoopExhausted or Interrupted (with `.checkpoint` set when a
        checkpoint exists), after emitting RunFailed.
        """
        started = self.clock()
        self._start(state, resumed_from)
        current: Step | None = None
        try:
            while self.state.next_index < len(self.workflow.steps):
                current = self.workflow.steps[self.state.next_index]
                self._settle(self._run_step(current))
        except KeyboardInterrupt:
            where = f" during step '{current.id}'" if current else ""
            error: AethrError = Interrupted(f"interrupted{where}", usage=self._cut_short(current))
            self._fail(error, current, started)
            raise error from None
        except AethrError as exc:
            self._fail(exc, current, started)
            raise
        except OutputClosed:
            raise  # nobody is reading: nothing to report
        except Exception as exc:  # a bug: still leave the checkpoint, and say it is one
            error = InternalError(f"{type(exc).__name__}: {exc}", usage=self._cut_short(current))
            self._fail(error, current, started)
            raise error from exc
        finished = tuple(r.finished() for r in self.state.results)
        self.sink.emit(
            RunFinished(self.workflow.workflow, self.clock() - started, self.state.spent, finished, self.cap)
        )
        return self.state

    def _start(self, state: RunState, resumed_from: str | None) -> None:
        self._saved = resumed_from is not None
        self.meter = Meter(self.cap, state.spent)
        if self.durability and self._resumable_later(state):
            # Model steps never touch files, so the fingerprint is taken now and again only
            # after a step that edits the tree.
            state = state.replace(fingerprint=self.durability.fingerprint())
        self.state = state
        if self.durability and resumed_from is None:
            self._save()  # before any step, so even a failure in the first step leaves a resumable run
        if not self.announced:
            checkpoint = self.durability.path if self.durability else None
            self.sink.emit(header(self.workflow, self.backends, state.task, checkpoint, resumed_from))

    def _settle(self, result: StepResult) -> None:
        """Commit the state after `result`, save it, then say what happened."""
        follows = self.backends.follows_loops
        moved = loops.advance(self.workflow, self.state, result, tree=self.tree.after, follows_loops=follows)
        state = moved.state.replace(retry_from=None)  # a retried step has finished
        if self.durability and moved.state.next_index < len(self.workflow.steps) and self.tree.refingerprint():
            state = state.replace(fingerprint=self.durability.fingerprint())
        self.state = state  # the one commit: results, position, loop passes, progress and spend together
        saved = self._save()
        self.sink.emit(result.finished())
        notice = self.meter.commit(state.spent)
        if notice:
            self.sink.emit(Notice(result.step_id, notice))
        if moved.loop is not None:
            self.sink.emit(moved.loop)
        if saved is not None:
            self.sink.emit(CheckpointSaved(saved, result.step_id))
        if moved.stop is not None:
            raise moved.stop

    def _resumable_later(self, state: RunState) -> bool:
        """Whether a checkpoint of this run can hold a finished step with a step still to run:
        only then does a resume compare the fingerprint (4 git calls), so a fresh one-step run
        without loops takes none. A checkpoint without finished steps is resumed unchecked."""
        steps = self.workflow.steps
        return bool(state.results) or len(steps) - state.next_index > 1 or any(s.repeat for s in steps)

    def _save(self) -> str | None:
        if self.durability is None:
            return None
        self.durability.save(self.durability.path, self.state)
        self._saved = True
        return str(self.durability.path)

    def _cut_short(self, step: Step | None) -> Usage | None:
        """What a step stopped mid-way spent, as a floor (charged its prompt at its price when
        it reported nothing); nothing if it had not started or spends nothing."""
        if step is None or self._running is None:
            return None
        return charge(self._running.cut_short(), self.backends.price_for(step))

    def _fail(self, error: AethrError, step: Step | None, started: float) -> None:
        if error.usage is not None and step is not None:
            error.usage = charge(error.usage, self.backends.price_for(step))
        if error.usage is not None:
            self.state = self.state.replace(spent=self.state.spent + error.usage)
        self._running = None
        if isinstance(error, SpendCapReached) and step is not None:
            self.sink.emit(BudgetReached(step.id, self.state.spent.known, self.cap or 0.0))
        if self.tree.before is not None:  # an editing step stopped part-way: a resume retries it on its edits
            error.message += self.tree.left_behind()
            self.state = self.state.replace(retry_from=self.tree.before)
        error.reported = True
        if self.durability and self._saved:
            if self.tree.refingerprint():  # the run's own edits, not a change a resume should refuse
                self.state = self.state.replace(fingerprint=self.durability.fingerprint())
            with contextlib.suppress(OSError):
                self._save()  # keep what the failed step spent: a resume counts it
            error.checkpoint = str(self.durability.path)
        finished = tuple(r.finished() for r in self.state.results)
        seconds, spent = self.clock() - started, self.state.spent
        failed = (self.workflow.workflow, error.message, int(error.exit_code), step.id if step else None, seconds)
        self.sink.emit(RunFailed(*failed, spent, error.checkpoint, finished, error.usage, self.cap))

    def _run_step(self, step: Step) -> StepResult:
        iteration, model, role = self.state.iteration_of(step.id), self.backends.model_for(step), step.role or "command"
        first_byte = self.backends.endpoint_for(step).first_byte if step.kind == "model" else None
        self.sink.emit(StepStarted(step.id, role, step.kind, model, iteration, first_byte))
        backend = self.backends.for_step(step)
        request = self.prepare.request(step, self.state, iteration, model)
        begin = self.clock()
        completion = self._call(backend, request, step)
        artifact = self.tree.measure(step.id, completion.simulated_change)
        if artifact is not None and step.kind == "command" and not artifact.changed_files:
            artifact = None  # a command that changed nothing: nothing to say
        if artifact is not None and not artifact.note:
            # Said plainly, as measured, to the event stream only: the output stays the backend's.
            files = f": {', '.join(artifact.changed_files)}" if artifact.changed_files else ""
            lead = "" if not completion.text or completion.text.endswith("\n") else "\n"
            self.sink.emit(TextChunk(step.id, f"{lead}[aethr] {artifact.describe()}{files}\n"))
        if completion.passed is False:
            steps.check_command(step, completion, self.backends.follows_loops)
        usage = completion.usage if backend.free else charge(completion.usage, self.backends.price_for(step))
        seconds = self.clock() - begin
        return StepResult(step.id, role, model, completion.text, iteration, seconds, usage, artifact, completion.passed)

    def _call(self, backend: Backend, request: Request, step: Step) -> Completion:
        """Call the backend, with the tree watched and the spend metered."""
        self.tree.begin(backend.edits_tree, self.state.retry_from)
        metered = not backend.free
        self._running = in_flight(request.prompt) if metered else None
        if metered and request.command is None:
            request = self.meter.admit(request, self.backends.price_for(step))

        def emit(event: Event) -> None:
            self.sink.emit(event)
            if isinstance(event, UsageReported) and metered:
                self._running = event.usage
                notice = self.meter.watch(request.step_id, event.usage)  # raises at the cap: the agent is stopped
                if notice:
                    self.sink.emit(Notice(request.step_id, notice))

        completion = backend.complete(request, emit)
        self._running = None
        return completion


def header(
    workflow: Workflow, backends: Router, task: str, checkpoint: Path | None, resumed_from: str | None
) -> RunStarted:
    """The run's first event: workflow, mode and steps. It needs nothing slow (no tree listing,
    no LiteLLM), so a real run emits it before either: a run that shows nothing looks hung."""
    plan = tuple(StepPlan(s.id, s.role or "command", s.kind, backends.model_for(s)) for s in workflow.steps)
    where = str(checkpoint) if checkpoint else None
    return RunStarted(workflow.workflow, task, backends.mode, plan, where, resumed_from)
