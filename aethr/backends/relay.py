"""A loopback relay that meters an agent's model calls as they happen.

Codex and Gemini CLI report their usage only when a turn ends, so a spend cap would see a
long turn's spend too late. Under a cap, aethr points such an agent at this relay instead
of its endpoint: it listens on 127.0.0.1 (a port of its own), forwards each request as it
came to the real upstream (the endpoint aethr would have given the agent), and passes each
answer back chunk by chunk as it arrives (an SSE stream is never held back). On the way,
`backends.wire` reads each call's usage, in the provider's own format; once the call has
ended its tokens wait for `take` and `on_call` is told.

Between calls the relay is a gate: a request that arrives while an ended call's usage has
not yet been counted waits until it has (`counted`), and once the cap is reached
(`refuse`) no request is forwarded again: the agent is answered 503 while aethr ends its
tree. So a capped agent runs at most the call in flight past the cap, however fast it
calls. Agents that call in parallel may have one more in flight.

What is changed on the way: the hop-by-hop headers (Host names the upstream, the framing is
the relay's own) and Accept-Encoding, which asks for an uncompressed answer so that its
usage can be read. Nothing is logged, printed or stored: headers carry the agent's key.
A request the upstream cannot be reached for is answered by closing the connection, so the
agent sees the failure it would have seen without the relay (and `unreachable` says why,
for the step's failure message).
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from aethr.backends.wire import Tokens, UsageReader, called_model

# Framing belongs to each hop; the rest of a request's headers pass as they came.
_HOP = frozenset(
    ("host", "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade")
)
_NOT_SENT_BACK = _HOP | {"content-length"}
_GATE_SECONDS = 120.0  # a request waits at most this long for the last call's usage to be counted


class Relay:
    """The relay of one agent step; a context manager (leaving it stops the server)."""

    def __init__(self, upstream: str, on_call: Callable[[], None], timeout: float) -> None:
        parts = urlsplit(upstream)
        self.upstream = parts
        self.timeout = timeout
        self.on_call = on_call
        self.closed = False  # the cap is reached, or the step ended: nothing more is forwarded
        self.unreachable: str | None = None  # the upstream and why it could not be reached, if it could not
        self._pending = 0  # calls whose usage was seen and is not counted yet
        self._ended: list[Tokens] = []  # of those, the calls that have ended
        self._gate = threading.Condition()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.relay = self  # type: ignore[attr-defined]
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}{parts.path.rstrip('/')}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.refuse()
        self._server.shutdown()
        self._server.server_close()

    def refuse(self) -> None:
        """Forward nothing more: the cap is reached (or the step is over)."""
        with self._gate:
            self.closed = True
            self._gate.notify_all()

    def admit(self) -> bool:
        """Wait until every call whose usage was seen is counted; False when nothing may be
        forwarded."""
        with self._gate:
            self._gate.wait_for(lambda: self.closed or self._pending == 0, timeout=_GATE_SECONDS)
            return not self.closed

    def hold(self) -> None:
        """A call's usage has been seen: later requests wait until it is counted."""
        with self._gate:
            self._pending += 1

    def ended(self, tokens: Tokens) -> None:
        """A held call has ended with `tokens`: kept for `take`, and `on_call` is told."""
        with self._gate:
            self._ended.append(tokens)
        self.on_call()

    def take(self) -> list[Tokens]:
        """The ended calls' tokens not taken yet. The gate stays shut until they are `counted`."""
        with self._gate:
            taken, self._ended = self._ended, []
        return taken

    def counted(self, taken: int) -> None:
        """`taken` calls are counted (or the cap refused what follows): the gate may open."""
        with self._gate:
            self._pending -= taken
            self._gate.notify_all()

    def quiet(self, seconds: float) -> None:
        """Wait (at most `seconds`) until every held call has ended: the agent is gone, and
        an answer it was reading is cut at its next chunk."""
        with self._gate:
            self._gate.wait_for(lambda: self._pending == len(self._ended), timeout=seconds)

    def connect(self) -> http.client.HTTPConnection:
        https = self.upstream.scheme == "https"
        kind = http.client.HTTPSConnection if https else http.client.HTTPConnection
        return kind(self.upstream.netloc, timeout=self.timeout)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Silent: the default prints a traceback, whose message may quote a header (a key).
        The agent sees its connection close, and fails as it would on a dropped call."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each SSE event goes out as it is written, not held for an ACK

    def log_message(self, format: str, *args: Any) -> None:
        """Never: a request line or header may carry a key."""

    @property
    def relay(self) -> Relay:
        return self.server.relay  # type: ignore[attr-defined,no-any-return]

    def do_POST(self) -> None:
        self._forward()

    do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_POST

    def _forward(self) -> None:
        body = self._body()
        if not self.relay.admit():
            self._refused()
            return
        upstream = self.relay.connect()
        try:
            try:
                answer = self._ask(upstream, body)
            except OSError as exc:
                self.relay.unreachable = f"{self.relay.upstream.geturl()}: {exc.strerror or exc}"
                self.close_connection = True  # as the upstream failed: no answer at all
                return
            self._answer(answer, called_model(self.path, body))
        finally:
            upstream.close()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _ask(self, upstream: http.client.HTTPConnection, body: bytes) -> http.client.HTTPResponse:
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        upstream.putheader("Host", self.relay.upstream.netloc)
        for name, value in self.headers.items():
            if name.lower() not in _HOP and name.lower() not in ("content-length", "accept-encoding"):
                upstream.putheader(name, value)
        upstream.putheader("Accept-Encoding", "identity")
        upstream.putheader("Content-Length", str(len(body)))
        upstream.endheaders(body)
        return upstream.getresponse()

    def _answer(self, answer: http.client.HTTPResponse, model: str | None) -> None:
        """Pass the answer back as it comes, reading its usage on the way."""
        self.send_response_only(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in _NOT_SENT_BACK:
                self.send_header(name, value)
        length = answer.getheader("Content-Length") if not answer.chunked else None
        if answer.status in (204, 304) or self.command == "HEAD":
            length = length or "0"  # an answer with no body: none is framed
        self.send_header(*(("Content-Length", length) if length is not None else ("Transfer-Encoding", "chunked")))
        self.end_headers()
        streamed = (answer.getheader("Content-Type") or "").startswith("text/event-stream")
        reader, held = UsageReader(streamed, model), False
        try:
            for data in iter(lambda: answer.read1(65536), b""):
                reader.feed(data)
                if reader.seen and not held:
                    self.relay.hold()  # before the agent can see this chunk and call again
                    held = True
                self.wfile.write(data if length is not None else b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            if length is None:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except OSError:
            self.close_connection = True  # the agent is gone (stopped) or the upstream cut the answer
        finally:
            tokens = reader.close()  # once usage was seen (held), there are tokens
            if tokens is not None:
                if not held:
                    self.relay.hold()
                self.relay.ended(tokens)

    def _refused(self) -> None:
        data = b'{"error": {"code": 503, "message": "aethr: the spend cap is reached", "status": "UNAVAILABLE"}}'
        self.send_response_only(503, "Service Unavailable")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True
