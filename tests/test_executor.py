"""The executor in-process: a scripted backend, a list sink, real checkpoints in a temp folder.

These pin the run's rules (loops, spend, failures, the bug boundary) without a
process per case; the CLI tests show the same behaviours end to end.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aethr import checkpoint
from aethr.backends import Backend, Completion, Emit, Endpoint, Request
from aethr.config import parse
from aethr.context import estimate_tokens
from aethr.errors import AethrError, InternalError, Interrupted, LoopExhausted, StepFailed
from aethr.events import Event, LoopIteration, RunFailed, RunFinished, StepFinished, TextChunk, UsageReported
from aethr.executor import Durability, Executor
from aethr.schema import Step
from aethr.usage import Usage
from tests.conftest import REVIEW_LOOP

Reply = str | BaseException | Callable[[Request, Emit], Completion]


class Scripted:
    """A backend whose replies are given in order: text, an exception to raise, or a function."""

    edits_tree = False

    def __init__(self, replies: list[Reply], *, free: bool = True) -> None:
        self.replies = list(replies)
        self.free = free
        self.requests: list[Request] = []

    def check_ready(self, step_id: str, model: str | None, root: Path, endpoint: Endpoint) -> None:
        pass

    def complete(self, request: Request, emit: Emit) -> Completion:
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            return reply(request, emit)
        emit(TextChunk(request.step_id, reply))
        return Completion(reply, Usage(10, 5, 0.01))


class Router:
    mode = "mock"

    def __init__(self, backend: Backend, follows_loops: bool = True) -> None:
        self.backend = backend
        self.follows_loops = follows_loops

    def model_for(self, step: Step) -> str | None:
        return None

    def timeout_for(self, step: Step) -> float:
        return 10.0

    def endpoint_for(self, step: Step) -> Endpoint:
        return Endpoint()

    def command_for(self, step: Step) -> None:
        return None

    def check_window(self, step: Step, prompt: str) -> None:
        return None

    def price_for(self, step: Step) -> None:
        return None

    def output_for(self, step: Step) -> None:
        return None

    def for_step(self, step: Step) -> Backend:
        return self.backend


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


def run(tmp_path: Path, text: str, backend: Backend, **router: bool) -> tuple[Executor, Sink, Path]:
    sink = Sink()
    path = tmp_path / "run.json"
    durability = Durability(path, checkpoint.save, lambda: None)
    executor = Executor(parse(text), tmp_path, Router(backend, **router), sink, durability)
    return executor, sink, path


def test_a_loop_revises_then_passes(tmp_path: Path) -> None:
    backend = Scripted(["built", "Review status: revise", "built again", "Review status: pass"])
    executor, sink, _path = run(tmp_path, REVIEW_LOOP, backend)
    state = executor.run(executor.new_state("task"))
    assert [e.passed for e in sink.of(LoopIteration)] == [False, True]  # type: ignore[attr-defined]
    assert "Review status: pass" in backend.requests[1].prompt, "the controller is told its reply format"
    assert backend.requests[1].done_marker == "Review status: pass"
    assert state.spent == Usage(40, 20, pytest.approx(0.04))
    assert isinstance(sink.events[-1], RunFinished) and sink.events[-1].usage == state.spent


def test_an_exhausted_loop_points_the_checkpoint_back_into_it(tmp_path: Path) -> None:
    backend = Scripted(["a", "no status", "b", "Review status: revise"])
    executor, sink, path = run(tmp_path, REVIEW_LOOP, backend)
    with pytest.raises(LoopExhausted) as caught:
        executor.run(executor.new_state("task"))
    assert caught.value.checkpoint == str(path)
    saved = checkpoint.load(path)
    assert saved.next_index == 0 and saved.passes == {}
    assert "counted as revise" in sink.of(LoopIteration)[0].reason  # type: ignore[attr-defined]


def test_a_preview_runs_a_loop_once(tmp_path: Path) -> None:
    backend = Scripted(["a", "no status"])
    executor, sink, _ = run(tmp_path, REVIEW_LOOP, backend, follows_loops=False)
    executor.run(executor.new_state("task"))
    assert len(backend.requests) == 2 and sink.of(LoopIteration) == []


def test_a_bug_in_a_step_is_an_internal_error_that_keeps_the_checkpoint(tmp_path: Path) -> None:
    backend = Scripted(["built", RuntimeError("boom")])
    executor, sink, path = run(tmp_path, REVIEW_LOOP, backend)
    with pytest.raises(InternalError) as caught:
        executor.run(executor.new_state("task"))
    assert caught.value.exit_code == 70
    assert caught.value.checkpoint == str(path) and path.exists()
    assert "RuntimeError: boom" in caught.value.message
    failed = sink.events[-1]
    assert isinstance(failed, RunFailed) and failed.exit_code == 70 and failed.step_id == "review"
    assert [r.step_id for r in checkpoint.load(path).results] == ["implement"]


def test_a_failed_step_adds_what_it_spent_to_the_run(tmp_path: Path) -> None:
    backend = Scripted(["built", StepFailed("cut", usage=Usage(7, 3, None))])
    executor, sink, path = run(tmp_path, REVIEW_LOOP, backend)
    with pytest.raises(StepFailed):
        executor.run(executor.new_state("task"))
    failed = sink.events[-1]
    assert isinstance(failed, RunFailed)
    assert failed.usage == Usage(17, 8, 0.01, at_least=True), "an unknown part keeps what is known, as a floor"
    assert checkpoint.load(path).spent == failed.usage, "the checkpoint keeps the run's spend"


def _agent_then_ctrl_c(request: Request, emit: Emit) -> Completion:
    emit(UsageReported(request.step_id, Usage(100, 50, 0.5)))
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (_agent_then_ctrl_c, Usage(110, 55, pytest.approx(0.51), at_least=True)),
        (KeyboardInterrupt(), "prompt"),
    ],
    ids=["reported-then-interrupted", "interrupted-before-any-report"],
)
def test_an_interrupted_step_counts_what_it_reported_as_a_floor(
    tmp_path: Path, reply: Reply, expected: Usage | str
) -> None:
    backend = Scripted(["built", reply], free=False)
    executor, sink, _path = run(tmp_path, REVIEW_LOOP, backend)
    with pytest.raises(Interrupted):
        executor.run(executor.new_state("task"))
    failed = sink.events[-1]
    assert isinstance(failed, RunFailed) and failed.exit_code == 130
    if expected == "prompt":  # nothing reported: the call in flight counts its prompt, at an unknown price
        expected = Usage(10 + estimate_tokens(backend.requests[1].prompt), 5, pytest.approx(0.01), at_least=True)
    assert failed.usage == expected


def test_a_simulated_agent_hands_its_note_to_later_steps(tmp_path: Path) -> None:
    text = REVIEW_LOOP.replace("    role: implementer\n", "    role: implementer\n    backend: opencode\n")
    text = text.replace("    role: reviewer\n", "    role: reviewer\n    context: [latest_diff]\n")

    def simulated(request: Request, emit: Emit) -> Completion:
        return Completion("pretend", Usage(), "step 'implement' was simulated")

    backend = Scripted([simulated, "Review status: pass"])
    executor, _, _ = run(tmp_path, text, backend)
    state = executor.run(executor.new_state("task"))
    assert state.latest is not None and state.latest.note == "step 'implement' was simulated"
    assert "step 'implement' was simulated" in backend.requests[1].prompt


def test_errors_carry_their_exit_codes() -> None:
    codes = {cls.__name__: int(cls("x").exit_code) for cls in AethrError.__subclasses__()}
    assert codes["StepFailed"] == 1 and codes["InternalError"] == 70 and codes["Interrupted"] == 130


class InterruptedWhileShown(Sink):
    """A sink whose user presses Ctrl-C while the first finished step is shown."""

    def emit(self, event: Event) -> None:
        super().emit(event)
        if isinstance(event, StepFinished) and len(self.of(StepFinished)) == 1:
            raise KeyboardInterrupt


def test_ctrl_c_while_a_finished_step_is_shown_never_repeats_it_on_resume(tmp_path: Path) -> None:
    backend = Scripted(["built", "Review status: pass"])
    sink = InterruptedWhileShown()
    path = tmp_path / "run.json"
    executor = Executor(
        parse(REVIEW_LOOP), tmp_path, Router(backend), sink, Durability(path, checkpoint.save, lambda: None)
    )
    with pytest.raises(Interrupted):
        executor.run(executor.new_state("task"))
    saved = checkpoint.load(path)
    assert saved.next_index == 1 and [r.step_id for r in saved.results] == ["implement"], "saved before shown"
    assert saved.spent == Usage(10, 5, 0.01), "and its spend counted once"
    resumed = Executor(
        parse(REVIEW_LOOP), tmp_path, Router(backend), Sink(), Durability(path, checkpoint.save, lambda: None)
    )
    final = resumed.run(saved, resumed_from=str(path))
    assert [r.step_id for r in final.results] == ["implement", "review"]
    assert [r.step_id for r in backend.requests] == ["implement", "review"], "implement ran once"
