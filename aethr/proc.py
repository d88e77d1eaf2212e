"""The one process supervisor: start a child, feed it, follow it, end its whole tree.

Every child process that is not git (agent CLIs, and command steps) runs through
here. A child:
- starts in a session of its own (its own process group), through a tiny exec
  wrapper that sets PR_SET_PDEATHSIG on Linux, so the child dies with aethr even
  when aethr is SIGKILLed (where the OS allows; `preexec_fn` is not thread-safe,
  so the wrapper does it in the child before `exec`);
- gets its stdin written once and closed;
- has its stdout read line by line on a thread, with a wall-clock deadline and an
  idle limit (no line for N seconds), and the last lines of its stderr kept;
- is ended with its whole tree: TERM, a short grace, then KILL, for the process
  group and every process below aethr (aethr becomes a child subreaper, so shells
  the child started with `setsid` are reparented to aethr and still found).

aethr runs one supervised child at a time, so "every process below aethr" is that
child's tree.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, NamedTuple

GRACE_SECONDS = 3.0
# Runs in the child before exec: die with the parent (SIGKILL included), then become the command.
# If the parent died before prctl took effect, getppid() no longer names it: exit at once.
_WRAPPER = (
    "import ctypes,os,sys\n"
    "try:\n"
    " ctypes.CDLL(None).prctl(1,9,0,0,0)\n"  # PR_SET_PDEATHSIG, SIGKILL
    "except Exception:\n"
    " pass\n"
    "os.getppid()==int(sys.argv[1]) or os._exit(1)\n"
    "try:\n"
    " os.execvp(sys.argv[2],sys.argv[2:])\n"
    "except OSError as e:\n"
    " sys.stderr.write(f'aethr-exec: {e.strerror}\\n');os._exit(127 if e.errno==2 else 126)\n"
)


class Ended(NamedTuple):
    """How a supervised child ended."""

    code: int | None  # its exit status; None when aethr stopped it
    timed_out: bool  # the wall-clock deadline passed
    idle: bool  # no output for `idle` seconds
    stderr_tail: tuple[str, ...]


class Child:
    """One running child process and the threads that read it."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr_lines: int) -> None:
        self.proc = proc
        self.stderr: deque[str] = deque(maxlen=stderr_lines)
        # Bounded: a child that writes faster than aethr reads waits on its pipe; memory stays flat.
        self._lines: queue.Queue[bytes | None] = queue.Queue(maxsize=1024)
        self._stderr_hook: Callable[[str], None] | None = None
        self._hook_failed: BaseException | None = None  # what the stderr hook raised
        assert proc.stdout is not None
        threading.Thread(target=_pump, args=(proc.stdout, self._lines), daemon=True).start()
        # With stderr merged into stdout there is no second stream to read.
        self._err_thread = threading.Thread(target=self._read_stderr, args=(proc.stderr,), daemon=True)

    def _drain(self) -> None:
        """Empty the queue, so a reader blocked on a full one sees the end of the pipe and stops."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._lines.get_nowait()

    def _join_stderr(self, seconds: float) -> None:
        if self._err_thread.is_alive():
            self._err_thread.join(timeout=seconds)

    def _read_stderr(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not line.strip():
                continue
            self.stderr.append(line)
            if self._stderr_hook is not None and self._hook_failed is None:
                try:
                    self._stderr_hook(line)
                except Exception as exc:  # handed to `follow`, which raises it
                    self._hook_failed = exc
                    end_tree(self.proc)

    def follow(
        self,
        on_line: Callable[[str], None],
        *,
        timeout: float,
        idle: float | None = None,
        on_stderr: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Ended:
        """Call `on_line` for each stdout line (decoded, newline kept) until the child closes
        stdout, the deadline passes or it is idle too long; then wait for it. On a deadline
        or idle limit the tree is ended and `code` is None. `on_line` may raise to stop;
        `on_stderr` too: the tree is ended and `follow` raises what it raised."""
        self._stderr_hook = on_stderr
        self._err_thread.start()
        start = clock()
        deadline = start + timeout
        last = start
        while True:
            now = clock()
            if now >= deadline or (idle is not None and now - last >= idle):
                end_tree(self.proc)
                self._drain()
                self._join_stderr(1)
                return Ended(None, now >= deadline, now < deadline, tuple(self.stderr))
            limit = deadline - now if idle is None else min(deadline - now, idle - (now - last))
            try:
                raw = self._lines.get(timeout=max(min(limit, 0.5), 0.01))
            except queue.Empty:
                continue
            if raw is None:
                break
            last = clock()
            on_line(raw.decode("utf-8", errors="replace"))
        code = self.proc.wait()
        self._join_stderr(2)
        if self._hook_failed is not None:
            raise self._hook_failed
        return Ended(code, False, False, tuple(self.stderr))


def start(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    stdin: bytes | None = None,
    merge_stderr: bool = False,
    stderr_lines: int = 40,
) -> Child:
    """Start `argv` supervised. Raises OSError (FileNotFoundError, PermissionError) when it
    cannot start; `stdin` is written and closed (None: /dev/null)."""
    become_subreaper()
    wrapped = argv
    if sys.platform.startswith("linux"):
        wrapped = [sys.executable, "-S", "-I", "-c", _WRAPPER, str(os.getpid()), *argv]
        _check_startable(argv[0], env)
    proc = subprocess.Popen(
        wrapped,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        start_new_session=True,
    )
    child = Child(proc, stderr_lines)
    if stdin is not None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    return child


def _check_startable(program: str, env: dict[str, str]) -> None:
    """Raise the OSError `exec` would, before the wrapper hides it behind an exit status."""
    import shutil

    if os.sep in program:
        if not os.path.exists(program):
            raise FileNotFoundError(2, "No such file or directory", program)
        if not os.access(program, os.X_OK) or os.path.isdir(program):
            raise PermissionError(13, "Permission denied", program)
    elif shutil.which(program, path=env.get("PATH")) is None:
        raise FileNotFoundError(2, "No such file or directory", program)


def _pump(stream: IO[bytes], lines: queue.Queue[bytes | None]) -> None:
    for raw in iter(stream.readline, b""):
        lines.put(raw)
    lines.put(None)


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, found through /proc (shells that left the group included)."""
    children: dict[int, list[int]] = {}
    proc_dir = Path("/proc")
    for entry in proc_dir.iterdir() if proc_dir.is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


_subreaper = False


def become_subreaper() -> None:
    """Make processes orphaned below aethr become aethr's children instead of init's, so
    `end_tree` can still find and end them. Linux only; elsewhere only the group is ended."""
    global _subreaper
    if _subreaper:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        _subreaper = True
    except (OSError, AttributeError):
        pass


def end_tree(proc: subprocess.Popen[bytes]) -> None:
    """End `proc` and everything it started: TERM, a short grace, then KILL."""
    tree = [proc.pid, *descendants(os.getpid())] if proc.poll() is None else descendants(os.getpid())
    tree = list(dict.fromkeys(tree))
    if not tree:
        return
    _signal_all(proc, tree, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=GRACE_SECONDS)
    _signal_all(proc, [*tree, *descendants(os.getpid())], signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=GRACE_SECONDS)
    _reap()


def _reap() -> None:
    """Collect orphans that were reparented to aethr and have exited, so none stays a zombie."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _signal_all(proc: subprocess.Popen[bytes], pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
