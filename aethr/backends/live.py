"""Model steps through LiteLLM: streaming, bounded retries, usage and cost.

litellm is imported only here, inside functions (it costs seconds), with
LITELLM_LOCAL_MODEL_COST_MAP=True so it never fetches its price list.
`preload()` starts that import on a thread so it overlaps aethr's own start-up.

Retries: at most 3 attempts, with exponential backoff and jitter (or the
provider's Retry-After), on 429, 5xx, connection errors, timeouts and cut
streams, and only before the first streamed text, so output is never shown
twice. 400, 401, 403, 404 and context-window errors are final at once. Errors
are classified by type and status, whichever provider raised them
(`backends.failures`), and each kind has one message and one hint.

A stream counts as finished only when the provider itself sent a finish reason.
A stream that ends with no text and no finish reason may be a server that
ignores streaming and answered with one JSON body (which the streaming parser
cannot read): the retry asks without streaming.
"""

from __future__ import annotations

import gc
import logging
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from aethr import prompt_cache, settings
from aethr.backends import Completion, Emit, Endpoint, Request, answers, billed, call_errors, failures, local
from aethr.backends import stream as stream_mod
from aethr.backends.call_errors import provider
from aethr.backends.failures import StreamCut
from aethr.backends.stream import Limits
from aethr.context import estimate_tokens
from aethr.errors import EnvironmentNotReady, StepFailed
from aethr.events import Retrying, TextChunk
from aethr.usage import Usage

if TYPE_CHECKING:
    from aethr.schema import Step

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


class LiteLLMBackend:
    edits_tree = False
    free = False

    def check_ready(self, step: Step, model: str | None, root: Path, endpoint: Endpoint) -> None:
        """Raise EnvironmentNotReady naming the variable and the fix if the model's key is missing:
        the role's own `api_key_env`, or the provider's key as LiteLLM knows it (a LiteLLM proxy's
        included)."""
        step_id = step.id
        if model is None:
            return
        if endpoint.api_key_env or local.is_ollama(model):  # Ollama takes no key; its base has a default
            self.check_endpoint(step_id, model, endpoint)
            return
        missing = _missing_keys(_litellm(), model)
        if not missing:
            return
        name = provider(model)
        login = f"aethr auth login {name}" if name in AUTH_PROVIDERS else None
        fix = f"run `{login}` or " if login else ""
        raise EnvironmentNotReady(
            f"step '{step_id}' uses {model}, which needs {' or '.join(missing)}, and it is not set",
            hint=f"{fix}export {missing[0]}=… (a project .env is loaded too)",
        )

    def check_endpoint(self, step_id: str, model: str, endpoint: Endpoint) -> None:
        """A role with its own `api_key_env` needs that variable (unless it is `none`)."""
        name = endpoint.api_key_env
        if name and name != "none" and not settings.env_value(name):
            raise EnvironmentNotReady(
                f"step '{step_id}' uses {model} at {endpoint.api_base or 'its endpoint'}, whose key "
                f"is in {name}, and it is not set",
                hint=f"export {name}=… (a project .env is loaded too), or `api_key_env: none` for a keyless server",
            )

    def complete(self, request: Request, emit: Emit) -> Completion:
        litellm = _litellm()
        assert request.model is not None
        # What failed attempts may have cost: a call the provider answered with an error costs
        # nothing, but one that timed out or was cut may have been billed, unknown how much.
        spent = Usage()
        stream, hangs = True, 0
        attempts = 1 + (request.endpoint.retries if request.endpoint.retries is not None else ATTEMPTS - 1)
        if request.endpoint.retries is None and provider(request.model) == "litellm_proxy":
            attempts = 1  # the gateway retries on its own: three times three would reach the provider
        for attempt in range(1, attempts + 1):
            try:
                completion = self._call(litellm, request, emit, stream)
                _gc_settled()
                return completion._replace(usage=spent + completion.usage)
            except StepFailed as failed:  # already a whole message (an empty answer): never wrapped again
                _gc_settled()
                failed.usage = spent + (failed.usage or Usage())
                raise
            except _Streamed as wrapped:
                _gc_settled()
                failure = call_errors.failure(litellm, wrapped.error, request, attempt, streamed=True)
                failure.usage = spent + Usage(estimate_tokens(request.prompt), wrapped.tokens, None)
                raise failure from None
            except Exception as exc:
                kind = failures.classify(litellm, exc)
                if kind in ("timeout", "cut"):
                    spent = spent + Usage(estimate_tokens(request.prompt), 0, None)
                    stream = stream and kind != "cut"
                    hangs += kind == "timeout"
                gateway = request.endpoint.retries is None and failures.from_gateway(exc)
                cold = request.endpoint.local and local.cold_start(exc)  # a retry would restart the load
                final = kind not in failures.RETRIED or attempt >= attempts or hangs > 1 or gateway or cold
                if final:
                    _gc_settled()
                    failure = call_errors.failure(litellm, exc, request, attempt, streamed=False)
                    failure.usage = spent
                    raise failure from None
                delay = failures.retry_after(exc)
                if delay is None:
                    delay = BACKOFF_BASE * 2 ** (attempt - 1) * (0.5 + random.random())
                delay = min(delay, MAX_RETRY_AFTER)
                reason = failures.retry_reason(kind, exc)
                left = attempts - attempt if kind != "timeout" else min(attempts - attempt, 2 - hangs)  # one hang retry
                emit(Retrying(request.step_id, attempt, round(delay, 2), reason, left))
                time.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _call(self, litellm: ModuleType, request: Request, emit: Emit, stream: bool) -> Completion:
        endpoint = request.endpoint
        limits = Limits(endpoint.first_byte, endpoint.idle, request.timeout)
        options = _options(request, stream)
        finish = None
        if stream and provider(request.model or "") == "gemini":
            options["client"], finish = stream_mod.finish_sniffer(b'"finishReason"', endpoint.idle)
        holder: list[Any] = []

        def start() -> Any:
            response = litellm.completion(
                model=request.model,
                messages=[{"role": "user", "content": prompt_cache.content(request.prompt, request.cache_at)}],
                stream=stream,
                timeout=max(endpoint.idle, endpoint.first_byte),
                max_retries=0,
                num_retries=0,
                **options,
            )
            holder.append(response)
            return response if stream else [response]

        chunks = stream_mod.watched(start, limits)
        if not stream:
            return self._whole(request, next(iter(chunks)), emit)
        return self._streamed(request, chunks, emit, lambda: finish.seen if finish else None, holder)

    def _whole(self, request: Request, response: Any, emit: Emit) -> Completion:
        """An answer asked for in one piece (a server that ignores streaming)."""
        choice = response.choices[0]
        text = getattr(choice.message, "content", None) or ""
        if not getattr(choice, "finish_reason", None):
            raise StreamCut("the answer ended without a finish reason")
        if text:
            emit(TextChunk(request.step_id, text))
        return self._finish(request, text, getattr(response, "usage", None), response, choice.finish_reason, emit)

    def _streamed(
        self, request: Request, chunks: Any, emit: Emit, sniffed: Callable[[], bool | None], holder: list[Any]
    ) -> Completion:
        """A streamed answer, each piece shown as it comes; finished only by the provider's own word."""
        parts: list[str] = []
        usage, reason = None, None
        try:
            for chunk in chunks:
                for choice in getattr(chunk, "choices", None) or []:
                    delta = getattr(getattr(choice, "delta", None), "content", None)
                    if delta:
                        parts.append(delta)
                        emit(TextChunk(request.step_id, delta))
                    reason = getattr(choice, "finish_reason", None) or reason
                usage = getattr(chunk, "usage", None) or usage
            # LiteLLM's stream wrapper adds a synthetic "stop" when the provider sent no finish
            # reason (a cut connection); only the reason the provider really sent counts.
            seen = sniffed()
            finished = seen if seen is not None else bool(getattr(holder[0], "received_finish_reason", None))
            if not finished:
                raise StreamCut("the stream ended without a finish reason (the connection was cut)")
        except Exception as exc:
            if parts:
                raise _Streamed(exc, estimate_tokens("".join(parts))) from None
            raise
        return self._finish(request, "".join(parts), usage, holder[0], reason, emit)

    def _finish(self, request: Request, text: str, usage: Any, response: Any, reason: Any, emit: Emit) -> Completion:
        spent = billed.usage_of(request, text, usage, response)
        answers.check_whole(request, text, reason, spent, emit)
        local.check_counted(request, spent, estimate_tokens(request.prompt))
        return Completion(text, spent)


def _options(request: Request, stream: bool) -> dict[str, Any]:
    """The call's options beyond the model and the message: limits, endpoint, answer format."""
    endpoint = request.endpoint
    options: dict[str, Any] = {"stream_options": {"include_usage": True}} if stream else {}
    if endpoint.max_tokens:
        options["max_tokens"] = endpoint.max_tokens
    if request.output is not None and request.output.enforced:
        from aethr.structured import response_format

        options["response_format"] = response_format(request.output)
    if endpoint.api_base:
        options["api_base"] = endpoint.api_base
    if endpoint.num_ctx:
        options["num_ctx"] = endpoint.num_ctx  # Ollama's window, fitted to the prompt (`backends.local`)
    if endpoint.api_key_env:
        # A keyless local server still needs some key for LiteLLM's client; it is never sent anywhere else.
        options["api_key"] = settings.env_value(endpoint.api_key_env) or "aethr-keyless"
    return options


def _missing_keys(litellm: ModuleType, model: str) -> list[str]:
    if provider(model) == "litellm_proxy":
        # LiteLLM's own check does not ask for the proxy's key; a call without it fails late.
        return [] if settings.env_value("LITELLM_PROXY_API_KEY") else ["LITELLM_PROXY_API_KEY"]
    try:
        found = litellm.validate_environment(model=model)
    except Exception:
        return []  # an unknown provider fails on the call itself, with a clearer message
    missing = [str(k) for k in found.get("missing_keys", [])]
    return [] if found.get("keys_in_environment") else missing


class _Streamed(Exception):
    """A failure after text was already shown: never retried, so output is never duplicated."""

    def __init__(self, error: Exception, tokens: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.tokens = tokens
