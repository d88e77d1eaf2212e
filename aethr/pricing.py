"""Prices, context windows and providers from LiteLLM's bundled tables, read as data.

LiteLLM ships `model_prices_and_context_window_backup.json` and
`provider_endpoints_support_backup.json` inside its package. This module finds
them without importing litellm (which costs seconds) and answers, per model: USD
per input and output token (and per cached input token, read from or written to
the provider's prompt cache), and the context window; and which providers LiteLLM
knows. It is the one reader of those tables: the live backend prices calls with
it, the workflow loader checks model names with it, and the estimate and the
spend cap read it too.

A model is looked up the way LiteLLM looks it up: `provider/model` as a key, then
the bare `model` among the entries of that provider. A model not in the table
has no price: callers show "unknown", never $0.
"""

from __future__ import annotations

import functools
import json
import re
from importlib.util import find_spec
from pathlib import Path
from typing import Any, NamedTuple

TABLE_NAME = "model_prices_and_context_window_backup.json"
PROVIDERS_NAME = "provider_endpoints_support_backup.json"
# LiteLLM names some providers' entries differently from the model prefix users write.
_PROVIDER_ALIASES = {"google": "gemini", "gemini": "gemini", "vertex_ai": "vertex_ai-language-models"}


class Price(NamedTuple):
    """USD per token of one model, from LiteLLM's table or a workflow's `prices:` entry."""

    input_per_token: float
    output_per_token: float
    window: int | None = None  # input tokens the model accepts, when the table says
    cached_per_token: float | None = None  # a cache read; None: billed as input
    write_per_token: float | None = None  # a cache write (Anthropic's creation); None: billed as input

    def cost(self, prompt_tokens: int, completion_tokens: int, cached: int = 0, written: int = 0) -> float:
        """USD for calls of `prompt_tokens` input tokens, of which `cached` were read from the
        prompt cache and `written` written to it (each at its own rate, the input rate when the
        price has none), and `completion_tokens` output tokens."""
        cached = min(cached, prompt_tokens)
        written = min(written, prompt_tokens - cached)
        read_rate = self.input_per_token if self.cached_per_token is None else self.cached_per_token
        write_rate = self.input_per_token if self.write_per_token is None else self.write_per_token
        fresh = prompt_tokens - cached - written
        prompt = fresh * self.input_per_token + cached * read_rate + written * write_rate
        return prompt + completion_tokens * self.output_per_token


def table_path(name: str = TABLE_NAME) -> Path | None:
    """A bundled table inside the installed litellm package (found, not imported)."""
    spec = find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    return None


def _read(name: str) -> dict[str, Any]:
    path = table_path(name)
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


_AFTER_KEY = re.compile(rb"\s*:\s*(?={)")


@functools.cache
def _table_bytes() -> bytes:
    path = table_path()
    try:
        return path.read_bytes() if path is not None else b""
    except OSError:
        return b""


@functools.cache
def _lookup(key: str) -> dict[str, Any] | None:
    """The table's top-level entry `key`, parsed alone: the table is 3 MB and parsing all of
    it costs tens of milliseconds, finding one key's offset under one. A key is top-level
    where it opens a line at most one indent deep (nested keys sit two deep); the last such
    occurrence wins, as it does for `json.loads`."""
    data = _table_bytes()
    if not data.startswith(b"{\n"):  # not the layout the scan expects: read it the slow way
        found = _read(TABLE_NAME).get(key) if data else None
        return found if isinstance(found, dict) else None
    found = None
    for quoted in {json.dumps(key).encode(), json.dumps(key, ensure_ascii=False).encode()}:
        at = data.find(quoted)
        while at >= 0:
            line = data.rfind(b"\n", 0, at) + 1
            after = _AFTER_KEY.match(data, at + len(quoted))
            if after and at - line <= 4 and not data[line:at].strip():
                found = after.end() if found is None else max(found, after.end())
            at = data.find(quoted, at + 1)
    return None if found is None else _object_at(data, found)


def _object_at(data: bytes, start: int) -> dict[str, Any] | None:
    """The JSON object that starts at byte `start`, read through a window that grows until
    the object fits (an entry is a few hundred bytes)."""
    size = 4096
    while True:
        chunk = data[start : start + size].decode("utf-8", errors="ignore")
        try:
            value, _ = json.JSONDecoder().raw_decode(chunk)
        except ValueError:
            if start + size >= len(data):
                return None
            size *= 4
            continue
        return value if isinstance(value, dict) else None


@functools.cache
def providers() -> frozenset[str]:
    """Every provider prefix LiteLLM knows (`openai`, `anthropic`, `litellm_proxy`, …)."""
    listed = _read(PROVIDERS_NAME).get("providers")
    return frozenset(listed) if isinstance(listed, dict) else frozenset()


def known_model(name: str) -> bool:
    """True when the table has `name` itself (a bare model name LiteLLM can route)."""
    return _lookup(name) is not None


def entry(model: str) -> dict[str, Any] | None:
    """The table's entry for a LiteLLM model name (`provider/model`), or None."""
    found = _lookup(model)
    if found is not None:
        return found
    provider, _, bare = model.partition("/")
    if not bare:
        provider, bare = "openai", model
    found = _lookup(bare)
    if found is not None and found.get("litellm_provider") in (provider, _PROVIDER_ALIASES.get(provider)):
        return found
    return None


def price(model: str) -> Price | None:
    """USD per token and the context window of `model`, or None when it has no price."""
    found = entry(model)
    if found is None:
        return None
    cost_in, cost_out = found.get("input_cost_per_token"), found.get("output_cost_per_token")
    if not isinstance(cost_in, int | float) or not isinstance(cost_out, int | float):
        return None
    read, write = found.get("cache_read_input_token_cost"), found.get("cache_creation_input_token_cost")
    return Price(float(cost_in), float(cost_out), window(model), _rate(read), _rate(write))


def _rate(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None


def of(model: str | None, listed: Price | None = None) -> Price | None:
    """The price a call of `model` is charged at: the workflow's `prices:` entry (`listed`),
    else LiteLLM's table; None when neither has one."""
    if listed is not None:
        return listed
    return price(model) if model else None


def window(model: str) -> int | None:
    """The most input tokens `model` accepts, or None when the table does not say."""
    found = entry(model)
    if found is None:
        return None
    value = found.get("max_input_tokens") or found.get("max_tokens")
    return int(value) if isinstance(value, int | float) and value > 0 else None


def cost(model: str, prompt_tokens: int, completion_tokens: int, cached: int = 0, written: int = 0) -> float | None:
    """The USD cost of one call (see `Price.cost`), or None when the model has no price."""
    found = price(model)
    return None if found is None else found.cost(prompt_tokens, completion_tokens, cached, written)
