"""`backend: gemini`: hand a step to the Gemini CLI, which edits the working tree.

    gemini --skip-trust --approval-mode auto_edit -o stream-json [-m MODEL]

The prompt goes on stdin (Gemini CLI reads a piped stdin as its prompt). It follows
GOOGLE_GEMINI_BASE_URL only when its settings select API-key auth, so its clean
config home (GEMINI_CLI_HOME) holds a settings file that does; the base URL is the
role's `api_base`, else GOOGLE_GEMINI_BASE_URL or GEMINI_API_BASE, and the key the
role's `api_key_env`, else GEMINI_API_KEY. `--skip-trust`: aethr was asked to run it
in this project. Permissions: `--approval-mode auto_edit`, or `yolo` with
`unsafe_permissions`.

Its stream-json events: `message` (assistant text, in pieces), `tool_use` and
`tool_result` (shown), `error` (a notice, and the reason of a failed run: a cut
stream says so there), and the last, `result`, with the status and tokens (no
cost: priced through LiteLLM's table). Its exit codes name the failure (41 auth, 42 input,
44 sandbox, 52 config, 53 turn limit). A call that cannot connect is retried with
back-off for minutes: aethr ends the step at the second failed attempt it reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aethr.backends import Emit, Request
from aethr.backends.agent import AgentBackend, AgentRun, as_dict, count, relative

_EXITS = {
    41: "it could not authenticate",
    42: "its input was refused",
    44: "its sandbox failed",
    52: "its configuration is invalid",
    53: "it reached its turn limit",
    130: "it was cancelled",
}
_REFUSED_KEY = ('"code":401', '"code":403', "UNAUTHENTICATED", "API key not valid", "API_KEY_INVALID")


class GeminiBackend(AgentBackend, agent="gemini"):
    key_variables = ("GEMINI_API_KEY",)
    base_variables = ("GOOGLE_GEMINI_BASE_URL", "GEMINI_API_BASE")
    login = "gemini"
    home_variable = "GEMINI_CLI_HOME"
    cli_key = "GEMINI_API_KEY"
    cli_base = "GOOGLE_GEMINI_BASE_URL"
    upstream = "https://generativelanguage.googleapis.com"

    def arguments(self, request: Request, home: Path | None) -> list[str]:
        mode = "yolo" if request.unsafe_permissions else "auto_edit"
        args = ["--skip-trust", "--approval-mode", mode, "--output-format", "stream-json"]
        model = self.model_name(request)
        return args + (["--model", model] if model else [])

    def prepare_home(self, home: Path, request: Request) -> None:
        settings = home / ".gemini" / "settings.json"
        settings.parent.mkdir(mode=0o700)
        settings.write_text(json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}}))

    def new_run(self, request: Request, emit: Emit) -> AgentRun:
        return _GeminiRun(self, request, emit)


class _GeminiRun(AgentRun):
    def __init__(self, backend: GeminiBackend, request: Request, emit: Emit) -> None:
        super().__init__(request, emit)
        self.backend = backend
        self.result: dict[str, Any] | None = None
        self.tools: dict[str, str] = {}
        self.lost = 0  # failed connection attempts it reported
        self.open_line = False  # assistant text arrives in pieces

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message" and event.get("role") == "assistant":
            text = str(event.get("content", ""))
            self.say(text)
            self.open_line = not text.endswith("\n")
            return
        self._end_line()
        if kind == "tool_use":
            inputs = as_dict(event.get("parameters"))
            target = inputs.get("file_path") or inputs.get("dir_path") or inputs.get("command") or ""
            what = f"{event.get('tool_name', 'tool')} {relative(str(target), self.request.root)}".strip()
            self.tools[str(event.get("tool_id"))] = what
        elif kind == "tool_result":
            what = self.tools.get(str(event.get("tool_id")), "a tool")
            error = as_dict(event.get("error")).get("message")
            self.say(f"· {what}: {event.get('status', '?')}{f' ({error})' if error else ''}\n")
        elif kind == "error":  # e.g. "Model stream ended without a finish reason." (a cut stream)
            self.errors.append(str(event.get("message") or "an error"))
            self.note(f"Gemini CLI: {self.errors[-1]}")
        elif kind == "result":
            self.result = event
            stats = as_dict(event.get("stats"))
            # Its input_tokens include the `cached` ones (`input` is the rest).
            tokens = (count(stats.get(k)) for k in ("input_tokens", "output_tokens", "cached"))
            self.spent(self.priced(*tokens))

    def _end_line(self) -> None:
        if self.open_line:
            self.say("\n")
            self.open_line = False

    def stderr_line(self, line: str) -> None:
        if "Retrying with backoff" not in line:
            return
        if "fetch failed" in line:
            self.lost += 1
            if self.lost >= 2:
                raise self.unreachable(self.backend, "the connection failed (fetch failed)")
        self.note(f"Gemini CLI: {line.strip()[:200]}")

    def check(self, code: int, stderr: tuple[str, ...]) -> None:
        self._end_line()
        error = as_dict((self.result or {}).get("error"))
        reason = str(error.get("message") or (self.errors[-1] if self.errors else ""))
        if code == 41 or any(mark in reason for mark in _REFUSED_KEY):
            raise self.refused_key(self.backend, reason or _EXITS[41])
        if self.result is not None and self.result.get("status") == "success" and code == 0:
            return
        if not reason:
            tail = " | ".join(line.strip() for line in stderr[-3:]) or "no output on stderr"
            reason = f"{_EXITS.get(code, f'status {code}')}: {tail}"
            if self.result is None:
                reason = f"it ended without its final result, {reason}"
        raise self.failed(f"Gemini CLI failed: {reason}")
