"""A loopback model server for tests and benchmarks (stdlib only): OpenAI chat completions,
and the Anthropic Messages, OpenAI Responses, Gemini and Ollama streaming formats (`fake_providers`).

Each request to `/v1/chat/completions` takes the next scripted behaviour; when the
script runs out, the last behaviour repeats. Behaviours (dicts):

    {"kind": "stream", "text": "...", "prompt_tokens": 11, "completion_tokens": 7}
    {"kind": "stream", "text": "...", "usage": false}   no usage chunk at all
    {"kind": "status", "code": 429, "headers": {"Retry-After": "0"}, "message": "..."}
    {"kind": "hang"}                      accept the request and never answer
    {"kind": "drop", "text": "partial"}   stream some text, then close without a finish
    {"kind": "tool", "name": "write", "arguments": {...}}   one streamed tool call
    {"kind": "runaway"}                   stream text forever (bounded by `runaway_seconds`)
    {"kind": "json", "text": "..."}       one complete JSON answer, even to a streaming request
    {"kind": "stall"}                     headers, then nothing (until the server stops)
    {"kind": "empty"}                     a finished answer with no text
    "finish": "length" on a stream/json   the finish reason sent (default "stop")
    "headers": {...} on a stream          extra response headers (a gateway's x-litellm-…)
    "cache": true on a stream (any format)   usage with cached tokens by prefix match (`fake_cache`)

Every request body is appended to `requests` (and to `log_path` as JSON lines when
running as a script). Run standalone: `python tests/fake_openai.py SCRIPT.json`
prints `PORT` on its first line and serves until killed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

try:
    from tests import fake_cache, fake_providers
except ImportError:  # run as a script: `python tests/fake_openai.py`
    import fake_cache  # type: ignore[no-redef]
    import fake_providers  # type: ignore[no-redef]

# A fixed time: two answers to one script are the same byte for byte (a clock would split
# them at a second's boundary, as it once did the relay test).
CREATED = 1767225600


class FakeOpenAI:
    def __init__(self, script: list[dict[str, Any]] | None = None, log_path: Path | None = None) -> None:
        self.script = list(script or [{"kind": "stream", "text": "ok"}])
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.log_path = log_path
        self.runaway_seconds = 120.0
        self.cache = fake_cache.PromptCache()
        self.billed: list[fake_cache.Billed] = []  # what each `"cache": true` call was billed
        self.ollama_window = 2048  # Ollama: the model's context length, and the window without num_ctx
        self.shown: list[dict[str, Any]] = []  # Ollama: the bodies of /api/show requests
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def next_behaviour(self, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            if self.log_path is not None:
                with self.log_path.open("a") as log:
                    log.write(json.dumps(body) + "\n")
            index = len(self.requests) - 1
            return self.script[min(index, len(self.script) - 1)]

    def prompts(self) -> list[str]:
        """The text of the last user message of each request, in order."""
        found = []
        for body in self.requests:
            content = body["messages"][-1]["content"]
            if isinstance(content, list):
                content = "".join(part.get("text", "") for part in content)
            found.append(content)
        return found

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._json(200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/").endswith("/api/show"):  # Ollama's model card: no script entry
                    fake.shown.append(body)
                    self._json(200, fake_providers.ollama_show(fake.ollama_window))
                    return
                behaviour = fake.next_behaviour(body, {**dict(self.headers), "path": self.path})
                if behaviour.get("cache"):
                    billed = fake.cache.bill(self.path, body)
                    fake.billed.append(billed)
                    behaviour = {**behaviour, "billed": billed}
                kind = behaviour.get("kind", "stream")
                if kind == "hang":
                    fake._stop.wait(600)
                elif self.path.split("?")[0].rstrip("/").endswith("/messages"):
                    fake_providers.anthropic(self, body, behaviour, fake._stop)
                elif self.path.split("?")[0].rstrip("/").endswith("/responses"):
                    fake_providers.responses(self, body, behaviour, fake._stop)
                elif self.path.rstrip("/").endswith("/api/chat"):
                    fake_providers.ollama_chat(self, body, behaviour, fake._stop, fake.ollama_window)
                elif "GenerateContent" in self.path:
                    fake_providers.gemini(self, body, behaviour, fake._stop)
                elif kind == "status":
                    code = int(behaviour["code"])
                    message = behaviour.get("message", f"scripted status {code}")
                    self._json(
                        code,
                        {"error": {"message": message, "type": "scripted", "code": code}},
                        behaviour.get("headers", {}),
                    )
                elif kind == "hang":
                    fake._stop.wait(600)
                elif kind == "tool":
                    self._stream(body, "", behaviour, tool=behaviour)
                elif kind == "empty":
                    self._stream(body, "", behaviour)
                elif kind == "stall":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    self.wfile.flush()
                    fake._stop.wait(600)
                elif kind == "json":
                    self._stream({**body, "stream": False}, behaviour.get("text", "ok"), behaviour)
                else:
                    self._stream(body, behaviour.get("text", "ok"), behaviour)

            def _json(self, code: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _event(self, payload: dict[str, Any] | str) -> None:
                data = payload if isinstance(payload, str) else json.dumps(payload)
                self.wfile.write(f"data: {data}\n\n".encode())
                self.wfile.flush()

            def _chunk(self, model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
                return {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }

            def _stream(
                self, body: dict[str, Any], text: str, behaviour: dict[str, Any], tool: dict[str, Any] | None = None
            ) -> None:
                model = body.get("model", "test-model")
                if not body.get("stream"):
                    self._json(
                        200,
                        {
                            "id": "chatcmpl-fake",
                            "object": "chat.completion",
                            "created": CREATED,
                            "model": model,
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": text},
                                    "finish_reason": behaviour.get("finish", "stop"),
                                }
                            ],
                            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
                        },
                    )
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                for name, value in behaviour.get("headers", {}).items():
                    self.send_header(name, value)  # a gateway's: x-litellm-response-cost, …
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    self._event(self._chunk(model, {"role": "assistant", "content": ""}))
                    if behaviour.get("kind") == "runaway":
                        deadline = time.monotonic() + fake.runaway_seconds
                        while time.monotonic() < deadline and not fake._stop.is_set():
                            self._event(self._chunk(model, {"content": "more "}))
                            time.sleep(0.05)
                        return
                    if tool is not None:
                        call = {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": tool["name"], "arguments": json.dumps(tool["arguments"])},
                        }
                        self._event(self._chunk(model, {"tool_calls": [call]}))
                        finish = "tool_calls"
                    else:
                        size = int(behaviour.get("chunk_size", 8))
                        for start in range(0, len(text), size):
                            self._event(self._chunk(model, {"content": text[start : start + size]}))
                        finish = behaviour.get("finish", "stop")
                    if behaviour.get("kind") == "drop":
                        return  # the connection closes with no finish reason and no [DONE]
                    self._event(self._chunk(model, {}, finish))
                    if behaviour.get("usage") is False:  # a server that reports no usage
                        self._event("[DONE]")
                        return
                    usage: dict[str, Any] = {
                        "prompt_tokens": int(behaviour.get("prompt_tokens", 11)),
                        "completion_tokens": int(behaviour.get("completion_tokens", 7)),
                    }
                    billed = behaviour.get("billed")
                    if billed is not None:
                        usage["prompt_tokens"] = billed.prompt
                        usage["prompt_tokens_details"] = {"cached_tokens": billed.cached}
                    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                    self._event(
                        {
                            "id": "chatcmpl-fake",
                            "object": "chat.completion.chunk",
                            "created": CREATED,
                            "model": model,
                            "choices": [],
                            "usage": usage,
                        }
                    )
                    self._event("[DONE]")
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def main() -> None:
    script = json.loads(Path(sys.argv[1]).read_text()) if len(sys.argv) > 1 else None
    log = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    server = FakeOpenAI(script, log).start()
    print(server.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
