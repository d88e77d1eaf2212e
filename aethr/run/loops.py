"""The one transition of a run: a state and a finished step give the next state.

`advance` does no I/O. It records the step's result and spend, then follows the
loop rule: a step with `repeat` is a controller; after it runs its condition
(`conditions`) is checked; if it fails and fewer than `max_iterations` passes ran,
the run goes back to `back_to`, and the loops inside that slice start afresh
(their pass counts and their no-progress memory). When a loop passes, its count
and its no-progress memory are dropped, so a later round never compares against a
failure from before the success. When the passes run out (or a failing command
loop fails the same way on an unchanged tree) the run stops with LoopExhausted,
and the state points back into the loop with a fresh round, which a resume grants.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from aethr import conditions
from aethr.errors import LoopExhausted
from aethr.events import LoopIteration
from aethr.results import StepResult
from aethr.run.state import RunState
from aethr.schema import Step, Workflow

# Numbers change between identical failures (durations, ports, addresses, counts of seconds).
_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\d+(?:\.\d+)?")


class Transition(NamedTuple):
    """The next state, the loop check to report (if a loop was checked), and why the run
    stops there (if it does): the executor saves `state`, emits, then raises `stop`."""

    state: RunState
    loop: LoopIteration | None = None
    stop: LoopExhausted | None = None


def advance(
    workflow: Workflow, state: RunState, result: StepResult, *, tree: str | None = None, follows_loops: bool = True
) -> Transition:
    """The state after `result`, the outcome of the step at `state.next_index`. `tree` is a
    digest of the tree after the step (None when unknown: no-progress is then never
    claimed); `follows_loops` is False in a preview, where every step runs once."""
    step = workflow.steps[state.next_index]
    recorded = _record(state, step, result)
    condition = conditions.for_step(step)
    if step.repeat is None or condition is None or not follows_loops:
        return Transition(recorded.replace(next_index=state.next_index + 1))
    loop = step.repeat
    passes = recorded.passes.get(step.id, 0) + 1
    verdict = condition.check(result.output, result.passed)
    progress = dict(recorded.progress)
    stuck = None
    if not verdict.passed and step.kind == "command":
        stuck = _stuck(progress, step.id, result.output, tree)
    reason = f"{verdict.reason}; {stuck}" if stuck else verdict.reason
    again = not verdict.passed and passes < loop.max_iterations and not stuck
    event = LoopIteration(step.id, loop.back_to, passes, loop.max_iterations, verdict.passed, reason, again)
    counts = dict(recorded.passes)
    if verdict.passed:
        counts.pop(step.id, None)
        progress.pop(step.id, None)
        moved = recorded.replace(next_index=state.next_index + 1, passes=counts, progress=progress)
        return Transition(moved, event)
    back = workflow.step_index(loop.back_to)
    for inner in workflow.steps[back : state.next_index]:
        counts.pop(inner.id, None)
        progress.pop(inner.id, None)
    if passes < loop.max_iterations and not stuck:
        counts[step.id] = passes
        return Transition(recorded.replace(next_index=back, passes=counts, progress=progress), event)
    counts.pop(step.id, None)
    progress.pop(step.id, None)
    moved = recorded.replace(next_index=back, passes=counts, progress=progress)
    return Transition(moved, event, _exhausted(step, passes, stuck, condition.goal))


def _record(state: RunState, step: Step, result: StepResult) -> RunState:
    """The state with the step's result and spend; its change becomes `latest_diff`, unless it
    is a command's (a formatter's change never hides the agent's)."""
    latest = state.latest
    if result.artifact is not None and step.kind != "command":
        latest = result.artifact
    return state.replace(results=(*state.results, result), spent=state.spent + result.usage, latest=latest)


def _stuck(progress: dict[str, str], step_id: str, output: str, tree: str | None) -> str | None:
    """Remember this failure in `progress`; say so if it repeats the last one on the same tree."""
    lines = output.split("\n", 2)
    body = lines[2] if len(lines) > 2 else output  # past the command and its status line
    seen = hashlib.sha256(f"{_NUMBERS.sub('N', body)}\0{tree}".encode()).hexdigest()
    before, progress[step_id] = progress.get(step_id), seen
    if tree is not None and before == seen:
        return "the command failed with the same output as the pass before, and no file changed"
    return None


def _exhausted(step: Step, passes: int, stuck: str | None, goal: str) -> LoopExhausted:
    assert step.repeat is not None
    where = f"the loop from '{step.repeat.back_to}' to '{step.id}'"
    if stuck:
        return LoopExhausted(
            f"{where} made no progress at pass {passes}: {stuck}",
            hint=f"read the last '{step.id}' output above: more passes would fail the same way; "
            "change the code or the command, then resume",
        )
    return LoopExhausted(
        f"{where} ran {passes} pass(es) without {goal}",
        hint=f"read the last '{step.id}' output above; raise repeat.max_iterations "
        "or resume to grant the loop another round",
    )
