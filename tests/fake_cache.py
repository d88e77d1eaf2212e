"""A provider's prompt cache, for the loopback server: what a request's usage says was read
from the cache (or written to it) is found by prefix match against the prompts seen before,
the way each provider decides it, never scripted as a number.

A behaviour with `"cache": true` is billed this way (`FakeOpenAI.billed` keeps each call's
figures, for a test to compare with what aethr charged). Tokens are counted as the fake
counts them: 4 characters a token, rounded down.

    openai (Chat, Responses)  the longest prefix shared with an earlier prompt, once it is
                              1,024 tokens or more, in steps of 128 (OpenAI's automatic cache)
    anthropic                 the prompt up to its `cache_control` breakpoint: read when an
                              earlier request wrote that same prefix, else written when it is
                              1,024 tokens or more; nothing without a breakpoint
    gemini                    the longest prefix shared with an earlier prompt, once it is
                              1,024 tokens or more (Gemini's implicit cache)
"""

from __future__ import annotations

import json
import threading
from typing import Any, NamedTuple

MINIMUM = 1024  # tokens: below this no provider caches


class Billed(NamedTuple):
    """One call's input as billed: every input token, the ones read from and written to the cache."""

    prompt: int
    cached: int = 0
    written: int = 0


def tokens(text: str) -> int:
    return len(text) // 4


class PromptCache:
    def __init__(self) -> None:
        self._seen: dict[str, list[str]] = {}  # wire format -> prompts, in order
        self._written: set[str] = set()  # Anthropic: the prefixes written at a breakpoint
        self._lock = threading.Lock()

    def bill(self, path: str, body: dict[str, Any]) -> Billed:
        """The usage of this request (and remember its prompt for the next ones)."""
        wire = _wire(path)
        text, marked = _prompt(wire, body)
        with self._lock:
            earlier = self._seen.setdefault(wire, [])
            shared = max((_shared(text, seen) for seen in earlier), default=0)
            earlier.append(text)
            if wire == "anthropic":
                return self._anthropic(text, marked)
        hit = tokens(text[:shared])
        if hit < MINIMUM:
            return Billed(tokens(text))
        return Billed(tokens(text), hit // 128 * 128 if wire == "openai" else hit)

    def _anthropic(self, text: str, marked: str | None) -> Billed:
        if marked is None:
            return Billed(tokens(text))
        if marked in self._written:
            return Billed(tokens(text), cached=tokens(marked))
        if tokens(marked) < MINIMUM:
            return Billed(tokens(text))
        self._written.add(marked)
        return Billed(tokens(text), written=tokens(marked))


def _shared(one: str, other: str) -> int:
    """How many leading characters the two texts share."""
    size = 0
    for a, b in zip(one, other, strict=False):
        if a != b:
            break
        size += 1
    return size


def _wire(path: str) -> str:
    path = path.split("?")[0].rstrip("/")
    if path.endswith("/messages"):
        return "anthropic"
    return "gemini" if "GenerateContent" in path else "openai"


def _prompt(wire: str, body: dict[str, Any]) -> tuple[str, str | None]:
    """The request's prompt as one text, and (Anthropic) the part of it up to the last
    content block that carries a `cache_control` breakpoint."""
    if wire == "gemini":
        parts = [part for content in body.get("contents", []) for part in content.get("parts", [])]
        return "".join(str(part.get("text", "")) for part in parts), None
    if "messages" not in body:  # the Responses API (Codex): its instructions and input items
        return json.dumps(body.get("instructions")) + json.dumps(body.get("input")), None
    text, marked = "", None
    for message in body["messages"]:
        content = message.get("content")
        for block in content if isinstance(content, list) else [{"text": content or ""}]:
            text += str(block.get("text", "")) if isinstance(block, dict) else ""
            if isinstance(block, dict) and block.get("cache_control"):
                marked = text
    return text, marked
