"""Backends that call nothing: the deterministic mock and the prompt preview."""

from __future__ import annotations

import json
import re
from pathlib import Path

from aethr.backends import Completion, Emit, Endpoint, Request
from aethr.context import estimate_tokens
from aethr.errors import ConfigError, StepFailed
from aethr.events import TextChunk, Usage
from aethr.prompts import preview_placeholder

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

    With a script (a JSON list of strings), each call takes the next reply in
    order; running out is an error rather than a silent default, so a scripted
    loop test cannot pass by accident.
    """

    edits_tree = False
    free = True

    def __init__(self, script: Path | None) -> None:
        self._script_path = script
        self._script: list[str] | None = None
        self._used = 0

    def _scripted(self, step_id: str) -> str | None:
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

    def check_ready(self, step_id: str, model: str | None, root: Path, endpoint: Endpoint) -> None:
        if self._script_path is not None and self._script is None:
            self._script = _load_script(self._script_path)

    def complete(self, request: Request, emit: Emit) -> Completion:
        text = self._scripted(request.step_id)
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
        return Completion(text, Usage(estimate_tokens(request.prompt), estimate_tokens(text), 0.0), simulated)


class PreviewBackend:
    """`--show-prompt`: the prompt is shown, nothing is called."""

    edits_tree = False
    free = True

    def check_ready(self, step_id: str, model: str | None, root: Path, endpoint: Endpoint) -> None:
        pass

    def complete(self, request: Request, emit: Emit) -> Completion:
        simulated = None
        if request.backend != "model":
            simulated = f"[the changes made by step '{request.step_id}' will appear here when the workflow runs]"
        return Completion(
            preview_placeholder(request.step_id), Usage(estimate_tokens(request.prompt), 0, 0.0), simulated
        )


def _load_script(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"AETHR_MOCK_RESPONSES: {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"AETHR_MOCK_RESPONSES: {path} is not valid JSON: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ConfigError(f"AETHR_MOCK_RESPONSES: {path} must hold a JSON list of strings")
    return data
