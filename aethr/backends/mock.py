"""Backends that call nothing: the deterministic mock and the prompt preview."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aethr.backends import Completion, Emit, Endpoint, Request
from aethr.context import estimate_tokens
from aethr.errors import ConfigError, StepFailed
from aethr.events import Notice, TextChunk
from aethr.prompts import preview_placeholder
from aethr.usage import Usage

if TYPE_CHECKING:
    from aethr.schema import Step

Reply = str | dict[str, object]
Shown = Callable[[Request], str | None]  # the command line an agent step would start
_REPLIES: dict[str, str] = {
    "planner": "Plan for: {task}\n1. Read the code the task touches.\n2. Make the smallest change "
    "that does it.\n3. Add or update a test that shows it works.",
    "implementer": "Implementation for: {task}\nFollowed the plan step by step; the change is ready for review.",
    "reviewer": "Review of: {task}\nNo high or medium findings.",
    "debugger": "Diagnosis for: {task}\nMost likely cause: the input is not validated before use.",
    "writer": "Docs update for: {task}\nThe README now describes the change.",
    "test-planner": "Test plan for: {task}\n- the ordinary case\n- an empty input\n- a bad input",
    "test-writer": "Tests for: {task}\ndef test_ordinary_case():\n    assert True  # (mock)",
}


class MockBackend:
    """Deterministic replies that mention the task and the step, streamed in chunks.

    With a script (a JSON list), each call takes the next reply in order; running
    out is an error rather than a silent default, so a scripted loop test cannot
    pass by accident. A reply is a string, or for a `run:` step an object
    `{"exit_code": 1, "output": "…"}`; unscripted, a command "passes" unrun.
    """

    edits_tree = False
    free = True

    def __init__(self, script: Path | None, shown: Shown = lambda request: None) -> None:
        self._shown = shown
        self._script_path = script
        self._script: list[Reply] | None = None
        self._used = 0

    def _scripted(self, step_id: str) -> Reply | None:
        if self._script_path is None:
            return None
        if self._script is None:
            self._script = _load_script(self._script_path)
        if self._used >= len(self._script):
            raise StepFailed(
                f"step '{step_id}': AETHR_MOCK_RESPONSES ({self._script_path}) has only "
                f"{len(self._script)} replies and all were used",
                hint="add more replies to the file, or unset AETHR_MOCK_RESPONSES",
            )
        reply = self._script[self._used]
        self._used += 1
        return reply

    def check_ready(self, step: Step, model: str | None, root: Path, endpoint: Endpoint) -> None:
        if self._script_path is not None and self._script is None:
            self._script = _load_script(self._script_path)

    def complete(self, request: Request, emit: Emit) -> Completion:
        reply = self._scripted(request.step_id)
        if request.command is not None:
            return _command(request, reply, emit)
        text = reply if isinstance(reply, str) else None if reply is None else json.dumps(reply)
        if text is None and request.output is not None:
            text = _fitting(request)
        if text is None:
            task = " ".join(request.task.split())[:200]
            body = _REPLIES.get(request.role, "Output of the {role} for: {task}").format(task=task, role=request.role)
            if request.backend != "model":
                body += (
                    f"\nSimulated: {request.backend} was not started and no files were changed "
                    "(mock mode; set AETHR_LIVE=1 to run it)."
                )
            text = f"[mock {request.role} · step {request.step_id}]\n{body}"
            if request.done_marker:
                text += f"\n{request.done_marker}"
        for chunk in re.findall(r"\S+\s*|\s+", text):
            emit(TextChunk(request.step_id, chunk))
        simulated = None
        if request.backend != "model":
            simulated = f"step '{request.step_id}' was simulated (mock mode): no files were changed"
            _show_command(request, self._shown, emit)
        return Completion(text, Usage(estimate_tokens(request.prompt), estimate_tokens(text), 0.0), simulated)


class PreviewBackend:
    """`--show-prompt`: the prompt is shown, nothing is called."""

    edits_tree = False
    free = True

    def __init__(self, shown: Shown = lambda request: None) -> None:
        self._shown = shown

    def check_ready(self, step: Step, model: str | None, root: Path, endpoint: Endpoint) -> None:
        pass

    def complete(self, request: Request, emit: Emit) -> Completion:
        simulated = None
        if request.backend != "model":
            _show_command(request, self._shown, emit)
            simulated = f"[the changes made by step '{request.step_id}' will appear here when the workflow runs]"
        return Completion(
            preview_placeholder(request.step_id), Usage(estimate_tokens(request.prompt), 0, 0.0), simulated
        )


def _fitting(request: Request) -> str:
    """A mock answer that fits the step's output schema: its minimal instance."""
    from aethr.jsoninstance import minimal
    from aethr.structured import validated

    assert request.output is not None
    text = json.dumps(minimal(request.output.schema), indent=2)
    if validated(text, request.output.schema)[1]:
        raise ConfigError(
            f"step '{request.step_id}': mock mode cannot make an answer that fits its output schema",
            hint="script the answer with AETHR_MOCK_RESPONSES, or run it live",
        )
    return text


def _show_command(request: Request, shown: Shown, emit: Emit) -> None:
    command = shown(request)
    if command:
        emit(Notice(request.step_id, f"a live run starts: {command}"))


def _command(request: Request, reply: Reply | None, emit: Emit) -> Completion:
    """A `run:` step in a mock run: nothing runs; the scripted result, or a pass."""
    assert request.command is not None
    code, output = 0, "(mock mode: the command was not run; --exec-commands runs it)\n"
    if isinstance(reply, dict):
        exit_code = reply.get("exit_code", 0)
        code, output = (exit_code if isinstance(exit_code, int) else 0), str(reply.get("output", ""))
    elif isinstance(reply, str):
        output = reply
    output = output if not output or output.endswith("\n") else output + "\n"
    passed = code in request.command.ok_exit_codes
    emit(TextChunk(request.step_id, output))
    status = f"[exit {code} · {'passed' if passed else 'failed'} · mock]"
    text = f"$ {request.command.shown()}\n{status}\n{output}"
    return Completion(text, Usage(0, 0, 0.0), passed=passed, last_lines=tuple(output.splitlines()[-10:]))


def _load_script(path: Path) -> list[Reply]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"AETHR_MOCK_RESPONSES: {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"AETHR_MOCK_RESPONSES: {path} is not valid JSON: {exc}") from None
    good = isinstance(data, list) and all(isinstance(x, str) or _command_reply(x) for x in data)
    if not good:
        raise ConfigError(
            f"AETHR_MOCK_RESPONSES: {path} must hold a JSON list of strings "
            '(or {"exit_code": N, "output": "…"} objects for run: steps)'
        )
    if not data:
        # An empty script can answer no step: refused here, before the run, not at its first call.
        raise ConfigError(
            f"AETHR_MOCK_RESPONSES: {path} holds no replies; a run needs one per step call",
            hint="add replies to the list, or unset AETHR_MOCK_RESPONSES for the default mock replies",
        )
    return list(data)


def _command_reply(value: object) -> bool:
    return (
        isinstance(value, dict)
        and set(value) <= {"exit_code", "output"}
        and isinstance(value.get("exit_code", 0), int)
        and isinstance(value.get("output", ""), str)
    )
