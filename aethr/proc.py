"""The one child-process layer: every process aethr starts (agents, `run:` commands, git).

- stderr is drained on a thread of its own from the moment the child starts, keeping a
  bounded tail (and, for a caller that asks, handed line by line to a hook on the caller's
  own thread), so a child that writes much there never blocks while aethr reads stdout;
- stdin is written on a thread, and only once `follow` has armed the deadline: a child that
  reads late is still stopped by its timeout. `start` returns the child before the first
  byte is written, so the caller's clean-up (the `with` block) covers the write;
- the wait after stdout closes is bounded by the same deadline: a child that closes its
  stdout and runs on is a timeout, not a pass;
- the tree ends with TERM, a grace for the whole tree (until every process of it is gone, at
  most GRACE_SECONDS), then KILL.

Agents and commands are supervised. On Linux each runs under its own small reaper process
(`aethr/reaper.py`), a child subreaper that finds every process of the tree, those that left
with `setsid` included, and ends them all when the command ends, when aethr ends the step, or
when aethr dies, SIGKILL included (it reads aethr's death on a pipe). The reaper starts with
the child, so a command that starts no child pays nothing. On other systems the child runs in
a session of its own, whose process group aethr ends: processes that leave the group, and
the whole tree if aethr is SIGKILLed, can outlive aethr there.

git is not supervised: it runs in aethr's own process group (Ctrl-C reaches it as it reaches
aethr), is killed when aethr stops reading it early, and starts nothing that outlives it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, NamedTuple

from aethr import launch

_LINE_CHARS = 2000  # a stderr line is kept to its last 2,000 characters


class Ended(NamedTuple):
    """How a followed child ended."""

    code: int | None  # its exit status; None when aethr stopped it
    timed_out: bool  # the wall-clock deadline passed
    idle: bool  # no output for `idle` seconds
    stderr_tail: tuple[str, ...]


class Captured(NamedTuple):
    code: int
    stdout: bytes
    stderr: bytes


class Child:
    """One running child: its pipes, the threads that drain them, and how its tree ends.
    Leaving its `with` block ends the tree."""

    def __init__(self, process: subprocess.Popen[bytes], spec: _Start, lifeline: int | None) -> None:
        self.proc = process
        assert process.stdout is not None
        self.stdout: IO[bytes] = process.stdout  # for a caller that reads the output itself (git)
        self.stderr: deque[str] = deque(maxlen=spec.stderr_lines)
        self._spec = spec
        self._lifeline = lifeline
        self._feeding = False
        self._ended = False
        self._lock = threading.Lock()
        # Bounded: a child that writes faster than aethr reads waits on its pipe; memory stays flat.
        self._events: queue.Queue[tuple[bool, bytes] | Callable[[], None] | None] = queue.Queue(maxsize=1024)
        self._threads: list[threading.Thread] = []
        self._stderr_open = process.stderr is not None
        if process.stderr is not None:
            self._thread(self._drain_stderr, process.stderr)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.end()

    def _thread(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def post(self, task: Callable[[], None]) -> None:
        """Run `task` on the thread that follows the child, between its lines (another thread's
        news, such as the relay's metered calls); like a hook, it may raise to stop the child."""
        self._events.put(task)

    def _drain_stderr(self, stream: IO[bytes]) -> None:
        for raw in iter(lambda: stream.readline(65536), b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line.strip():
                self.stderr.append(line[-_LINE_CHARS:])
                if self._spec.on_stderr is not None:
                    self._events.put((True, line.encode()))
        self._stderr_open = False

    def _pump_stdout(self) -> None:
        for raw in iter(self.stdout.readline, b""):
            self._events.put((False, raw))
        self._events.put(None)

    def _feed(self) -> None:
        """Write stdin and close it; a child that closed it or ended did not want the rest."""
        fd = self._spec.stdin_fd
        assert fd is not None
        try:
            view = memoryview(self._spec.stdin or b"")
            while view:
                view = view[os.write(fd, view[:65536]) :]
        except OSError:
            pass
        finally:
            os.close(fd)

    def follow(
        self,
        on_line: Callable[[str], None],
        *,
        timeout: float,
        idle: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_drained: Callable[[], None] | None = None,
    ) -> Ended:
        """Arm the deadline, then write stdin and call `on_line` for each stdout line (decoded,
        newline kept) and the `on_stderr` hook for each stderr line, until the child has closed
        stdout and exited, the deadline passes or it is idle too long (no stdout line for
        `idle` seconds). On a deadline or idle limit the tree is ended and `code` is None.
        `on_drained` is called each time the lines read so far are all handed over (a caller
        may gather lines and pass them on as one piece then, with no delay added).
        A hook may raise to stop: the exception propagates and the `with` block ends the tree."""
        deadline = last = clock()
        deadline += timeout
        if self._spec.stdin_fd is not None:
            self._feeding = True
            self._thread(self._feed)
        self._thread(self._pump_stdout)
        while True:
            left = _left(clock(), deadline, last, idle)
            if left <= 0:
                return self._stop(clock() >= deadline)
            try:
                item = self._events.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if item is None:
                break
            if not self._dispatch(item, on_line):
                last = clock()
            if on_drained is not None and self._events.empty():
                on_drained()
        try:
            code = self.proc.wait(timeout=max(_left(clock(), deadline, last, idle), 0))
        except subprocess.TimeoutExpired:
            return self._stop(clock() >= deadline)
        self._last_stderr(on_line)
        return Ended(code, False, False, tuple(self.stderr))

    def _dispatch(self, item: tuple[bool, bytes] | Callable[[], None], on_line: Callable[[str], None]) -> bool:
        """Hand one line to its hook, or run a posted task; False for a stdout line."""
        if callable(item):
            item()
            return True
        is_stderr, raw = item
        text = raw.decode("utf-8", errors="replace")
        if is_stderr and self._spec.on_stderr is not None:
            self._spec.on_stderr(text)
        elif not is_stderr:
            on_line(text)
        return is_stderr

    def _last_stderr(self, on_line: Callable[[str], None]) -> None:
        """The stderr lines still on their way once the child has exited (a bounded wait)."""
        until = time.monotonic() + 2
        while True:
            try:
                item = self._events.get(timeout=0.05)
            except queue.Empty:
                if not self._stderr_open or time.monotonic() > until:
                    return
                continue
            if item is not None:
                self._dispatch(item, on_line)

    def _stop(self, timed_out: bool) -> Ended:
        self.end()
        return Ended(None, timed_out, not timed_out, tuple(self.stderr))

    def finish(self) -> int:
        """Wait for a child whose stdout the caller has read to its end; its exit status, with
        the stderr tail complete."""
        code = self.proc.wait()
        for thread in self._threads:
            thread.join(timeout=2)
        return code

    def end(self) -> None:
        """End the child's whole tree and release its pipes; safe to call again."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        if self._lifeline is not None:
            launch.end_reaped(self.proc, self._lifeline)
        elif self._spec.supervised:
            launch.end_group(self.proc)
        elif self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._spec.stdin_fd is not None and not self._feeding:
            os.close(self._spec.stdin_fd)
        self._release()

    def _release(self) -> None:
        """Let the reading threads see the end of their pipes, then close them. A reader still
        blocked (a process outside the tree holds the pipe) is a daemon: it is left behind."""
        until = time.monotonic() + 2
        while any(t.is_alive() for t in self._threads) and time.monotonic() < until:
            with contextlib.suppress(queue.Empty):
                while True:  # a reader blocked on a full queue sees the end of its pipe once emptied
                    self._events.get_nowait()
            for thread in self._threads:
                thread.join(timeout=0.05)
        if not any(t.is_alive() for t in self._threads):
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


class _Start(NamedTuple):
    stdin: bytes | None
    stdin_fd: int | None  # the write end of stdin's pipe, written by `follow`
    stderr_lines: int
    on_stderr: Callable[[str], None] | None
    supervised: bool


def start(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    stdin: bytes | None = None,
    merge_stderr: bool = False,
    on_stderr: Callable[[str], None] | None = None,
    stderr_lines: int = 40,
    supervised: bool = True,
) -> Child:
    """Start `argv`, supervised (see the module docstring) unless `supervised` is False. Raises
    OSError (FileNotFoundError, PermissionError) when it cannot start. `stdin` is written by
    `follow` (None: /dev/null); with `merge_stderr` stderr goes to stdout, in arrival order."""
    if supervised:
        launch.check_startable(argv[0], env)
    read = write = None
    if stdin is not None:
        read, write = os.pipe()
    spec = _Start(stdin, write, stderr_lines, on_stderr, supervised)
    try:
        process, lifeline = launch.launch(argv, cwd, env, read, merge_stderr, supervised)
    except BaseException:
        if write is not None:
            os.close(write)
        raise
    finally:
        if read is not None:
            os.close(read)
    return Child(process, spec, lifeline)


def capture(argv: list[str], *, cwd: Path, env: dict[str, str]) -> Captured:
    """Run an unsupervised command to its end, both outputs read at once (git's short calls).
    Raises FileNotFoundError when it is not installed."""
    with subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        try:
            out, err = process.communicate()
        except BaseException:
            process.kill()
            raise
    return Captured(process.returncode, out, err)


def _left(now: float, deadline: float, last: float, idle: float | None) -> float:
    """Seconds until the deadline or the idle limit, whichever comes first."""
    return deadline - now if idle is None else min(deadline - now, idle - (now - last))
