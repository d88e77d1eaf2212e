"""The supervising process behind every agent and `run:` command on Linux: it runs one command
and ends everything that command starts, even after aethr itself was SIGKILLed.

aethr starts it (`aethr.proc`) as `python -S -I reaper.py LIFELINE GRACE LC_CTYPE COMMAND...`;
it is never imported, and uses the standard library only, so it starts in milliseconds.

- It makes itself a child subreaper (PR_SET_CHILD_SUBREAPER): a process of the tree that is
  orphaned, a shell's background job or a tool that left with `setsid`, is reparented to it,
  not to init, so walking /proc from its own pid finds the whole tree, sessions included.
- It forks the command (which dies with it through PR_SET_PDEATHSIG, should it be killed).
- It reads the lifeline, a pipe whose other end only aethr holds. End of file means aethr
  closed it (ending the step) or died: either way it ends the tree. So does the command's exit.
- Ending the tree: TERM to every process in it, then wait until every one is gone or GRACE
  seconds have passed (a test runner's clean-up under `sh -c` gets its time), then KILL.
- It exits as the command did (the same code, or killed by the same signal).
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import select
import signal
import sys
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_HANDLED = (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
_told_to_stop: list[int] = []  # signals asking the reaper itself to end the tree
_command_status: list[int] = []  # the command's wait status, once reaped


def _note(signum: int, _frame: object) -> None:
    if signum != signal.SIGCHLD:
        _told_to_stop.append(signum)


def _spawn(command: list[str], env: dict[str, str], libc: ctypes.CDLL) -> int:
    """Fork and exec `command`; exec errors are reported on stderr as a shell would (127, 126)."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    try:
        signal.set_wakeup_fd(-1)
        # Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across exec.
        for signum in (*_HANDLED, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(signum, signal.SIG_DFL)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the reaper died before prctl took effect
            os._exit(1)
        os.execvpe(command[0], command, env)
    except OSError as exc:
        os.write(2, f"aethr: cannot run {command[0]}: {exc.strerror}\n".encode())
        os._exit(127 if exc.errno == errno.ENOENT else 126)
    finally:
        os._exit(126)


def _reap(command: int) -> None:
    """Collect every child that has exited (orphans of the tree included), keeping the command's status."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid == command:
            _command_status.append(status)


def _descendants() -> list[int]:
    """Every live process below this one, found by walking /proc (zombies are already gone)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in (b"Z", b"X"):
            children.setdefault(int(fields[1]), []).append(int(name))
    found: list[int] = []
    todo = [os.getpid()]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:  # noqa: SIM105 (contextlib costs the reaper's start-up more than the whole walk)
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _settle(wake: int, seconds: float) -> None:
    """Sleep until a child changes state or `seconds` pass; drain the wake-up pipe."""
    if select.select([wake], [], [], seconds)[0]:
        try:
            while os.read(wake, 512):
                pass
        except BlockingIOError:
            pass


def _watch(command: int, lifeline: int, wake: int) -> None:
    """Return when the command has exited, the lifeline was closed, or the reaper was signalled."""
    while not _command_status and not _told_to_stop:
        ready = select.select([lifeline, wake], [], [])[0]
        if wake in ready:
            _settle(wake, 0)
        _reap(command)
        if lifeline in ready and not os.read(lifeline, 512):
            return


def _end_tree(command: int, wake: int, grace: float) -> None:
    """TERM to the whole tree; wait until all of it is gone or the grace has run out; KILL the rest."""
    tree = _descendants()
    _signal(tree, signal.SIGTERM)
    _signal(tree, signal.SIGCONT)  # a stopped process acts on its TERM only once it runs
    deadline = time.monotonic() + grace
    while _descendants() and time.monotonic() < deadline:
        _settle(wake, 0.05)
        _reap(command)
    for _ in range(200):  # a process forking while it is killed shows up in the next walk
        left = _descendants()
        if not left:
            break
        _signal(left, signal.SIGKILL)
        _settle(wake, 0.01)
        _reap(command)
    _reap(command)


def _exit_as(status: int | None) -> None:
    """Exit as the command did: its exit code, or death by its signal."""
    if status is None:
        os._exit(1)
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the reaper's own core is of no use
        signal.set_wakeup_fd(-1)
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)
    os._exit(os.waitstatus_to_exitcode(status))


def main(argv: list[str]) -> None:
    lifeline, grace, ctype, command = int(argv[1]), float(argv[2]), argv[3], argv[4:]
    os.set_inheritable(lifeline, False)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    env = dict(os.environ)
    # Python's start-up sets LC_CTYPE under the C locale (PEP 538): give the command the original.
    env.pop("LC_CTYPE", None)
    if ctype.startswith("="):
        env["LC_CTYPE"] = ctype[1:]
    wake, wake_in = os.pipe()
    os.set_blocking(wake, False)
    os.set_blocking(wake_in, False)
    for signum in _HANDLED:
        signal.signal(signum, _note)
    signal.set_wakeup_fd(wake_in)
    pid = _spawn(command, env, libc)
    # The pipes belong to the command's tree: their ends close when it is gone, not when the reaper is.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    _watch(pid, lifeline, wake)
    _end_tree(pid, wake, grace)
    _exit_as(_command_status[0] if _command_status else None)


if __name__ == "__main__":
    main(sys.argv)
