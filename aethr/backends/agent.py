"""The shared core of agent backends: a coding-agent CLI that edits the working tree.

An agent module says only what is its own: how to find the binary, its command
line and environment, how to read one line of its event stream, and how its end
maps to success or failure. This core does the rest, the same for every agent:
the prompt on stdin, the process supervised (`proc`: its own group, a wall-clock
timeout, an optional idle limit, the whole tree ended), text and tool lines
streamed, usage reported as it grows, and failures that carry what was spent.

The executor records what the step changed (tree snapshots before and after), so
no agent module looks at files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from aethr import git, proc
from aethr.backends import Completion, Emit, Endpoint, Request
from aethr.errors import EnvironmentNotReady, StepFailed
from aethr.events import TextChunk, Usage, UsageReported


class AgentRun:
    """Follows one agent process: its text, usage, errors and stderr. Subclasses read events."""

    def __init__(self, request: Request, emit: Emit) -> None:
        self.request = request
        self.emit = emit
        self.parts: list[str] = []
        self.usage = Usage(0, 0, 0.0)
        self.errors: list[str] = []

    @property
    def step(self) -> str:
        return self.request.step_id

    def say(self, text: str) -> None:
        self.parts.append(text)
        self.emit(TextChunk(self.request.step_id, text))

    def spent(self, more: Usage) -> None:
        """Add one finished call's usage and report the step's total so far."""
        self.usage = self.usage + more
        self.emit(UsageReported(self.request.step_id, self.usage))

    def line(self, text: str) -> None:
        """One stdout line: JSON objects are events; anything else (banners, warnings) is not."""
        try:
            event = json.loads(text)
        except ValueError:
            return
        if isinstance(event, dict):
            self.event(event)

    def event(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def stderr_line(self, line: str) -> None:
        """One stderr line, for agents that report something only there."""

    def check(self, code: int, stderr: tuple[str, ...]) -> None:
        """Raise StepFailed when the agent's run failed; `code` is its exit status."""
        raise NotImplementedError

    def failed(self, message: str, hint: str | None = "resume to retry") -> StepFailed:
        return StepFailed(f"step '{self.step}': {message}", hint=hint, usage=self.usage)


class AgentBackend:
    """A coding-agent CLI as a backend. Subclasses set the class attributes and implement
    `command`, `environment` and `new_run`."""

    edits_tree = True
    free = False
    name = "agent"  # as users know it: "OpenCode"
    program = ""  # the default executable name
    install = ""  # the command that installs it
    bin_variable = ""  # the variable that names the executable

    def __init__(self, binary: str | None) -> None:
        self._binary = binary

    def executable(self) -> str:
        """The agent's executable. Raises EnvironmentNotReady with the install command."""
        name = self._binary or self.program
        found = shutil.which(name)
        if found is None:
            where = (
                f"{self.bin_variable}={self._binary} is not an executable"
                if self._binary
                else f"`{self.program}` is not on PATH"
            )
            raise EnvironmentNotReady(
                f"this workflow has a {self.name} step, but {where}",
                hint=f"install it with `{self.install}`, or set {self.bin_variable} to its path",
            )
        return found

    def check_ready(self, step_id: str, model: str | None, root: Path, endpoint: Endpoint) -> None:
        self.executable()
        self.check_root(root, step_id)

    def check_root(self, root: Path, step_id: str) -> None:
        if git.toplevel(root) is None:
            raise EnvironmentNotReady(
                f"step '{step_id}' hands work to {self.name}, which needs a git repository to record "
                f"what it changed, and {root} is not in one ({git.why_not_a_repository(root)})",
                hint="run `git init` (and commit your work) first",
            )

    def command(self, request: Request) -> list[str]:
        raise NotImplementedError

    def environment(self, request: Request) -> dict[str, str]:
        env = dict(os.environ)
        env["PWD"] = str(request.root)
        return env

    def new_run(self, request: Request, emit: Emit) -> AgentRun:
        raise NotImplementedError

    def complete(self, request: Request, emit: Emit) -> Completion:
        self.check_root(request.root, request.step_id)
        run = self.new_run(request, emit)
        try:
            child = proc.start(
                self.command(request),
                cwd=request.root,
                env=self.environment(request),
                stdin=request.prompt.encode(),
            )
        except OSError as exc:
            raise EnvironmentNotReady(
                f"cannot start {self.name}: {exc.strerror or exc}", hint=f"reinstall: {self.install}"
            ) from None
        try:
            # On Ctrl-C the executor counts the usage reported so far (UsageReported), as a floor.
            ended = child.follow(run.line, timeout=request.timeout, idle=request.idle, on_stderr=run.stderr_line)
        finally:
            proc.end_tree(child.proc)
        if ended.code is None:
            limit = f"within {request.timeout:g}s" if ended.timed_out else f"(no output for {request.idle:g}s)"
            setting = "`timeout`" if ended.timed_out else "idle limit"
            raise StepFailed(
                f"step '{request.step_id}': {self.name} did not finish {limit} and was stopped "
                "(with every process it started)",
                hint=f"raise the step's {setting}, then resume",
                usage=run.usage.cut_short(),
            )
        run.check(ended.code, ended.stderr_tail)
        return Completion("".join(run.parts), run.usage)


def as_dict(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: event fields are never trusted."""
    return value if isinstance(value, dict) else {}


def relative(target: str, root: Path) -> str:
    """A path the agent reported, shown relative to the project root when inside it."""
    if target.startswith(str(root) + os.sep):
        return target[len(str(root)) + 1 :]
    return target
