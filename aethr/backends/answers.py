"""Whether a model's finished answer is a whole one: not empty, and not cut at its limit.

A provider that stops an answer at the output limit says so with the finish reason
`length`, and the text it sent is then only the start of an answer: a review cut
before its `Review status:` line, a plan cut mid-step. Taken as whole it would pass
on as if complete, so it fails the step instead, naming the limit and the key that
raises it, unless the step says it takes a cut answer (`allow_truncated: true`),
in which case the run says that it was cut.
"""

from __future__ import annotations

from aethr.backends import Emit, Request
from aethr.errors import StepFailed
from aethr.events import Notice
from aethr.usage import Usage


def check_whole(request: Request, text: str, reason: object, spent: Usage, emit: Emit) -> None:
    """Raise StepFailed (carrying `spent`) for an empty answer or, unless the step allows it,
    one cut at its output limit; a Notice for a cut answer that is allowed."""
    who = f"step '{request.step_id}' (role {request.role}, model {request.model})"
    if not text.strip():
        raise StepFailed(
            f"{who}: the model's answer was empty",
            hint="resume to ask again; if it keeps happening, check the model and the endpoint",
            usage=spent,
        )
    if reason != "length":
        return
    cut = _limit(request)
    if request.endpoint.allow_truncated:
        emit(Notice(request.step_id, f"the answer was cut at {cut}; taken as it is (allow_truncated)"))
        return
    if request.endpoint.cap_limited:
        fix = "raise the spend cap (--max-cost or `max_cost:`), then resume"
    else:
        fix = f"raise `max_output_tokens` on step '{request.step_id}' in the workflow, then resume"
    raise StepFailed(
        f"{who}: the answer was cut at {cut} (finish reason `length`), so it is not a whole answer",
        hint=f"{fix} (or set `allow_truncated: true` on the step to take a cut answer)",
        usage=spent,
    )


def _limit(request: Request) -> str:
    """The output limit an answer ran into, in words: the step's, the spend cap's or the model's."""
    limit = request.endpoint.max_tokens
    if request.endpoint.cap_limited:
        return f"{limit} tokens, all that the rest of the spend cap pays for"
    return f"its output limit of {limit} tokens" if limit else "the model's own output limit"
