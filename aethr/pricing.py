"""Prices, context windows and providers from LiteLLM's bundled tables, read as data.

LiteLLM ships `model_prices_and_context_window_backup.json` and
`provider_endpoints_support_backup.json` inside its package. This module finds
them without importing litellm (which costs seconds) and answers, per model: USD
per input and output token, and the context window; and which providers LiteLLM
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
from importlib.util import find_spec
from pathlib import Path
from typing import Any, NamedTuple

TABLE_NAME = "model_prices_and_context_window_backup.json"
PROVIDERS_NAME = "provider_endpoints_support_backup.json"
# LiteLLM names some providers' entries differently from the model prefix users write.
_PROVIDER_ALIASES = {"google": "gemini", "gemini": "gemini", "vertex_ai": "vertex_ai-language-models"}


class Price(NamedTuple):
    input_per_token: float
    output_per_token: float
    window: int | None  # input tokens the model accepts, when the table says

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens * self.input_per_token + completion_tokens * self.output_per_token


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


@functools.cache
def _table() -> dict[str, Any]:
    return _read(TABLE_NAME)


@functools.cache
def providers() -> frozenset[str]:
    """Every provider prefix LiteLLM knows (`openai`, `anthropic`, `litellm_proxy`, …)."""
    listed = _read(PROVIDERS_NAME).get("providers")
    return frozenset(listed) if isinstance(listed, dict) else frozenset()


def known_model(name: str) -> bool:
    """True when the table has `name` itself (a bare model name LiteLLM can route)."""
    return isinstance(_table().get(name), dict)


def entry(model: str) -> dict[str, Any] | None:
    """The table's entry for a LiteLLM model name (`provider/model`), or None."""
    table = _table()
    found = table.get(model)
    if isinstance(found, dict):
        return found
    provider, _, bare = model.partition("/")
    if not bare:
        provider, bare = "openai", model
    found = table.get(bare)
    if isinstance(found, dict) and found.get("litellm_provider") in (provider, _PROVIDER_ALIASES.get(provider)):
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
    return Price(float(cost_in), float(cost_out), window(model))


def window(model: str) -> int | None:
    """The most input tokens `model` accepts, or None when the table does not say."""
    found = entry(model)
    if found is None:
        return None
    value = found.get("max_input_tokens") or found.get("max_tokens")
    return int(value) if isinstance(value, int | float) and value > 0 else None


def cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """The USD cost of one call, or None when the model has no price."""
    found = price(model)
    return None if found is None else found.cost(prompt_tokens, completion_tokens)
