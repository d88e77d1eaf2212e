"""Model steps through LiteLLM: streaming, bounded retries, usage and cost.

litellm is imported only here, inside functions (it costs seconds), with
LITELLM_LOCAL_MODEL_COST_MAP=True so it never fetches its price list.
`preload()` starts that import on a thread so it overlaps aethr's own start-up.

Retries: at most 3 attempts, with exponential backoff and jitter (or the
provider's Retry-After), on 429, 5xx, connection errors and timeouts — and only
before the first streamed text, so output is never shown twice. 400, 401, 403,
404 and context-window errors are final at once. Errors are mapped by type:

    litellm.AuthenticationError        401  -> key rejected
    litellm.PermissionDeniedError      403  -> no access to the model
    litellm.NotFoundError              404  -> unknown model or endpoint
    litellm.ContextWindowExceededError      -> prompt too long
    litellm.BadRequestError            400  -> request refused
    litellm.RateLimitError             429  -> retried, then rate limited
    litellm.Timeout                         -> retried, then timed out
    litellm.APIConnectionError              -> retried, then unreachable
    litellm.InternalServerError etc.   5xx  -> retried, then provider error
"""

from __future__ import annotations

import gc
import logging
import random
import re
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from aethr import pricing, settings
from aethr.backends import Completion, Emit, Request
from aethr.context import estimate_tokens
from aethr.errors import EnvironmentNotReady, StepFailed
from aethr.events import Retrying, TextChunk, Usage

ATTEMPTS = 3
BACKOFF_BASE = 1.0
MAX_RETRY_AFTER = 60.0
AUTH_PROVIDERS = {"openai", "anthropic", "gemini", "google", "openrouter", "xai"}

_lock = threading.Lock()


def _litellm() -> ModuleType:
    with _lock:
        settings.prepare_litellm()
        if "litellm" not in sys.modules:
            # The import allocates millions of objects: without this the collector walks them
            # again and again (measured: ~0.6 s of a ~2.6 s import). Re-enabled after the
            # first call, which does most of LiteLLM's lazy imports (see `_gc_settled`).
            gc.disable()
        import litellm

        litellm.suppress_debug_info = True
        litellm.telemetry = False
        # aethr takes tokens from the provider's usage (or its own estimate) and uses no LiteLLM
        # callbacks: LiteLLM's own token counting loads a tokenizer on the first call (~0.1 s).
        litellm.disable_token_counter = True
        litellm.disable_streaming_logging = True
        logging.getLogger("LiteLLM").setLevel(logging.ERROR)
        module: ModuleType = litellm
        return module


def _gc_settled() -> None:
    """Move everything imported so far out of the collector's way, and turn it back on."""
    gc.freeze()
    gc.enable()


def preload() -> None:
    """Start importing litellm in the background; the first real use waits for it."""
    threading.Thread(target=_litellm, name="aethr-litellm-import", daemon=True).start()


class StreamCut(Exception):
    """The stream ended without a finish reason: the connection was cut."""


def _provider(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else "openai"


def _scrub(text: str) -> str:
    """Remove any key-like value that is set in the environment from provider text."""
    for value in settings.secret_values():
        text = text.replace(value, "****")
    return re.sub(r"\b(sk|key|tok)-[A-Za-z0-9_\-]{8,}", r"\1-****", text)


class LiteLLMBackend:
    edits_tree = False
    free = False

    def check_ready(self, step_id: str, model: str | None, root: Path) -> None:
        """Raise EnvironmentNotReady naming the variable and the fix if the model's key is missing."""
        if model is None:
            return
        litellm = _litellm()
        try:
            found = litellm.validate_environment(model=model)
        except Exception:
            return  # an unknown provider fails on the call itself, with a clearer message
        missing = [str(k) for k in found.get("missing_keys", [])]
        if found.get("keys_in_environment") or not missing:
            return
        provider = _provider(model)
        login = f"aethr auth login {provider}" if provider in AUTH_PROVIDERS else None
        fix = f"run `{login}` or " if login else ""
        raise EnvironmentNotReady(
            f"step '{step_id}' uses {model}, which needs {' or '.join(missing)}, and it is not set",
            hint=f"{fix}export {missing[0]}=… (a project .env is loaded too)",
        )

    def complete(self, request: Request, emit: Emit) -> Completion:
        litellm = _litellm()
        assert request.model is not None
        # What failed attempts may have cost: a call the provider answered with an error costs
        # nothing, but one that timed out or was cut may have been billed, unknown how much.
        spent = Usage()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                completion = self._stream(litellm, request, emit)
                _gc_settled()
                return completion._replace(usage=spent + completion.usage)
            except _Streamed as wrapped:
                _gc_settled()
                failure = _failure(litellm, wrapped.error, request, attempt, streamed=True)
                failure.usage = spent + Usage(estimate_tokens(request.prompt), wrapped.tokens, None)
                raise failure from None
            except Exception as exc:
                if isinstance(exc, litellm.Timeout | StreamCut):
                    spent = spent + Usage(estimate_tokens(request.prompt), 0, None)
                if not _retryable(litellm, exc) or attempt == ATTEMPTS:
                    _gc_settled()
                    failure = _failure(litellm, exc, request, attempt, streamed=False)
                    failure.usage = spent
                    raise failure from None
                delay = _retry_after(exc)
                if delay is None:
                    delay = BACKOFF_BASE * 2 ** (attempt - 1) * (0.5 + random.random())
                emit(Retrying(request.step_id, attempt, round(delay, 2), _short(litellm, exc)))
                time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _stream(self, litellm: ModuleType, request: Request, emit: Emit) -> Completion:
        response = litellm.completion(
            model=request.model,
            messages=[{"role": "user", "content": request.prompt}],
            stream=True,
            stream_options={"include_usage": True},
            timeout=request.timeout,
            max_retries=0,
            num_retries=0,
        )
        parts: list[str] = []
        finish = None
        usage = None
        try:
            for chunk in response:
                for choice in getattr(chunk, "choices", None) or []:
                    delta = getattr(getattr(choice, "delta", None), "content", None)
                    if delta:
                        parts.append(delta)
                        emit(TextChunk(request.step_id, delta))
                    finish = getattr(choice, "finish_reason", None) or finish
                usage = getattr(chunk, "usage", None) or usage
            # LiteLLM's stream wrapper adds a synthetic "stop" when the provider sent no finish
            # reason (a cut connection); the reason the provider really sent is kept here.
            if hasattr(response, "received_finish_reason"):
                finish = response.received_finish_reason or getattr(response, "intermittent_finish_reason", None)
            if finish is None:
                raise StreamCut("the stream ended without a finish reason (the connection was cut)")
        except Exception as exc:
            if parts:
                raise _Streamed(exc, estimate_tokens("".join(parts))) from None
            raise
        text = "".join(parts)
        return Completion(text, _usage(request.model or "", request.prompt, text, usage))


class _Streamed(Exception):
    """A failure after text was already shown: never retried, so output is never duplicated."""

    def __init__(self, error: Exception, tokens: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.tokens = tokens


def _usage(model: str, prompt: str, text: str, usage: Any) -> Usage:
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0) or estimate_tokens(prompt)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0) or estimate_tokens(text)
    # Not in LiteLLM's price table: unknown (None), never $0.
    return Usage(prompt_tokens, completion_tokens, pricing.cost(model, prompt_tokens, completion_tokens))


def _connection_failed(litellm: ModuleType, exc: BaseException) -> bool:
    """True if a connection error is anywhere in the exception's chain. LiteLLM reports some of
    them (connection refused) as InternalServerError, with the original kept as its context."""
    import openai

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, openai.APIConnectionError) and not isinstance(seen, openai.APITimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _retryable(litellm: ModuleType, exc: Exception) -> bool:
    if isinstance(exc, litellm.ContextWindowExceededError | litellm.BadRequestError):
        return False
    if isinstance(exc, litellm.AuthenticationError | litellm.PermissionDeniedError | litellm.NotFoundError):
        return False
    if isinstance(exc, litellm.RateLimitError | litellm.Timeout | litellm.APIConnectionError | StreamCut):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and status >= 500


def _retry_after(exc: Exception) -> float | None:
    headers = getattr(exc, "litellm_response_headers", None) or getattr(getattr(exc, "response", None), "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except (TypeError, ValueError):
        return None


def _short(litellm: ModuleType, exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    if isinstance(exc, litellm.RateLimitError):
        return "rate limited (429)"
    if isinstance(exc, litellm.Timeout):
        return "timed out"
    if isinstance(exc, StreamCut):
        return "the stream was cut"
    if _connection_failed(litellm, exc):
        return "connection failed"
    return f"provider error ({status})" if status else type(exc).__name__


def _failure(litellm: ModuleType, exc: Exception, request: Request, attempts: int, streamed: bool) -> StepFailed:
    who = f"step '{request.step_id}' (role {request.role}, model {request.model})"
    tries = f" after {attempts} attempt(s)" if attempts > 1 else ""
    status = getattr(exc, "status_code", None)
    detail = _scrub(str(getattr(exc, "message", "") or exc))[:300]
    provider = _provider(request.model or "")
    if streamed:
        return StepFailed(
            f"{who}: the answer broke off part-way ({_short(litellm, exc)}): {detail}",
            hint="resume to run the step again",
        )
    if isinstance(exc, StreamCut):
        return StepFailed(f"{who}: {exc}{tries}", hint="check the endpoint, then resume")
    if isinstance(exc, litellm.AuthenticationError):
        return StepFailed(
            f"{who}: the provider rejected the API key (401)",
            hint=f"check the key: `aethr auth status`, then `aethr auth login {provider}`",
        )
    if isinstance(exc, litellm.PermissionDeniedError):
        return StepFailed(f"{who}: the key may not use this model (403): {detail}")
    if isinstance(exc, litellm.NotFoundError):
        return StepFailed(
            f"{who}: the provider does not know this model or endpoint (404): {detail}",
            hint="check `models:` in the workflow (or AETHR_MODEL) and the provider's base URL",
        )
    if isinstance(exc, litellm.ContextWindowExceededError):
        return StepFailed(
            f"{who}: the prompt is longer than the model's context window",
            hint="narrow the step's context, or use history_visibility: latest or summary",
        )
    if isinstance(exc, litellm.BadRequestError):
        return StepFailed(f"{who}: the provider refused the request ({status or 400}): {detail}")
    if isinstance(exc, litellm.RateLimitError):
        return StepFailed(f"{who}: rate limited (429){tries}", hint="wait a minute, then resume")
    if isinstance(exc, litellm.Timeout):
        return StepFailed(
            f"{who}: no answer within {request.timeout:g}s{tries}",
            hint="raise AETHR_TIMEOUT or the step's `timeout`, then resume",
        )
    if _connection_failed(litellm, exc):
        return StepFailed(
            f"{who}: cannot reach the provider{tries}",
            hint="check the network and the base URL (OPENAI_API_BASE and friends), then resume",
        )
    if isinstance(status, int):
        return StepFailed(f"{who}: the provider failed ({status}){tries}: {detail}", hint="resume later")
    return StepFailed(f"{who}: the call failed{tries}: {type(exc).__name__}: {detail}")
