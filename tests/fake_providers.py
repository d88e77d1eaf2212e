"""The Anthropic Messages and Gemini streaming wire formats, for the loopback server.

`FakeOpenAI` routes `/v1/messages` and `…:streamGenerateContent` here; each request
takes the next scripted behaviour, as for chat completions:

    {"kind": "stream", "text": "..."}     a whole answer with a finish reason and usage
    {"kind": "drop", "text": "partial"}   some text, then the connection closes, no finish
    {"kind": "empty"}                     a finished answer with no text
    {"kind": "stall"}                     headers, then nothing (until the server stops)
    {"kind": "status", "code": 429, "headers": {...}}   an error in the provider's own shape
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


def anthropic(
    handler: BaseHTTPRequestHandler, body: dict[str, Any], behaviour: dict[str, Any], stop: threading.Event
) -> None:
    kind = behaviour.get("kind", "stream")
    if kind == "status":
        error(handler, int(behaviour["code"]), behaviour.get("headers", {}), gemini=False)
        return
    _open_stream(handler)
    if kind == "stall":
        stop.wait(600)
        return
    model = body.get("model", "claude")
    start = {"id": "msg_fake", "type": "message", "role": "assistant", "content": [], "model": model}
    start |= {"stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 11, "output_tokens": 1}}
    _sse(handler, {"type": "message_start", "message": start}, "message_start")
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


def gemini(
    handler: BaseHTTPRequestHandler, body: dict[str, Any], behaviour: dict[str, Any], stop: threading.Event
) -> None:
    kind = behaviour.get("kind", "stream")
    if kind == "status":
        error(handler, int(behaviour["code"]), behaviour.get("headers", {}), gemini=True)
        return
    _open_stream(handler)
    if kind == "stall":
        stop.wait(600)
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
            chunk["usageMetadata"] = {"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18}
        _sse(handler, chunk)
