"""`backend: opencode`: hand a step to the OpenCode CLI, which edits the working tree.

    opencode run --format json --dir ROOT --title "aethr: STEP" [-m provider/model] [--auto]

What is OpenCode's own lives here: its command line and environment, and how to
read its JSON events (`text`, `tool_use`, `step_finish` with tokens and cost,
`error`). Everything else (stdin, the process tree, timeouts) is the shared agent
core in `backends.agent`.

The step fails when OpenCode exits non-zero, reports an `error` event, or had a
tool call auto-rejected for permissions (OpenCode still exits 0 then: the
rejection is only visible in its tool error and a stderr line, so both are read).
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

from aethr import pricing
from aethr.backends import Emit, Request
from aethr.backends.agent import AgentBackend, AgentRun, as_dict, count, relative
from aethr.settings import env_value
from aethr.usage import Usage

_PERMISSION_LINE = re.compile(r"permission requested: (?P<what>.+?); auto-rejecting")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class OpenCodeBackend(AgentBackend, agent="opencode"):
    reports_cost = True  # `cost` on each step_finish (OpenCode prices the calls itself)

    def arguments(self, request: Request, home: Path | None) -> list[str]:
        cmd = ["run", "--format", "json", "--dir", str(request.root)]
        cmd += ["--title", f"aethr: {request.step_id}"]
        if request.model:
            cmd += ["-m", request.model]
        if request.unsafe_permissions:
            cmd.append("--auto")
        return cmd

    def own_variables(self, request: Request) -> set[str]:
        """OpenCode reads the key of its model's provider as `<PROVIDER>_API_KEY` (and an
        endpoint as `<PROVIDER>_BASE_URL`), and its settings from OPENCODE_CONFIG_CONTENT."""
        provider = (request.model or "").partition("/")[0].upper().replace("-", "_")
        found = {f"{provider}_API_KEY", f"{provider}_BASE_URL", f"{provider}_API_BASE"} if provider else set()
        return super().own_variables(request) | found | {"OPENCODE_CONFIG_CONTENT"}

    def environment(self, request: Request, home: Path | None = None) -> dict[str, str]:
        env = super().environment(request, home)
        env.setdefault("OPENCODE_DISABLE_AUTOUPDATE", "1")
        if request.unsafe_permissions:
            config: dict[str, Any] = {}
            raw = env_value("OPENCODE_CONFIG_CONTENT")
            if raw:
                with contextlib.suppress(ValueError):
                    config = as_dict(json.loads(raw))
            config["permission"] = "allow"
            env["OPENCODE_CONFIG_CONTENT"] = json.dumps(config)
        return env

    def new_run(self, request: Request, emit: Emit) -> AgentRun:
        return _OpenCodeRun(request, emit)


class _OpenCodeRun(AgentRun):
    def __init__(self, request: Request, emit: Emit) -> None:
        super().__init__(request, emit)
        self.rejected: list[str] = []

    def _priced(self) -> bool:
        return self.request.model is not None and pricing.price(self.request.model) is not None

    def stderr_line(self, line: str) -> None:
        match = _PERMISSION_LINE.search(_ANSI.sub("", line))
        if match:
            self.rejected.append(match.group("what"))

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        part = as_dict(event.get("part"))
        if kind == "text":
            text = str(part.get("text", ""))
            if text:
                self.say(text if text.endswith("\n") else text + "\n")
        elif kind == "tool_use":
            self._tool(part)
        elif kind == "step_finish":
            self.spent(self._step_usage(part))
        elif kind == "error":
            message = _error_message(event.get("error"))
            self.errors.append(message)
            self.say(f"! OpenCode error: {message}\n")

    def _step_usage(self, part: dict[str, Any]) -> Usage:
        """One call's usage from its `step_finish`: OpenCode's `input` leaves out the tokens read
        from and written to the cache (`cache.read`, `cache.write`), so they are added back; its
        `cost` already prices each part at its own rate."""
        tokens = as_dict(part.get("tokens"))
        cache = as_dict(tokens.get("cache"))
        read, written = count(cache.get("read")), count(cache.get("write"))
        prompt, completion = count(tokens.get("input")) + read + written, count(tokens.get("output"))
        cost = part.get("cost")
        known = float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None
        if known == 0 and prompt + completion and not self._priced():
            known = None  # OpenCode says $0 for a model it has no price for: that is unknown, not free.
        return Usage(prompt, completion, known, cached_tokens=read, cache_write_tokens=written)

    def _tool(self, part: dict[str, Any]) -> None:
        state = as_dict(part.get("state"))
        status = str(state.get("status", "?"))
        if status in ("pending", "running"):
            return
        tool = str(part.get("tool", "tool"))
        inputs = as_dict(state.get("input"))
        target = state.get("title") or inputs.get("filePath") or inputs.get("command") or inputs.get("pattern") or ""
        target = relative(str(target), self.request.root)
        line = f"· {tool} {target}: {status}".replace("  ", " ")
        error = str(state.get("error", ""))
        if status == "error" and error:
            line += f" ({error})"
            if "rejected permission" in error:
                self.rejected.append(f"{tool} ({target})")
        self.say(line + "\n")

    def check(self, code: int, stderr: tuple[str, ...]) -> None:
        if self.rejected:
            what = ", ".join(dict.fromkeys(self.rejected))
            raise self.failed(
                f"OpenCode was refused permission for: {what}; its work is incomplete",
                hint="set `unsafe_permissions: true` on the step to allow every tool, or allow that "
                "permission in your OpenCode config, then resume",
            )
        if self.errors:
            raise self.failed(f"OpenCode reported an error: {self.errors[-1]}")
        if code != 0:
            tail = " | ".join(_ANSI.sub("", line).strip() for line in stderr[-3:]) or "no output on stderr"
            raise self.failed(f"OpenCode exited with status {code}: {tail}")


def _error_message(error: Any) -> str:
    """The message of an `error` event, whatever its shape: an object with `data.message`,
    `message` or `name`, or a plain string."""
    if isinstance(error, dict):
        data = error.get("data")
        found = (as_dict(data).get("message") or (data if isinstance(data, str) else None)) or (
            error.get("message") or error.get("name")
        )
        return str(found or "unknown error")
    return str(error or "unknown error")
