"""`run:` steps: a command in the project, supervised, its output kept head and tail.

A string runs with `/bin/sh -c`, a list is an argv (no shell). stdin is /dev/null;
stdout and stderr are merged in arrival order, streamed as they come, and kept
within the step's `output_tokens`: the head and the tail (test runners print the
first error early and the summary last), with the cut marked, escape sequences and
control characters removed (`controls`), and the run's secrets masked at the door
(`backends.masking`) before the text reaches a prompt, an event or the checkpoint.

The command runs under the one child-process layer (`proc`): the step's timeout
(default 600 s) bounds it even after it closes its output, and when it ends, times
out or is interrupted its whole tree ends (background jobs and `setsid` included).
Its environment is aethr's, less the keys aethr loaded from `.env` (unless the
workflow's `env_passthrough` names them), plus the step's `env` and AETHR_TASK,
AETHR_STEP_ID and AETHR_PASS. A command that cannot run at all (not found, not
executable, a bad cwd, exit 126 or 127) is EnvironmentNotReady: no model can fix
a PATH. Whether a failing command stops the run is the executor's decision.
"""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from aethr import git, proc, sensitive
from aethr.backends import CommandSpec, Completion, Emit, Endpoint, Request
from aethr.controls import strip_controls
from aethr.errors import EnvironmentNotReady
from aethr.events import TextChunk
from aethr.usage import Usage

if TYPE_CHECKING:
    from aethr.schema import Step

_NOT_RUNNABLE = {126: "the command is not executable", 127: "the command was not found"}


def describe(spec: CommandSpec, timeout: float) -> str:
    """What `--show-prompt` shows for a command step: the command, where, how long, which env."""
    added = ", ".join(name for name, _ in spec.env) or "none"
    return f"$ {spec.shown()}\n(cwd: {spec.cwd}, timeout: {timeout:g}s, env added: {added})\n"


class Capture:
    """The head and the tail of a stream of lines within `limit` characters, in bounded memory."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self.head: list[str] = []
        self.head_size = 0
        self.tail: deque[str] = deque()
        self.tail_size = 0
        self.cut = 0  # lines dropped between head and tail

    def add(self, line: str) -> None:
        if self.head_size + len(line) <= self.head_limit and not self.tail:
            self.head.append(line)
            self.head_size += len(line)
            return
        self.tail.append(line[-self.tail_limit :])
        self.tail_size += len(self.tail[-1])
        while self.tail_size > self.tail_limit and len(self.tail) > 1:
            self.tail_size -= len(self.tail.popleft())
            self.cut += 1

    def text(self) -> str:
        middle = f"[… {self.cut} line(s) of output cut here …]\n" if self.cut else ""
        return "".join(self.head) + middle + "".join(self.tail)

    def last_lines(self, count: int) -> list[str]:
        return [line.rstrip("\n") for line in [*self.head, *self.tail][-count:]]


class _Pieces:
    """A command's output lines passed on in pieces: all the lines read so far each time the
    reader has caught up (so nothing waits), at most `SIZE` characters a piece. A loud command
    is then shown as fast as it writes, but not one event a line: 200,000 lines would be
    200,000 events through every sink."""

    SIZE = 65536

    def __init__(self, step_id: str, emit: Emit) -> None:
        self.step_id, self.emit = step_id, emit
        self.lines: list[str] = []
        self.size = 0

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.size += len(line)
        if self.size >= self.SIZE:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            self.emit(TextChunk(self.step_id, "".join(self.lines)))
            self.lines.clear()
            self.size = 0


class CommandBackend:
    edits_tree = True  # a formatter or a generator may change files: the executor records it
    free = True

    def check_ready(self, step: Step, model: str | None, root: Path, endpoint: Endpoint) -> None:
        """A command may change files, and the run records what each step changed with git: so,
        as for an agent, outside a git repository the run stops before its first step."""
        if git.toplevel(root) is None:
            why = git.why_not_a_repository(root)
            where = f"{root} is {why}" if why.startswith("not") else why
            raise EnvironmentNotReady(
                f"step '{step.id}' runs a command, which may change files, and a run records what each "
                f"step changed with git: {where}",
                hint="run `git init` (and commit your work) first; without --exec-commands, commands are not run",
            )

    def complete(self, request: Request, emit: Emit) -> Completion:
        spec = request.command
        assert spec is not None
        where = (request.root / spec.cwd).resolve()
        if not where.is_dir() or not where.is_relative_to(request.root.resolve()):
            raise EnvironmentNotReady(f"step '{request.step_id}': cwd {spec.cwd!r} is not a folder in the project")
        env = {k: v for k, v in os.environ.items() if k not in spec.hidden}
        env |= dict(spec.env) | {"AETHR_TASK": request.task, "AETHR_STEP_ID": request.step_id}
        env["AETHR_PASS"] = str(request.iteration)
        capture = Capture(spec.output_chars)
        began = time.monotonic()
        try:
            child = proc.start(spec.argv(), cwd=where, env=env, merge_stderr=True)
        except OSError as exc:
            raise _not_runnable(request.step_id, spec, exc.strerror or str(exc)) from None

        pieces = _Pieces(request.step_id, emit)

        def line(raw: str) -> None:
            # Masked here as well as at the door: the head/tail cut below may split a very long
            # line inside a key, and half a key is no longer recognisable there.
            clean = sensitive.mask(strip_controls(raw))
            capture.add(clean)
            pieces.add(clean)

        try:
            with child:
                ended = child.follow(line, timeout=request.timeout, on_drained=pieces.flush)
        finally:
            pieces.flush()
        if ended.code in _NOT_RUNNABLE:
            raise _not_runnable(request.step_id, spec, _NOT_RUNNABLE[ended.code], capture.last_lines(3))
        seconds = time.monotonic() - began
        passed = ended.code is not None and ended.code in spec.ok_exit_codes
        status = f"timed out after {request.timeout:g}s" if ended.code is None else f"exit {ended.code}"
        verdict = "passed" if passed else "failed"
        text = f"$ {spec.shown()}\n[{status} · {verdict} · {seconds:.1f}s]\n{capture.text()}"
        return Completion(text, Usage(0, 0, 0.0), passed=passed, last_lines=tuple(capture.last_lines(10)))


def _not_runnable(step_id: str, spec: CommandSpec, why: str, tail: list[str] | None = None) -> EnvironmentNotReady:
    said = f": {' | '.join(tail)}" if tail else ""
    return EnvironmentNotReady(
        f"step '{step_id}': cannot run `{spec.shown()}`: {why}{said}",
        hint="check the command and PATH (a model cannot fix them); the step is not looped",
    )
