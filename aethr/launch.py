"""How a supervised child starts and how its tree ends: under a reaper on Linux, in a process
group of its own elsewhere (see `aethr.proc`, the layer that uses this, and `aethr/reaper.py`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

GRACE_SECONDS = 3.0
_LINUX = sys.platform.startswith("linux")
_REAPER = Path(__file__).with_name("reaper.py")
_REAPER_MARGIN = 10.0  # beyond the grace, before aethr stops waiting for a reaper (a loaded machine)


def check_startable(program: str, env: dict[str, str]) -> None:
    """Raise the OSError `exec` would, before a wrapper hides it behind an exit status."""
    if os.sep in program:
        if not os.path.exists(program):
            raise FileNotFoundError(2, "No such file or directory", program)
        if not os.access(program, os.X_OK) or os.path.isdir(program):
            raise PermissionError(13, "Permission denied", program)
    elif shutil.which(program, path=env.get("PATH")) is None:
        raise FileNotFoundError(2, "No such file or directory", program)


def launch(
    argv: list[str], cwd: Path, env: dict[str, str], stdin: int | None, merge_stderr: bool, supervised: bool
) -> tuple[subprocess.Popen[bytes], int | None]:
    """The process, and the lifeline's write end when a reaper supervises it."""
    source = stdin if stdin is not None else subprocess.DEVNULL
    stderr = subprocess.STDOUT if merge_stderr else subprocess.PIPE
    if not supervised or not _LINUX:
        direct = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=source, stdout=subprocess.PIPE, stderr=stderr, start_new_session=supervised
        )
        return direct, None
    read, write = os.pipe()
    ctype = "=" + env["LC_CTYPE"] if "LC_CTYPE" in env else "-"
    reaper = [sys.executable, "-S", "-I", str(_REAPER), str(read), str(GRACE_SECONDS), ctype, *argv]
    try:
        reaped = subprocess.Popen(
            reaper,
            cwd=cwd,
            env=env,
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=stderr,
            pass_fds=(read,),
            start_new_session=True,
        )
        return reaped, write
    except BaseException:
        os.close(write)
        raise
    finally:
        os.close(read)


def end_reaped(process: subprocess.Popen[bytes], lifeline: int) -> None:
    """Closing the lifeline tells the reaper to end the tree; it exits once it has."""
    os.close(lifeline)
    try:
        process.wait(timeout=GRACE_SECONDS + _REAPER_MARGIN)
    except subprocess.TimeoutExpired:  # a stuck reaper: KILL it, and what stayed in its group
        _killpg(process.pid, signal.SIGKILL)
        process.kill()
        process.wait()


def end_group(process: subprocess.Popen[bytes]) -> None:
    """Without a reaper: TERM to the child's process group, a grace until the group is empty, KILL."""
    _killpg(process.pid, signal.SIGTERM)
    until = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < until and (process.poll() is None or _group_alive(process.pid)):
        time.sleep(0.05)
    _killpg(process.pid, signal.SIGKILL)
    process.wait()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _killpg(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)
