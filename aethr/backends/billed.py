"""What one model call through LiteLLM spent: its tokens as the provider billed them, priced.

LiteLLM hands every provider's usage back in OpenAI's shape, with the prompt cache inside
it: `prompt_tokens` counts every input token (LiteLLM adds Anthropic's cache reads and
writes into it), `prompt_tokens_details.cached_tokens` the ones read from the cache
(OpenAI's and DeepSeek's automatic prefix cache, Anthropic's cache reads, Gemini's
`cachedContentTokenCount`), and `cache_creation_input_tokens` the ones Anthropic wrote to
it. Each part is priced at its own rate (`pricing.Price.cost`).
"""

from __future__ import annotations

from typing import Any

from aethr import pricing
from aethr.backends import Request, failures
from aethr.context import estimate_tokens
from aethr.usage import Usage


def cache_tokens(usage: Any) -> tuple[int, int]:
    """Input tokens read from and written to the prompt cache, from LiteLLM's usage object."""
    details = getattr(usage, "prompt_tokens_details", None)
    read = _count(getattr(details, "cached_tokens", None)) or _count(getattr(usage, "cache_read_input_tokens", None))
    written = _count(getattr(usage, "cache_creation_input_tokens", None))
    return read, written or _count(getattr(details, "cache_creation_tokens", None))


def usage_of(request: Request, text: str, usage: Any, response: Any) -> Usage:
    """Tokens from the provider, else aethr's estimate (marked so, its cost a floor); the cost a gateway
    charged, else `prices:`, else LiteLLM's table (upstream model, then the one asked); else None."""
    given = (_count(getattr(usage, "prompt_tokens", 0)), _count(getattr(usage, "completion_tokens", 0)))
    prompt_tokens, completion_tokens = given[0] or estimate_tokens(request.prompt), given[1] or estimate_tokens(text)
    read, written = cache_tokens(usage) if given[0] else (0, 0)
    read, written = min(read, prompt_tokens), min(written, prompt_tokens - min(read, prompt_tokens))
    cost, upstream = failures.gateway_cost(response)
    floor = not all(given) and cost is None  # a gateway's charge is whole, whatever the tokens
    if cost is None and request.endpoint.price is not None:
        cost = request.endpoint.price.cost(prompt_tokens, completion_tokens, read, written)
    for model in (upstream, request.model):  # the gateway's upstream model, then the one asked for
        if cost is None and model:
            cost = pricing.cost(model, prompt_tokens, completion_tokens, read, written)
    return Usage(prompt_tokens, completion_tokens, cost, floor, not all(given), read, written)


def _count(value: Any) -> int:
    """A token count: a whole number of 0 or more, else 0 (a provider's fields are never trusted)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return 0
    return int(value)
