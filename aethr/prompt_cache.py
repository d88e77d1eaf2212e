"""Where an Anthropic model's prompt gets its cache breakpoint, and how it is sent.

Anthropic caches a prompt's prefix only up to a `cache_control` marker, and only when that
prefix is long enough: 1,024 tokens for most models, 2,048 for the Claude 3 and 3.5 Haiku
models, 4,096 for Claude Haiku 4.5 and Opus 4.5 (Anthropic's minimums; a shorter prefix is
sent unmarked, since the provider would not cache it anyway). aethr marks the end of the
step's stable part (`prompts.Prompt.stable`) when its estimate (4 characters a token)
reaches the model's minimum. The first call writes the cache (billed at 1.25 times the
input price, for 5 minutes), every later call with the same prefix reads it (a tenth):
a loop's second pass already gains back more than the first one spent.

The prompt is then sent as two text blocks, the first carrying the marker, which join to
exactly the text `--show-prompt` prints; the preview shows the mark on a line of its own
(`MARK`), which is never sent. OpenAI, DeepSeek and Gemini cache by prefix without a
marker, so other models are sent the prompt as one text.
"""

from __future__ import annotations

from typing import Any

from aethr.context import estimate_tokens
from aethr.prompts import Prompt

# Claude models routed through these providers take Anthropic's marker too (LiteLLM passes it on).
_CLAUDE_VIA = ("anthropic", "bedrock", "vertex_ai", "openrouter", "litellm_proxy")
_MINIMUMS = (("haiku-4-5", 4096), ("opus-4-5", 4096), ("3-5-haiku", 2048), ("3-haiku", 2048))
DEFAULT_MINIMUM = 1024
MARK = "▲▲▲ aethr: cache breakpoint (cache_control): the provider caches the text above; this line is not sent ▲▲▲\n"


def minimum(model: str) -> int | None:
    """The fewest tokens Anthropic caches for `model`; None for a model that takes no marker."""
    provider, _, name = model.partition("/")
    if provider == "anthropic" or (provider in _CLAUDE_VIA and "claude" in name):
        return next((tokens for part, tokens in _MINIMUMS if part in name), DEFAULT_MINIMUM)
    return None


def cache_at(model: str | None, prompt: Prompt) -> int | None:
    """Where the breakpoint goes (a character offset into `prompt.text`), or None for none."""
    least = minimum(model) if model else None
    if least is None or estimate_tokens(prompt.text[: prompt.stable]) < least:
        return None
    return prompt.stable


def content(text: str, at: int | None) -> str | list[dict[str, Any]]:
    """The user message's content: `text` itself, or its two parts with the marker after the first."""
    if at is None:
        return text
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text[:at], "cache_control": {"type": "ephemeral"}}]
    return blocks + ([{"type": "text", "text": text[at:]}] if text[at:] else [])


def shown(text: str, at: int | None) -> str:
    """The prompt as `--show-prompt` prints it: the text sent, with the mark where the breakpoint is."""
    return text if at is None else text[:at] + MARK + text[at:]
