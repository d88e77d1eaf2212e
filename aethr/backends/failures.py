"""What went wrong with a model call, by type and status, whichever provider raised it.

LiteLLM wraps provider errors, sometimes twice (`MidStreamFallbackError` around a
Gemini 429, `InternalServerError` around a refused connection). `classify` walks
the whole chain (`original_exception`, `__cause__`, `__context__`) and answers one
kind; the same table of messages and hints then serves every provider:

    unreachable  a refused or failed connection     retried, then "cannot reach" + base URL
    timeout      no answer, or a stall after headers retried, then "no answer within"
    cut          a stream that ended without finish retried (before any text)
    rate_limit   429                                retried, honouring Retry-After
    server       5xx                                retried, then "the provider failed"
    auth 401, permission 403, not_found 404, context, bad_request 400/422: final at once
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from aethr.backends.stream import Hung

RETRIED = frozenset({"unreachable", "timeout", "cut", "rate_limit", "server"})
_BY_STATUS = {401: "auth", 402: "bad_request", 403: "permission", 404: "not_found", 408: "timeout"}
_BY_STATUS |= {400: "bad_request", 413: "context", 422: "bad_request", 429: "rate_limit"}
# The variable that sets each provider's endpoint, for "check the base URL" hints.
BASE_URL_VARIABLES = {
    "openai": "OPENAI_API_BASE (or OPENAI_BASE_URL)",
    "anthropic": "ANTHROPIC_API_BASE (or ANTHROPIC_BASE_URL)",
    "gemini": "GEMINI_API_BASE",
    "litellm_proxy": "LITELLM_PROXY_API_BASE",
    "openrouter": "OPENROUTER_API_BASE",
}
_CLASS_NAMES = re.compile(r"(?:litellm\.)?\b[A-Z]\w*(?:Error|Exception)\b(?::| -)?\s*")


class StreamCut(Exception):
    """The stream ended without a finish reason from the provider: the answer was cut."""


def chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception it wraps, each once."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop(0)
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        wrapped = getattr(item, "original_exception", None)
        todo += [wrapped if isinstance(wrapped, BaseException) else None, item.__cause__, item.__context__]


def classify(litellm: Any, exc: BaseException) -> str:
    """The kind of failure (see the module doc), from types first and status codes second."""
    import httpx
    import openai

    found = list(chain(exc))
    for item in found:
        if isinstance(item, StreamCut):
            return "cut"
        if isinstance(item, Hung):
            return "timeout"
        if isinstance(item, litellm.ContextWindowExceededError):
            return "context"
        if isinstance(item, openai.APITimeoutError | httpx.TimeoutException):
            return "timeout"
    for item in found:
        if isinstance(item, openai.APIConnectionError | httpx.ConnectError | ConnectionError):
            return "unreachable"
    for item in found:
        status = getattr(item, "status_code", None)
        if isinstance(status, int) and status in _BY_STATUS:
            return _BY_STATUS[status]
        if isinstance(status, int) and status >= 500:
            return "server"
    return "other"


_SHORT = {
    "rate_limit": "rate limited (429)",
    "timeout": "timed out",
    "cut": "the stream was cut",
    "unreachable": "connection failed",
}


def retry_reason(kind: str, exc: BaseException) -> str:
    """Why a call is retried, as the retry line says it: for a timeout, which limit ran out
    and the variable (or key) that raises it, so a user who waits knows what to change."""
    hung = next((item for item in chain(exc) if isinstance(item, Hung)), None)
    if hung is not None:
        return f"{hung.what} within {hung.seconds:g}s (the {hung.limit}; raise {hung.variable})"
    if kind == "timeout":
        return "timed out (the request timeout; raise AETHR_TIMEOUT or the step's `timeout`)"
    return short(kind, status_of(exc))


def short(kind: str, status: int | None) -> str:
    """The kind of failure in a few words."""
    return _SHORT.get(kind) or (f"provider error ({status})" if status else "the call failed")


def retry_after(exc: BaseException) -> float | None:
    """The wait the provider (or a gateway in front of it) asked for, in seconds."""
    for item in chain(exc):
        headers = getattr(item, "litellm_response_headers", None) or getattr(
            getattr(item, "response", None), "headers", None
        )
        if not headers:
            continue
        for name in ("retry-after", "llm_provider-retry-after"):
            try:
                value = headers.get(name)
            except AttributeError:
                break
            if value is None:
                continue
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):
                continue
    return None


def status_of(exc: BaseException) -> int | None:
    for item in chain(exc):
        status = getattr(item, "status_code", None)
        if isinstance(status, int):
            return status
    return None


def detail(exc: BaseException, scrub: Any) -> str:
    """The provider's own words, without LiteLLM's class names, keys scrubbed, one line."""
    text = str(getattr(exc, "message", "") or exc)
    text = _CLASS_NAMES.sub("", scrub(text))
    return " ".join(text.split())[:300]


def _headers(item: Any) -> Any:
    return getattr(item, "litellm_response_headers", None) or getattr(getattr(item, "response", None), "headers", None)


def from_gateway(exc: BaseException) -> bool:
    """True when a LiteLLM proxy answered (its `x-litellm-…` headers): it already retried."""
    for item in chain(exc):
        headers = _headers(item)
        try:
            names = [str(name).lower() for name in headers or ()]
        except TypeError:
            continue
        if any(name.startswith(("x-litellm-", "llm_provider-x-litellm-")) for name in names):
            return True
    return False


def gateway_cost(response: Any) -> tuple[float | None, str | None]:
    """What a LiteLLM proxy says of the call: the cost it reports (`x-litellm-response-cost`,
    sent on answers that do not stream) and the upstream model it names
    (`x-litellm-model-name`, sent on streams too, whose cost is not known when headers go)."""
    headers = getattr(response, "_response_headers", None) or {}
    try:
        value, upstream = headers.get("x-litellm-response-cost"), headers.get("x-litellm-model-name")
        return (float(value) if value is not None else None), (str(upstream) if upstream else None)
    except (AttributeError, TypeError, ValueError):
        return None, None
