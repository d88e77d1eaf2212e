"""The Anthropic Messages, OpenAI Responses and Gemini streaming wire formats, for the
loopback server.

`FakeOpenAI` routes `/v1/messages`, `/v1/responses` and `…:streamGenerateContent`
here; each request takes the next scripted behaviour, as for chat completions:

    {"kind": "stream", "text": "..."}     a whole answer with a finish reason and usage
    {"kind": "drop", "text": "partial"}   some text, then the connection closes, no finish
    {"kind": "empty"}                     a finished answer with no text
    {"kind": "stall"}                     headers, then nothing (until the server stops)
    {"kind": "status", "code": 429, "headers": {...}}   an error in the provider's own shape
    {"kind": "tool", "name": "Write", "arguments": {...}}   one tool call (what agents edit with);
        for the Responses format, "custom": true sends a free-form call whose input is "input"

Ollama (`/api/chat`, NDJSON; `/api/show` reports the model's context length) behaves as the
real server does: it counts at most `num_ctx` prompt tokens (4 characters a token), 2,048
when the request sets none, cutting the rest silently. "prompt_tokens" forces the count;
"delay": SECONDS holds back the first byte (a cold model load).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any


def _sse(handler: BaseHTTPRequestHandler, payload: dict[str, Any], event: str | None = None) -> None:
    head = f"event: {event}\n" if event else ""
    handler.wfile.write(f"{head}data: {json.dumps(payload)}\n\n".encode())
    handler.wfile.flush()


def _open_stream(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.close_connection = True


def error(handler: BaseHTTPRequestHandler, code: int, headers: dict[str, str], gemini: bool) -> None:
    status = {429: "RESOURCE_EXHAUSTED", 401: "UNAUTHENTICATED", 500: "INTERNAL"}.get(code, "FAILED")
    payload: dict[str, Any] = (
        {"error": {"code": code, "message": f"scripted {code}", "status": status}}
        if gemini
        else {"type": "error", "error": {"type": "scripted_error", "message": f"scripted {code}"}}
    )
    data = json.dumps(payload).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def _begin(handler: BaseHTTPRequestHandler, behaviour: dict[str, Any], stop: threading.Event, gemini: bool) -> bool:
    """Answer a scripted error, or open the stream (and stall on it); False when that is all."""
    kind = behaviour.get("kind", "stream")
    if kind == "status":
        error(handler, int(behaviour["code"]), behaviour.get("headers", {}), gemini=gemini)
        return False
    _open_stream(handler)
    if kind == "stall":
        stop.wait(600)
        return False
    return True


def anthropic(
    handler: BaseHTTPRequestHandler, body: dict[str, Any], behaviour: dict[str, Any], stop: threading.Event
) -> None:
    kind = behaviour.get("kind", "stream")
    if not _begin(handler, behaviour, stop, gemini=False):
        return
    model = body.get("model", "claude")
    start = {"id": "msg_fake", "type": "message", "role": "assistant", "content": [], "model": model}
    usage: dict[str, Any] = {"input_tokens": 11, "output_tokens": 1}
    billed = behaviour.get("billed")
    if billed is not None:  # Anthropic counts cache reads and writes beside input_tokens
        usage["input_tokens"] = billed.prompt - billed.cached - billed.written
        usage |= {"cache_read_input_tokens": billed.cached, "cache_creation_input_tokens": billed.written}
    start |= {"stop_reason": None, "stop_sequence": None, "usage": usage}
    _sse(handler, {"type": "message_start", "message": start}, "message_start")
    if kind == "tool":
        _anthropic_tool(handler, behaviour)
        return
    _sse(
        handler,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        "content_block_start",
    )
    text = "" if kind == "empty" else behaviour.get("text", "ok")
    for piece in [text[i : i + 8] for i in range(0, len(text), 8)]:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        _sse(handler, delta, "content_block_delta")
    if kind == "drop":
        return
    _sse(handler, {"type": "content_block_stop", "index": 0}, "content_block_stop")
    end = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}}
    _sse(handler, end | {"usage": {"output_tokens": 7}}, "message_delta")
    _sse(handler, {"type": "message_stop"}, "message_stop")


def _anthropic_tool(handler: BaseHTTPRequestHandler, behaviour: dict[str, Any]) -> None:
    block = {"type": "tool_use", "id": "toolu_fake1", "name": behaviour["name"], "input": {}}
    _sse(handler, {"type": "content_block_start", "index": 0, "content_block": block}, "content_block_start")
    partial = {"type": "input_json_delta", "partial_json": json.dumps(behaviour["arguments"])}
    _sse(handler, {"type": "content_block_delta", "index": 0, "delta": partial}, "content_block_delta")
    _sse(handler, {"type": "content_block_stop", "index": 0}, "content_block_stop")
    end = {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}}
    _sse(handler, end | {"usage": {"output_tokens": 9}}, "message_delta")
    _sse(handler, {"type": "message_stop"}, "message_stop")


def responses(
    handler: BaseHTTPRequestHandler, body: dict[str, Any], behaviour: dict[str, Any], stop: threading.Event
) -> None:
    """OpenAI's Responses API, streamed (what Codex speaks)."""
    kind = behaviour.get("kind", "stream")
    if not _begin(handler, behaviour, stop, gemini=False):
        return
    head = {"id": "resp_fake", "object": "response", "model": body.get("model", "gpt"), "output": []}
    _sse(handler, {"type": "response.created", "response": head | {"status": "in_progress"}}, "response.created")
    if kind == "tool":
        item: dict[str, Any] = {
            "id": "fc_fake",
            "call_id": "call_fake",
            "name": behaviour["name"],
            "status": "completed",
        }
        if behaviour.get("custom"):
            item |= {"type": "custom_tool_call", "input": behaviour["input"]}
        else:
            item |= {"type": "function_call", "arguments": json.dumps(behaviour["arguments"])}
        _sse(handler, {"type": "response.output_item.added", "output_index": 0, "item": item})
    else:
        text = "" if kind == "empty" else behaviour.get("text", "ok")
        item = {"id": "msg_fake", "type": "message", "role": "assistant", "status": "in_progress", "content": []}
        _sse(handler, {"type": "response.output_item.added", "output_index": 0, "item": item})
        for piece in [text[i : i + 8] for i in range(0, len(text), 8)]:
            delta = {"type": "response.output_text.delta", "item_id": "msg_fake", "output_index": 0}
            _sse(handler, delta | {"content_index": 0, "delta": piece})
        if kind == "drop":
            return
        item = item | {"status": "completed", "content": [{"type": "output_text", "text": text, "annotations": []}]}
    _sse(handler, {"type": "response.output_item.done", "output_index": 0, "item": item})
    billed = behaviour.get("billed")
    prompt, cached = (billed.prompt, billed.cached) if billed is not None else (11, 0)
    usage = {"input_tokens": prompt, "output_tokens": 7, "total_tokens": prompt + 7}
    usage |= {"input_tokens_details": {"cached_tokens": cached}, "output_tokens_details": {"reasoning_tokens": 0}}
    done = head | {"status": "completed", "output": [item], "usage": usage}
    _sse(handler, {"type": "response.completed", "response": done}, "response.completed")


def gemini(
    handler: BaseHTTPRequestHandler, body: dict[str, Any], behaviour: dict[str, Any], stop: threading.Event
) -> None:
    kind = behaviour.get("kind", "stream")
    if not _begin(handler, behaviour, stop, gemini=True):
        return
    if kind == "tool":
        call = {"functionCall": {"name": behaviour["name"], "args": behaviour["arguments"]}}
        candidate = {"content": {"parts": [call], "role": "model"}, "index": 0, "finishReason": "STOP"}
        usage = {"promptTokenCount": 11, "candidatesTokenCount": 9, "totalTokenCount": 20}
        _sse(handler, {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash"})
        return
    text = "" if kind == "empty" else behaviour.get("text", "ok")
    pieces = [text[i : i + 8] for i in range(0, len(text), 8)] or [""]
    for number, piece in enumerate(pieces):
        candidate: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
        last = number == len(pieces) - 1
        if last and kind != "drop":
            candidate["finishReason"] = "STOP"
        chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash"}
        if last and kind != "drop":
            chunk["usageMetadata"] = _gemini_usage(behaviour.get("billed"))
        _sse(handler, chunk)


def _gemini_usage(billed: Any) -> dict[str, Any]:
    """Gemini's usage: `promptTokenCount` counts every input token, the cached ones among them."""
    if billed is None:
        return {"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18}
    usage = {"promptTokenCount": billed.prompt, "candidatesTokenCount": 7, "totalTokenCount": billed.prompt + 7}
    return usage | ({"cachedContentTokenCount": billed.cached} if billed.cached else {})


def ollama_show(window: int) -> dict[str, Any]:
    """Ollama's `/api/show` answer, as much of it as a client reads for the window."""
    info = {"general.architecture": "llama", "llama.context_length": window}
    return {"details": {"family": "llama"}, "model_info": info}


def ollama_chat(
    handler: BaseHTTPRequestHandler, body: dict[str, Any], behaviour: dict[str, Any], stop: threading.Event, window: int
) -> None:
    """Ollama's streamed `/api/chat`: a line of JSON per chunk, the last with `done` and the counts."""
    if stop.wait(float(behaviour.get("delay", 0))):
        return
    handler.send_response(200)
    handler.send_header("Content-Type", "application/x-ndjson")
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.close_connection = True
    sent = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4
    fits = min(sent, int((body.get("options") or {}).get("num_ctx") or 2048), window)
    counted = int(behaviour.get("prompt_tokens", fits))
    words = str(behaviour.get("text", "ok")).split(" ")
    model = body.get("model", "")
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        line = {"model": model, "message": {"role": "assistant", "content": piece}, "done": False}
        handler.wfile.write((json.dumps(line) + "\n").encode())
        handler.wfile.flush()
    last = {"model": model, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"}
    last.update(prompt_eval_count=counted, eval_count=len(words))
    handler.wfile.write((json.dumps(last) + "\n").encode())
    handler.wfile.flush()
