"""`backend: opencode`: hand a step to the OpenCode CLI, which edits the working tree.

    opencode run --format json --dir ROOT --title "aethr: STEP" [-m provider/model] [--auto]

The prompt goes on stdin (a long prompt would break the argv limit) and stdin is
closed. Its JSON events stream into the step's output: text as it comes, one line
per tool call. The executor records what the step changed (a tree snapshot
before and after), so this module never looks at files.

The step fails when OpenCode exits non-zero, reports an `error` event, or had a
tool call auto-rejected for permissions (OpenCode still exits 0 then: the
rejection is only visible in its tool error and a stderr line, so both are
read). A wall-clock timeout, a failure, Ctrl-C and aethr's own exit end the
whole process tree, including shells that OpenCode's bash tool started in
sessions of their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from aethr import git
from aethr.backends import Completion, Emit, Request
from aethr.errors import EnvironmentNotReady, StepFailed
from aethr.events import TextChunk, Usage
from aethr.settings import env_value

INSTALL = "npm install -g opencode-ai"
_PERMISSION_LINE = re.compile(r"permission requested: (?P<what>.+?); auto-rejecting")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class OpenCodeBackend:
    edits_tree = True

    def __init__(self, binary: str | None) -> None:
        self._binary = binary

    def executable(self) -> str:
        """The opencode executable. Raises EnvironmentNotReady with the install command."""
        name = self._binary or "opencode"
        found = shutil.which(name)
        if found is None:
            where = (
                f"AETHR_OPENCODE_BIN={self._binary} is not an executable"
                if self._binary
                else ("`opencode` is not on PATH")
            )
            raise EnvironmentNotReady(
                f"this workflow has an OpenCode step, but {where}",
                hint=f"install it with `{INSTALL}`, or set AETHR_OPENCODE_BIN to its path",
            )
        return found

    def check_ready(self, step_id: str, model: str | None, root: Path) -> None:
        self.executable()
        self.check_root(root, step_id)

    def check_root(self, root: Path, step_id: str) -> None:
        try:
            top = git.toplevel(root)
        except git.GitMissing:
            top = None
        if top is None:
            raise EnvironmentNotReady(
                f"step '{step_id}' hands work to OpenCode, which needs a git repository to record "
                f"what it changed, and {root} is not in one",
                hint="run `git init` (and commit your work) first",
            )

    def command(self, request: Request) -> list[str]:
        cmd = [
            self.executable(),
            "run",
            "--format",
            "json",
            "--dir",
            str(request.root),
            "--title",
            f"aethr: {request.step_id}",
        ]
        if request.model:
            cmd += ["-m", request.model]
        if request.unsafe_permissions:
            cmd.append("--auto")
        return cmd

    def environment(self, request: Request) -> dict[str, str]:
        env = dict(os.environ)
        env["PWD"] = str(request.root)
        env.setdefault("OPENCODE_DISABLE_AUTOUPDATE", "1")
        if request.unsafe_permissions:
            config: dict[str, Any] = {}
            raw = env_value("OPENCODE_CONFIG_CONTENT")
            if raw:
                with contextlib.suppress(ValueError):
                    loaded = json.loads(raw)
                    config = loaded if isinstance(loaded, dict) else {}
            config["permission"] = "allow"
            env["OPENCODE_CONFIG_CONTENT"] = json.dumps(config)
        return env

    def complete(self, request: Request, emit: Emit) -> Completion:
        self.check_root(request.root, request.step_id)
        _become_subreaper()
        run = _Run(request, emit)
        try:
            proc = subprocess.Popen(
                self.command(request),
                cwd=request.root,
                env=self.environment(request),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise EnvironmentNotReady(
                f"cannot start OpenCode: {exc.strerror or exc}", hint=f"reinstall: {INSTALL}"
            ) from None
        try:
            return run.follow(proc)
        finally:
            end_tree(proc)


class _Run:
    """Follows one OpenCode process: its events, its stderr, its deadline."""

    def __init__(self, request: Request, emit: Emit) -> None:
        self.request = request
        self.emit = emit
        self.parts: list[str] = []
        self.usage = Usage(0, 0, 0.0)
        self.errors: list[str] = []
        self.rejected: list[str] = []
        self.stderr: deque[str] = deque(maxlen=40)

    def say(self, text: str) -> None:
        self.parts.append(text)
        self.emit(TextChunk(self.request.step_id, text))

    def follow(self, proc: subprocess.Popen[bytes]) -> Completion:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        err_thread = threading.Thread(target=self._read_stderr, args=(proc.stderr,), daemon=True)
        err_thread.start()
        try:
            proc.stdin.write(self.request.prompt.encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        deadline = time.monotonic() + self.request.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                end_tree(proc)
                raise StepFailed(
                    f"step '{self.request.step_id}': OpenCode did not finish within {self.request.timeout:g}s "
                    "and was stopped (with every process it started)",
                    hint="raise the step's `timeout`, then resume",
                )
            try:
                line = lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                break
            self._event(line.decode("utf-8", errors="replace"))
        code = proc.wait()
        err_thread.join(timeout=2)
        self._check(code)
        text = "".join(self.parts)
        return Completion(text, self.usage)

    def _read_stderr(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            line = _ANSI.sub("", raw.decode("utf-8", errors="replace")).strip()
            if not line:
                continue
            self.stderr.append(line)
            match = _PERMISSION_LINE.search(line)
            if match:
                self.rejected.append(match.group("what"))

    def _event(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return  # OpenCode may print non-JSON lines (warnings, banners): not events
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        part = _dict(event.get("part"))
        if kind == "text":
            text = str(part.get("text", ""))
            if text:
                self.say(text if text.endswith("\n") else text + "\n")
        elif kind == "tool_use":
            self._tool(part)
        elif kind == "step_finish":
            tokens = _dict(part.get("tokens"))
            cost = part.get("cost")
            self.usage = self.usage + Usage(
                int(tokens.get("input", 0) or 0),
                int(tokens.get("output", 0) or 0),
                float(cost) if isinstance(cost, int | float) else None,
            )
        elif kind == "error":
            error = event.get("error")
            message = (
                error.get("data", {}).get("message") or error.get("message") or error.get("name")
                if isinstance(error, dict)
                else error
            )
            self.errors.append(str(message or "unknown error"))
            self.say(f"! OpenCode error: {message}\n")

    def _tool(self, part: dict[str, Any]) -> None:
        state = _dict(part.get("state"))
        status = str(state.get("status", "?"))
        if status in ("pending", "running"):
            return
        tool = str(part.get("tool", "tool"))
        inputs = _dict(state.get("input"))
        target = state.get("title") or inputs.get("filePath") or inputs.get("command") or inputs.get("pattern") or ""
        target = _relative(str(target), self.request.root)
        line = f"· {tool} {target}: {status}".replace("  ", " ")
        error = str(state.get("error", ""))
        if status == "error" and error:
            line += f" ({error})"
            if "rejected permission" in error:
                self.rejected.append(f"{tool} ({target})")
        self.say(line + "\n")

    def _check(self, code: int) -> None:
        step = self.request.step_id
        if self.rejected:
            what = ", ".join(dict.fromkeys(self.rejected))
            raise StepFailed(
                f"step '{step}': OpenCode was refused permission for: {what}; its work is incomplete",
                hint="set `unsafe_permissions: true` on the step to allow every tool, or allow that "
                "permission in your OpenCode config, then resume",
            )
        if self.errors:
            raise StepFailed(f"step '{step}': OpenCode reported an error: {self.errors[-1]}", hint="resume to retry")
        if code != 0:
            tail = " | ".join(list(self.stderr)[-3:]) or "no output on stderr"
            raise StepFailed(f"step '{step}': OpenCode exited with status {code}: {tail}", hint="resume to retry")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _relative(target: str, root: Path) -> str:
    if target.startswith(str(root) + os.sep):
        return target[len(str(root)) + 1 :]
    return target


def _pump(stream: Any, lines: queue.Queue[bytes | None]) -> None:
    for raw in iter(stream.readline, b""):
        lines.put(raw)
    lines.put(None)


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, found through /proc (shells that left the process group included)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
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


def _become_subreaper() -> None:
    """Make processes orphaned below aethr (shells OpenCode started with setsid) become
    aethr's children instead of init's, so `end_tree` can still find and end them."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass  # not Linux: only the process group is ended


def end_tree(proc: subprocess.Popen[bytes]) -> None:
    """End OpenCode and everything it started: TERM, a short grace, then KILL.

    aethr runs no other child process while a step is in flight, so every process
    below aethr at this point belongs to OpenCode's tree (orphans included, thanks to
    the subreaper flag)."""
    tree = [proc.pid, *descendants(os.getpid())] if proc.poll() is None else descendants(os.getpid())
    tree = list(dict.fromkeys(tree))
    if not tree:
        return
    _signal_all(proc, tree, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=3)
    _signal_all(proc, [*tree, *descendants(os.getpid())], signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=3)


def _signal_all(proc: subprocess.Popen[bytes], pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
