"""`python -m aethr` for the tests, forked from one warm interpreter per test session.

Starting aethr costs ~0.1 s of CPU, and a live run's LiteLLM import ~2.5 s more; the suite
starts well over a thousand of them. So the session's first process starts one server (this
module, as `python -m tests.zygote SOCKET`) that imports every aethr module and LiteLLM once,
the way aethr does, and then forks a child per call. The child takes the call's working
folder, environment and standard streams (passed over the socket) and runs `aethr` as
`python -m aethr` would, down to how it exits (aethr's own flush and `os._exit`, or the
interpreter's exit): its exit code, stdout and stderr are what a fresh process gives. It is a real process
of its own, so signals, the reaper, child processes and the file system behave as in a user's
run; only the import work is shared.

What a fork cannot give, a test keeps a fresh interpreter for: start-up itself (import lists,
`-X importtime`, the header before LiteLLM's import, PYTHONPATH injections: `tests.conftest.aethr`
falls back by itself when a call sets a PYTHON* variable), and the signal tests, which start
`python -m aethr` with Popen. AETHR_TEST_FRESH=1 makes every call a fresh interpreter.

The server is single-threaded (a fork copies one thread): a selector waits for requests and
for each child's pidfd, and answers each request with two messages: the child's pid, then its
exit code as `subprocess` reports it (negative for a signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import io
import json
import os
import pkgutil
import runpy
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_MAX_REQUEST = 1 << 20
_ROOT = Path(__file__).resolve().parent.parent
# The real Popen, taken before `tests.conftest` wraps it per test: the server outlives tests.
_Popen = subprocess.Popen


class Server:
    """The server for one test session: started by the session's first process (pytest's,
    before xdist starts its workers), ended with it; its socket's path reaches the workers in
    AETHR_TEST_ZYGOTE. It warms up while the workers start and collect."""

    def __init__(self, keep: set[str]) -> None:
        self.folder = tempfile.mkdtemp(prefix="aethr-zygote-")
        self.path = os.path.join(self.folder, "socket")
        env = {name: value for name, value in os.environ.items() if name in keep}
        env.update(HOME=self.folder, TMPDIR=self.folder, LITELLM_LOCAL_MODEL_COST_MAP="True")
        self._proc = _Popen(
            [sys.executable, "-m", "tests.zygote", self.path], cwd=_ROOT, env=env, stdin=subprocess.DEVNULL
        )

    def stop(self) -> None:
        self._proc.kill()
        self._proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def run(path: str, argv: list[str], cwd: str, env: dict[str, str], timeout: float, stdin: str) -> tuple[int, str, str]:
    """`python -m aethr *argv` in a child forked by the server at `path`, with what
    `subprocess.run(..., capture_output=True, text=True, timeout=timeout, input=stdin)` gives."""
    with tempfile.TemporaryFile() as given, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        given.write(stdin.encode())
        given.seek(0)
        with _connect(path, timeout) as sock:
            request = json.dumps({"argv": argv, "cwd": cwd, "env": env}).encode()
            socket.send_fds(sock, [request], [given.fileno(), out.fileno(), err.fileno()])
            sock.settimeout(timeout)
            pid = int(sock.recv(64))
            try:
                code = int(sock.recv(64))
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                sock.settimeout(None)
                sock.recv(64)
                raise subprocess.TimeoutExpired(["aethr", *argv], timeout, _text(out), _text(err)) from None
        return code, _text(out), _text(err)


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


def _text(stream: Any) -> str:
    """A captured stream as text mode gives it: locale encoding, universal newlines."""
    stream.seek(0)
    return io.TextIOWrapper(io.BytesIO(stream.read())).read()


def _die_with_parent() -> None:
    """The server ends with the session's process, however that ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _warm() -> None:
    """Import what runs import, as aethr imports it (LiteLLM through its own loader), and do
    once the first-use work every run repeats: Typer's command tree, pydantic's plugin scan."""
    import typer.main

    import aethr
    from aethr import cli, config, presets
    from aethr.backends import live

    for module in pkgutil.walk_packages(aethr.__path__, "aethr."):
        if module.name not in {"aethr.__main__", "aethr.reaper"}:
            importlib.import_module(module.name)
    typer.main.get_command(cli.app)
    config.parse(presets.get("plan-implement-review").text)
    live._litellm()
    gc.collect()
    gc.freeze()  # the children inherit these objects; the collector need not walk them again


def _serve(path: str) -> dict[str, Any]:
    """Answer requests until killed; returns only in a forked child: its request."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path + ".new")
    os.rename(path + ".new", path)  # the path appears only once it is bound
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    while True:
        for key, _ in selector.select():
            if key.data is not None:
                _reap(selector, key.fd, *key.data)
                continue
            conn, _ = listener.accept()
            request = _receive(conn)
            if request is None:
                conn.close()
                continue
            pid = os.fork()
            if pid == 0:
                _leave(selector)
                conn.close()
                return request
            for fd in request["fds"]:
                os.close(fd)
            selector.register(os.pidfd_open(pid), selectors.EVENT_READ, (pid, conn))
            conn.send(str(pid).encode())


def _leave(selector: selectors.BaseSelector) -> None:
    """In a child: close the server's sockets and the other children's pidfds."""
    for key in list(selector.get_map().values()):
        if isinstance(key.fileobj, int):
            os.close(key.fileobj)
        else:
            key.fileobj.close()  # type: ignore[union-attr]
        if key.data is not None:
            key.data[1].close()
    selector.close()


def _reap(selector: selectors.BaseSelector, pidfd: int, pid: int, conn: socket.socket) -> None:
    """A child ended: tell its caller how, and forget it."""
    selector.unregister(pidfd)
    os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    with contextlib.suppress(OSError):  # the test that asked may be gone
        conn.send(str(os.waitstatus_to_exitcode(status)).encode())
    conn.close()


def _receive(conn: socket.socket) -> dict[str, Any] | None:
    """One request: JSON (argv, cwd, env) and three descriptors (stdin, stdout, stderr)."""
    try:
        data, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST, 3)
    except OSError:
        return None
    if len(fds) != 3 or not data:
        for fd in fds:
            os.close(fd)
        return None
    request: dict[str, Any] = json.loads(data)
    request["fds"] = fds
    return request


def _become(request: dict[str, Any]) -> None:
    """In a child: take the caller's streams, folder and environment, as exec would give them."""
    for target, fd in enumerate(request["fds"]):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = ["aethr", *request["argv"]]
    sys.path[0] = os.getcwd()  # as `python -m` sets it


def main() -> None:
    _die_with_parent()
    _warm()
    request = _serve(sys.argv[1])
    _become(request)
    runpy.run_module("aethr", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
