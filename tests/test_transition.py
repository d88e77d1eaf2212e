"""The run's one transition (`run.loops.advance`), as tables: no process, no file, no sink.

Each case starts from a state, feeds one step's outcome, and checks where the run goes,
which loop counters moved, what the no-progress memory holds, and whether it stops.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aethr import estimate
from aethr.config import parse
from aethr.errors import LoopExhausted
from aethr.results import StepResult
from aethr.run.loops import advance
from aethr.run.state import RunState
from aethr.schema import Workflow
from aethr.usage import Usage
from tests.conftest import REVIEW_LOOP

REVIEW = REVIEW_LOOP + "  - id: after\n    role: implementer\n"

CONTAINS = REVIEW.replace("until_review_pass: true", "until_contains: DONE")

COMMAND = """\
workflow: w
roles: {implementer: Build.}
steps:
  - id: fix
    role: implementer
  - id: test
    run: "pytest"
    repeat: {back_to: fix, until_command_passes: true, max_iterations: 3}
"""

# An outer review loop around an inner command loop: implement, (fix, test)*, review.
NESTED = """\
workflow: w
roles: {implementer: Build., reviewer: Review.}
steps:
  - id: implement
    role: implementer
  - id: fix
    role: implementer
  - id: test
    run: "pytest"
    repeat: {back_to: fix, until_command_passes: true, max_iterations: 3}
  - id: review
    role: reviewer
    repeat: {back_to: implement, until_review_pass: true, max_iterations: 2}
"""


def result(step_id: str, output: str = "", passed: bool | None = None, cost: float | None = 0.01) -> StepResult:
    return StepResult(step_id, "r", None, output, 1, 0.0, Usage(1, 1, cost), None, passed)


def at(workflow: Workflow, step_id: str, **fields: object) -> RunState:
    return RunState("t", "w", "d", next_index=workflow.step_index(step_id), **fields)  # type: ignore[arg-type]


# (workflow, step, its output, passed, passes before) -> (next step, passes after, stops)
CASES = [
    ("plain step moves on", REVIEW, "implement", "x", None, {}, "review", {}, False),
    (
        "review: revise goes back",
        REVIEW,
        "review",
        "Review status: revise",
        None,
        {},
        "implement",
        {"review": 1},
        False,
    ),
    ("review: no status is revise", REVIEW, "review", "looks fine", None, {}, "implement", {"review": 1}, False),
    ("review: pass moves on", REVIEW, "review", "Review status: pass", None, {"review": 1}, "after", {}, False),
    (
        "review: last pass exhausts",
        REVIEW,
        "review",
        "Review status: revise",
        None,
        {"review": 1},
        "implement",
        {},
        True,
    ),
    ("contains: found moves on", CONTAINS, "review", "all DONE", None, {}, "after", {}, False),
    ("contains: missing goes back", CONTAINS, "review", "not yet", None, {}, "implement", {"review": 1}, False),
    ("command: failed goes back", COMMAND, "test", "$ pytest\nexit 1\nE", False, {}, "fix", {"test": 1}, False),
    ("command: passed moves on", COMMAND, "test", "$ pytest\nexit 0\n", True, {"test": 2}, None, {}, False),
    ("command: last failure exhausts", COMMAND, "test", "x", False, {"test": 2}, "fix", {}, True),
    (
        "nested: outer revise resets inner",
        NESTED,
        "review",
        "Review status: revise",
        None,
        {"test": 1},
        "implement",
        {"review": 1},
        False,
    ),
    (
        "nested: inner failure keeps outer",
        NESTED,
        "test",
        "x",
        False,
        {"review": 1},
        "fix",
        {"review": 1, "test": 1},
        False,
    ),
]


@pytest.mark.parametrize(
    ("text", "step", "output", "passed", "before", "then", "after", "stops"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_transition(
    text: str,
    step: str,
    output: str,
    passed: bool | None,
    before: dict[str, int],
    then: str | None,
    after: dict[str, int],
    stops: bool,
) -> None:
    workflow = parse(text)
    state = at(workflow, step, passes=before, spent=Usage(0, 0, 0.5))
    moved = advance(workflow, state, result(step, output, passed))
    expected = len(workflow.steps) if then is None else workflow.step_index(then)
    assert moved.state.next_index == expected
    assert dict(moved.state.passes) == after
    assert isinstance(moved.stop, LoopExhausted) if stops else moved.stop is None
    assert moved.state.results[-1].step_id == step and moved.state.spent.cost_usd == pytest.approx(0.51)
    assert state.next_index == workflow.step_index(step) and dict(state.passes) == before, "the old state is a value"
    if workflow.steps[workflow.step_index(step)].repeat is not None:
        assert moved.loop is not None and moved.loop.passes == before.get(step, 0) + 1


def test_a_preview_runs_each_step_once() -> None:
    workflow = parse(REVIEW)
    moved = advance(workflow, at(workflow, "review"), result("review", "no status"), follows_loops=False)
    assert moved.state.next_index == workflow.step_index("after") and moved.loop is None


def test_an_unknown_cost_keeps_the_known_spend_as_a_floor() -> None:
    workflow = parse(REVIEW)
    moved = advance(workflow, at(workflow, "implement", spent=Usage(0, 0, 0.5)), result("implement", cost=None))
    assert moved.state.spent == Usage(1, 1, 0.5, at_least=True)


def _fail(workflow: Workflow, state: RunState, tree: str) -> tuple[RunState, LoopExhausted | None]:
    moved = advance(
        workflow, state.replace(next_index=workflow.step_index("test")), result("test", "E", False), tree=tree
    )
    return moved.state, moved.stop


def test_the_same_failure_on_the_same_tree_stops_the_loop() -> None:
    workflow = parse(COMMAND)
    state, stop = _fail(workflow, at(workflow, "test"), "T1")
    assert stop is None
    state, stop = _fail(workflow, state, "T2")
    assert stop is None, "the tree changed: that is progress"
    state, stop = _fail(workflow, state, "T2")
    assert stop is not None and "no progress" in stop.message and "max_iterations" not in (stop.hint or "")
    assert dict(state.progress) == {}, "the stopped loop forgets its memory: a resume starts it afresh"


def test_the_no_progress_memory_is_reset_when_the_loop_passes() -> None:
    workflow = parse(NESTED)
    state, _ = _fail(workflow, at(workflow, "test"), "T")
    assert "test" in state.progress
    passed = advance(workflow, state.replace(next_index=workflow.step_index("test")), result("test", "ok", True))
    assert "test" not in passed.state.progress
    # The outer review sends the run back; the inner command fails as it once did, on that tree.
    again, stop = _fail(workflow, passed.state, "T")
    assert stop is None, "the pass before passed: this failure is not 'the same as the pass before'"
    assert again.next_index == workflow.step_index("fix")


Script = Callable[[str, int], tuple[str, bool | None]]


def drive(workflow: Workflow, script: Script, limit: int = 100) -> dict[str, int]:
    """Run the transition to the end with `script(step, pass) -> (output, passed)`; how many
    times each step ran."""
    state, runs = RunState("t", "w", "d"), {s.id: 0 for s in workflow.steps}
    while state.next_index < len(workflow.steps) and limit:
        step = workflow.steps[state.next_index]
        runs[step.id] += 1
        output, passed = script(step.id, state.passes.get(step.id, 0) + 1)
        moved = advance(workflow, state, result(step.id, output, passed), tree=str(sum(runs.values())))
        assert moved.stop is None
        state, limit = moved.state, limit - 1
    return runs


def test_the_estimates_upper_bound_is_the_real_number_of_passes_of_a_nested_loop() -> None:
    """Every loop passes only at its last allowed pass: the most a run can take."""
    workflow = parse(NESTED)

    def last_pass_only(step: str, passes: int) -> tuple[str, bool | None]:
        if step == "test":
            return "E", passes == 3
        return ("Review status: pass" if passes == 2 else "Review status: revise"), None

    runs = drive(workflow, last_pass_only)
    assert runs == {"implement": 2, "fix": 6, "test": 6, "review": 2}
    assert estimate.passes(workflow) == runs
