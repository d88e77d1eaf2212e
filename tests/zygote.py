"""`python -m aethr` for the tests, forked from one warm interpreter per test session.

Starting aethr costs ~0.1 s of CPU, and a live run's LiteLLM import ~2.5 s more; the suite
starts well over a thousand of them. So the session's first process starts one server (this
module, as `python -m tests.zygote SOCKET`) that imports every aethr module and LiteLLM once,
the way aethr does, and what LiteLLM imports on its first call of each provider's format
(listed by a throwaway process, `--first-call`), and then forks a child per call. The child takes the call's working
folder, environment and standard streams (passed over the socket) and runs `aethr` as
`python -m aethr` would, down to how it exits (aethr's own flush and `os._exit`, or the
interpreter's exit): its exit code, stdout and stderr are what a fresh process gives. It is
a real process of its own, so signals, the reaper, child processes and the file system
behave as in a user's run; only the import work is shared. The child also takes up what a
fresh start would redo: TZ (`tzset`), TMPDIR, signal dispositions, the collector turned on,
and the C locale's coercion to C.UTF-8 (PEP 538) when the server had it.

What a fork cannot give, a test keeps a fresh interpreter for: start-up itself (import lists,
`-X importtime`, the header before LiteLLM's import, the signal tests, which start `python -m
aethr` with Popen), and what only start-up reads: `tests.conftest.aethr` falls back by itself
when a call sets a PYTHON*, LANG, LC_* or LITELLM_* variable, or is asked `fresh=True`.
AETHR_TEST_FRESH=1 makes every call a fresh interpreter. What stays shared, knowingly: the
hash seed (set iteration order is the session's; aethr sorts what it shows).

The client (`tests/forked.py`) passes pipes, as `subprocess.run` does, reads them to their end,
and kills the child if the call ends any other way (its ceiling, an interrupt). A request's
JSON travels in a file, so a large argument or variable fits.

The server is single-threaded (a fork copies one thread): a selector waits for requests and
for each child's pidfd, and answers each request with two messages: the child's pid, then its
exit code as `subprocess` reports it (negative for a signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import os
import pkgutil
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # the checkout: `tests` imports from here


def _die_with_parent(parent: int) -> None:
    """The server ends with the session's process, however that ends (even before this line)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


_children: set[int] = set()


def _end(signum: int, frame: object) -> None:
    """SIGTERM (`Server.stop`): the children still running end with the server."""
    for pid in _children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    os._exit(0)


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
    for name in _first_call_modules():
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    assert threading.active_count() == 1, "the warm-up started a thread: a fork would lose it"
    gc.collect()
    gc.freeze()  # the children inherit these objects; the collector need not walk them again


def _first_call_modules() -> list[str]:
    """What LiteLLM imports on its first call of each provider's format (~0.4 s of CPU every
    live child would repeat), as listed by a throwaway process that makes those calls to the
    loopback fake: the server itself never opens a connection or starts a thread."""
    lister = [sys.executable, "-m", "tests.zygote", "--first-call"]
    done = subprocess.run(lister, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    return done.stdout.split() if done.returncode == 0 else []


def _list_first_call() -> None:
    from aethr.backends import live
    from tests.fake_openai import FakeOpenAI

    litellm = live._litellm()
    before = set(sys.modules)
    fake = FakeOpenAI().start()
    fake.script = [{"kind": "stream", "text": "ok"}]
    base = f"http://127.0.0.1:{fake.port}"
    for model, api_base in [("openai/m", f"{base}/v1"), ("anthropic/m", base), ("gemini/m", base)]:
        with contextlib.suppress(Exception):
            answer = litellm.completion(
                model=model, messages=[{"role": "user", "content": "x"}], stream=True, api_base=api_base, api_key="k"
            )
            for _ in answer:
                pass
    fake.stop()
    print("\n".join(sorted(set(sys.modules) - before)))


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
            _children.add(pid)
            for fd in request["fds"]:
                os.close(fd)
            selector.register(os.pidfd_open(pid), selectors.EVENT_READ, (pid, conn))
            conn.send(str(pid).encode())


def _leave(selector: selectors.BaseSelector) -> None:
    """In a child: forget the server's signal handler and children, close its sockets and pidfds."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _children.clear()
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
    _children.discard(pid)
    with contextlib.suppress(OSError):  # the test that asked may be gone
        conn.send(str(os.waitstatus_to_exitcode(status)).encode())
    conn.close()


def _receive(conn: socket.socket) -> dict[str, Any] | None:
    """One request: a file holding its JSON (argv, cwd, env), then stdin, stdout and stderr."""
    try:
        _, fds, _, _ = socket.recv_fds(conn, 16, 4)
    except OSError:
        return None
    if len(fds) != 4:
        for fd in fds:
            os.close(fd)
        return None
    with os.fdopen(fds[0], "rb") as body:
        body.seek(0)
        request: dict[str, Any] = json.loads(body.read())
    request["fds"] = fds[1:]
    return request


def _become(request: dict[str, Any]) -> None:
    """In a child: take the caller's streams, folder and environment, as exec would give them."""
    for target, fd in enumerate(request["fds"]):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    env = request["env"]
    if _COERCED and not env.get("LC_ALL") and "LC_CTYPE" not in env:
        env["LC_CTYPE"] = _COERCED  # Python's start-up coerces a C locale (PEP 538), as it did here
    os.environ.clear()
    os.environ.update(env)
    time.tzset()  # TZ
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    gc.enable()  # as a fresh interpreter starts (aethr turns it off first thing)
    sys.argv = ["aethr", *request["argv"]]
    sys.path[0] = os.getcwd()  # as `python -m` sets it


# The server starts without LC_CTYPE: one here is the interpreter's own coercion.
_COERCED = os.environ.get("LC_CTYPE")


def main() -> None:
    if sys.argv[1] == "--first-call":
        _list_first_call()
        return
    _die_with_parent(int(sys.argv[2]))
    signal.signal(signal.SIGTERM, _end)
    _warm()
    request = _serve(sys.argv[1])
    _become(request)
    runpy.run_module("aethr", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
