"""A model step with an output schema: its answer validated, asked for again once.

`Checked` wraps the step's real backend (LiteLLM, or the mock) behind the same protocol,
so the executor neither knows nor asks whether a step answers in JSON. See `structured`
for the rules; this is where they run.
"""

from __future__ import annotations

import json
from pathlib import Path

from aethr import structured
from aethr.backends import Backend, Completion, Emit, Endpoint, Request
from aethr.events import Notice
from aethr.schema import Step
from aethr.structured import OutputSpec


class Checked:
    def __init__(self, inner: Backend, spec: OutputSpec) -> None:
        self.inner = inner
        self.spec = spec
        self.edits_tree = inner.edits_tree
        self.free = inner.free

    def check_ready(self, step: Step, model: str | None, root: Path, endpoint: Endpoint) -> None:
        self.inner.check_ready(step, model, root, endpoint)

    def complete(self, request: Request, emit: Emit) -> Completion:
        """The answer as its JSON value, once it fits the schema. Raises StepFailed (with
        what both calls spent) when the second answer does not fit either."""
        spec = self.spec
        request = request._replace(output=spec)  # the live backend asks for structured output from it
        first = self.inner.complete(request, emit)
        value, problems = structured.validated(first.text, spec.schema)
        if not problems:
            return first._replace(text=_dump(value))
        shown = "; ".join(problems[:3])
        emit(Notice(request.step_id, f"the answer does not fit its output schema ({shown}); asking again once"))
        retry = request._replace(prompt=structured.again(request.prompt, first.text, problems))
        second = self.inner.complete(retry, emit)
        usage = first.usage + second.usage
        value, problems = structured.validated(second.text, spec.schema)
        if problems:
            error = structured.failure(request.step_id, problems)
            error.usage = usage
            raise error
        return second._replace(text=_dump(value), usage=usage)


def _dump(value: object) -> str:
    """The step's output: its JSON value, indented for the reader and for `step:` context."""
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"
