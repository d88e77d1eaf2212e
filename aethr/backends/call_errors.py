"""What a failed model call tells the user: one message and one hint per kind of failure,
the same for every provider, with the provider's own words scrubbed of anything like a key.

The kinds come from `backends.failures.classify`; this module only words them.
"""

from __future__ import annotations

import re
from types import ModuleType

from aethr import sensitive
from aethr.backends import Request, failures
from aethr.backends.stream import Hung
from aethr.errors import StepFailed


def provider(model: str) -> str:
    """LiteLLM's provider prefix of `model` (`openai` when it has none, as LiteLLM assumes)."""
    return model.split("/", 1)[0] if "/" in model else "openai"


def _scrub(text: str) -> str:
    """Provider text without any key set in the environment, nor anything shaped like a key."""
    return re.sub(r"\b(sk|key|tok)-[A-Za-z0-9_\-]{8,}", r"\1-****", sensitive.mask(text))


def _timed_out(exc: Exception, request: Request, tries: str) -> tuple[str, str]:
    """Which time limit ran out, and the variable that raises it."""
    hung = next((item for item in failures.chain(exc) if isinstance(item, Hung)), None)
    if hung is None:
        limit = max(request.endpoint.first_byte, request.endpoint.idle)
        return f"no answer within {limit:g}s{tries}", "raise AETHR_IDLE_TIMEOUT, then resume"
    return f"{hung.what} within {hung.seconds:g}s{tries}", f"raise {hung.variable}, then resume"


def failure(litellm: ModuleType, exc: Exception, request: Request, attempts: int, streamed: bool) -> StepFailed:
    """One message and hint per kind of failure, the same for every provider."""
    who = f"step '{request.step_id}' (role {request.role}, model {request.model})"
    tries = f" after {attempts} attempt(s)" if attempts > 1 else ""
    kind = failures.classify(litellm, exc)
    status = failures.status_of(exc)
    said = failures.detail(exc, _scrub)
    provider_name = provider(request.model or "")
    base = failures.BASE_URL_VARIABLES.get(provider_name, f"the {provider_name} base URL")
    if streamed:
        what = failures.short(kind, status)
        return StepFailed(f"{who}: the answer broke off part-way ({what}): {said}", hint="resume to run the step again")
    table: dict[str, tuple[str, str | None]] = {
        "auth": (
            "the provider rejected the API key (401)",
            f"check the key: `aethr auth status`, then `aethr auth login {provider_name}`",
        ),
        "permission": (
            f"the key may not use this model (403): {said}",
            "check the key's access to this model, or choose another in `models:`",
        ),
        "not_found": (
            f"the provider does not know this model or endpoint (404): {said}",
            f"check `models:` in the workflow (or AETHR_MODEL) and {base}",
        ),
        "context": (
            "the prompt is longer than the model's context window",
            "narrow the step's context, or use history_visibility: latest or summary",
        ),
        "bad_request": (f"the provider refused the request ({status or 400}): {said}", None),
        "rate_limit": (f"rate limited (429){tries}", "wait a minute, then resume"),
        "timeout": _timed_out(exc, request, tries),
        "cut": (f"the stream ended without a finish reason (the connection was cut){tries}", "resume to retry"),
        "unreachable": (
            f"cannot reach the provider{tries}",
            f"check that the server is up and {base}, then resume",
        ),
        "server": (f"the provider failed ({status}){tries}: {said}", "resume later"),
    }
    message, hint = table.get(kind, (f"the call failed{tries}: {said}", "resume to retry"))
    return StepFailed(f"{who}: {message}", hint=hint)
