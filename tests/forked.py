"""The client side of tests/zygote.py (read its docstring): the session's server, and one
call to it with what `subprocess.run` would give."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from tests.zygote import ROOT

# The real Popen, taken before `tests.conftest` wraps it per test: the server outlives tests.
_Popen = subprocess.Popen


class Server:
    """The server for one test session: started by the session's first process (pytest's,
    before xdist starts its workers), ended with it (and, should that process die, by
    PR_SET_PDEATHSIG); its socket's path reaches the workers in AETHR_TEST_ZYGOTE. It warms up
    while the workers start and collect. Stopping it ends every child still running."""

    def __init__(self, keep: set[str]) -> None:
        self.folder = tempfile.mkdtemp(prefix="aethr-zygote-")
        self.path = os.path.join(self.folder, "socket")
        env = {name: value for name, value in os.environ.items() if name in keep}
        env.update(HOME=self.folder, TMPDIR=self.folder, LITELLM_LOCAL_MODEL_COST_MAP="True")
        argv = [sys.executable, "-m", "tests.zygote", self.path, str(os.getpid())]
        # stdout is not a terminal, so a child's sys.stdout is block-buffered as a fresh one is.
        self._proc = _Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        self._proc.terminate()  # the server kills its children, then exits
        self._proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def run(path: str, argv: list[str], cwd: str, env: dict[str, str], timeout: float, stdin: str) -> tuple[int, str, str]:
    """`python -m aethr *argv` in a child forked by the server at `path`, with what
    `subprocess.run(..., capture_output=True, text=True, timeout=timeout, input=stdin)` gives:
    pipes for the three streams, read to their end (a process left holding one holds the
    call, as it would a fresh one), and the child killed if the call ends any other way."""
    if not os.path.isdir(cwd):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), cwd)
    deadline = time.monotonic() + timeout
    streams = Streams()
    pid = None
    try:
        with _connect(path, timeout) as sock:
            _send(sock, {"argv": argv, "cwd": cwd, "env": env}, streams.theirs)
            streams.close_theirs()
            pid = int(_message(sock, deadline))
            out, err, code = streams.communicate(sock, stdin.encode(), deadline)
            pid = None
            return code, _text(out), _text(err)
    except TimeoutError:
        raise subprocess.TimeoutExpired(["aethr", *argv], timeout, _text(streams.out), _text(streams.err)) from None
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        streams.close()


class Streams:
    """The call's three pipes: the child's ends go to the server, ours are read and written."""

    def __init__(self) -> None:
        in_r, self.stdin = os.pipe()
        self.stdout, out_w = os.pipe()
        self.stderr, err_w = os.pipe()
        self.theirs = [in_r, out_w, err_w]
        self.out = bytearray()
        self.err = bytearray()
        self._open = {self.stdin, self.stdout, self.stderr, *self.theirs}

    def communicate(self, sock: socket.socket, data: bytes, deadline: float) -> tuple[bytes, bytes, int]:
        """Write stdin, read stdout and stderr to their ends and the exit code, by `deadline`."""
        selector = selectors.DefaultSelector()
        os.set_blocking(self.stdin, False)
        if data:
            selector.register(self.stdin, selectors.EVENT_WRITE)
        else:
            self._close(self.stdin)
        selector.register(self.stdout, selectors.EVENT_READ, self.out)
        selector.register(self.stderr, selectors.EVENT_READ, self.err)
        selector.register(sock, selectors.EVENT_READ)
        code, view = None, memoryview(data)
        with selector:
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                for key, _ in selector.select(left):
                    if key.fileobj is sock:
                        code = int(_message(sock, deadline))
                        selector.unregister(sock)
                    elif key.fd == self.stdin:
                        view = self._write(selector, view)
                    elif chunk := os.read(key.fd, 65536):
                        key.data.extend(chunk)
                    else:
                        selector.unregister(key.fd)
        assert code is not None
        return bytes(self.out), bytes(self.err), code

    def _write(self, selector: selectors.BaseSelector, view: memoryview) -> memoryview:
        try:
            view = view[os.write(self.stdin, view[:65536]) :]
        except BrokenPipeError:  # the child stopped reading, as subprocess.run lets it
            view = view[:0]
        if not view:
            selector.unregister(self.stdin)
            self._close(self.stdin)
        return view

    def close_theirs(self) -> None:
        for fd in self.theirs:
            self._close(fd)

    def close(self) -> None:
        for fd in list(self._open):
            self._close(fd)

    def _close(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            os.close(fd)


def _send(sock: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """The request goes in a file (an argument or a variable may be large), its fd first."""
    with tempfile.TemporaryFile() as body:
        body.write(json.dumps(request).encode())
        body.flush()
        socket.send_fds(sock, [b"run"], [body.fileno(), *fds])


def _message(sock: socket.socket, deadline: float) -> bytes:
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    message = sock.recv(64)
    assert message, "the test zygote ended during a call"
    return message


def _connect(path: str, ceiling: float) -> socket.socket:
    """A connection to the server, once it listens (it may still be importing)."""
    deadline = time.monotonic() + ceiling
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            assert time.monotonic() < deadline, f"the test zygote at {path} did not start"
            time.sleep(0.05)


def _text(data: bytes | bytearray) -> str:
    """Captured bytes as text mode gives them: locale encoding, universal newlines."""
    return io.TextIOWrapper(io.BytesIO(bytes(data))).read()
