"""The usage of one model call, read from its answer as it passes on the wire.

The relay (`backends.relay`) hands each answer's bytes here as they stream by. Four wire
formats are read, told apart by what their events carry, so one reader serves every agent:

    Anthropic Messages   `message_start` (message.usage), `message_delta` (usage: output so far)
    OpenAI Responses     `response.completed` / `.incomplete` / `.failed` (response.usage)
    OpenAI Chat          the final chunk's `usage` (prompt_tokens, completion_tokens)
    Gemini               `usageMetadata` on each chunk (the last one is the call's total)

A streamed answer is Server-Sent Events, read line by line as it comes; any other answer
(plain JSON, or Gemini's streamed JSON array) is read whole once it ends. Within one call
a figure reported again replaces the earlier one: every format above reports totals so
far, never increments.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

_MODEL_IN_PATH = re.compile(r"/models/([^/:]+):")
_MOST_BODY = 16 * 1024 * 1024  # a non-streamed answer larger than this is not read for usage


class Tokens(NamedTuple):
    """One call's tokens: `prompt` counts every input token, the `cached` ones (read from the
    prompt cache) and the `written` ones (written to it: Anthropic's cache creation) among them;
    `model` is the one the request named (an agent's side calls name smaller models)."""

    prompt: int
    cached: int
    completion: int
    model: str | None = None
    written: int = 0


def called_model(path: str, body: bytes) -> str | None:
    """The model a request names: its body's `model` (Anthropic, OpenAI), else its path's
    `/models/NAME:` (Gemini); None when it names none."""
    found = _MODEL_IN_PATH.search(path.partition("?")[0])
    try:
        named = json.loads(body).get("model") if body[:1] == b"{" else None
    except (ValueError, AttributeError):
        named = None
    return named if isinstance(named, str) and named else (found.group(1) if found else None)


class UsageReader:
    """Reads one answer's usage; `feed` its bytes as they come, `close` at its end."""

    def __init__(self, event_stream: bool, model: str | None = None) -> None:
        self._event_stream = event_stream
        self._model = model
        self._pending = b""
        self._body: list[bytes] = []
        self._size = 0
        self._seen: dict[str, int] = {}

    @property
    def seen(self) -> bool:
        """True once any usage figure has passed."""
        return bool(self._seen)

    def feed(self, data: bytes) -> None:
        if not self._event_stream:
            self._size += len(data)
            if self._size <= _MOST_BODY:
                self._body.append(data)
            return
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            self._line(line)

    def close(self) -> Tokens | None:
        """The call's tokens, or None when its answer carried no usage (an error, a list)."""
        if self._event_stream:
            self._line(self._pending)
        elif self._size <= _MOST_BODY:
            for event in _parsed(b"".join(self._body)):
                self.take(event)
        if not self._seen:
            return None
        prompt = self._seen.get("prompt", 0)
        cached = min(self._seen.get("cached", 0), prompt)
        written = min(self._seen.get("written", 0), prompt - cached)
        return Tokens(prompt, cached, self._seen.get("completion", 0), self._model, written)

    def _line(self, line: bytes) -> None:
        line = line.strip()
        if line.startswith(b"data:") and b"sage" in line:  # `usage`, `usageMetadata`: the rest is text
            for event in _parsed(line[5:]):
                self.take(event)

    def take(self, event: dict[str, Any]) -> None:
        """One event or answer object: any usage figures it carries replace earlier ones."""
        self._seen.update(figures(event))


def _parsed(text: bytes) -> list[dict[str, Any]]:
    """The JSON objects in `text`: one object, or those of an array; none if it is not JSON."""
    try:
        value = json.loads(text)
    except ValueError:
        return []
    values = value if isinstance(value, list) else [value]
    return [item for item in values if isinstance(item, dict)]


def figures(event: dict[str, Any]) -> dict[str, int]:
    """The usage figures one event carries (`prompt`, `cached`, `completion`), in any format."""
    gemini = _object(event.get("usageMetadata"))
    if gemini:
        return _gemini(gemini)
    kind = str(event.get("type", ""))
    if kind == "message_start":
        return _anthropic(_object(_object(event.get("message")).get("usage")))
    if kind.startswith("response."):
        return _openai(_object(_object(event.get("response")).get("usage")))
    usage = _object(event.get("usage"))
    if kind in ("message_delta", "message") or "cache_read_input_tokens" in usage:
        return _anthropic(usage)
    return _openai(usage)


def _gemini(usage: dict[str, Any]) -> dict[str, int]:
    found = _pick(usage, prompt="promptTokenCount", cached="cachedContentTokenCount")
    if "candidatesTokenCount" in usage or "thoughtsTokenCount" in usage:
        found["completion"] = _count(usage.get("candidatesTokenCount")) + _count(usage.get("thoughtsTokenCount"))
    return found


def _anthropic(usage: dict[str, Any]) -> dict[str, int]:
    """Anthropic counts cache reads and writes beside `input_tokens`, not within it."""
    found = _pick(usage, cached="cache_read_input_tokens", completion="output_tokens")
    found |= _pick(usage, written="cache_creation_input_tokens")
    parts = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    if "input_tokens" in usage:
        found["prompt"] = sum(_count(usage.get(part)) for part in parts)
    return found


def _openai(usage: dict[str, Any]) -> dict[str, int]:
    """Responses (`input_tokens`) and Chat (`prompt_tokens`): the cached ones are within."""
    found = _pick(usage, prompt="input_tokens", completion="output_tokens")
    found |= _pick(usage, prompt="prompt_tokens", completion="completion_tokens")
    details = _object(usage.get("input_tokens_details")) or _object(usage.get("prompt_tokens_details"))
    return found | _pick(details, cached="cached_tokens")


def _pick(usage: dict[str, Any], **names: str) -> dict[str, int]:
    return {ours: _count(usage[theirs]) for ours, theirs in names.items() if _count(usage.get(theirs), -1) >= 0}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any, default: int = 0) -> int:
    """A token count: a non-negative whole number, else `default` (fields are never trusted)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return default
    return int(value)
