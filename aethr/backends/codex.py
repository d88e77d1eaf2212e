"""`backend: codex`: hand a step to the Codex CLI, which edits the working tree.

    codex exec --json --skip-git-repo-check --sandbox workspace-write -m MODEL
          -c model_provider=aethr -c model_providers.aethr={base_url, env_key, …} -

The prompt goes on stdin (`-`). Codex ignores OPENAI_BASE_URL, so aethr always names
its endpoint as a custom provider: the role's `api_base`, else OPENAI_BASE_URL or
OPENAI_API_BASE, else OpenAI's; the key is read from the role's `api_key_env`, else
OPENAI_API_KEY; the Responses API over HTTP, with at most two retries.

Its JSON events: `item.*` (agent messages, commands, file changes, and non-fatal
`error` items such as unknown model metadata, shown as notices), `turn.completed`
(tokens, no cost: priced through LiteLLM's table) and `turn.failed`. Against an
endpoint it cannot reach Codex "reconnects" forever: aethr ends the step at the
second such report (about five seconds). Its config home is a clean CODEX_HOME
unless the step inherits the user's. Permissions: `--sandbox workspace-write`, or
`--dangerously-bypass-approvals-and-sandbox` with `unsafe_permissions`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aethr.backends import Emit, Request
from aethr.backends.agent import AgentBackend, AgentRun, as_dict, count, relative

_OPENAI = "https://api.openai.com/v1"
_UNREACHABLE = "waiting for network"  # in Codex's "Reconnecting..." message for a failed connection
_REFUSED_KEY = ("401 Unauthorized", "403 Forbidden", "invalid_api_key", "Incorrect API key")


class CodexBackend(AgentBackend, agent="codex"):
    key_variables = ("OPENAI_API_KEY",)
    base_variables = ("OPENAI_BASE_URL", "OPENAI_API_BASE")
    login = "openai"
    home_variable = "CODEX_HOME"
    upstream = _OPENAI

    def arguments(self, request: Request, home: Path | None) -> list[str]:
        sandbox = (
            ["--dangerously-bypass-approvals-and-sandbox"]
            if request.unsafe_permissions
            else ["--sandbox", "workspace-write"]
        )
        provider = {
            "name": "aethr",
            "base_url": self.base_url(request) or _OPENAI,
            "env_key": self.key_variable(request),
            "wire_api": "responses",
            "supports_websockets": False,
            "request_max_retries": 2,
            "stream_max_retries": 2,
        }
        if request.endpoint.api_key_env == "none":
            del provider["env_key"]
        model = self.model_name(request)
        args = ["exec", "--json", "--skip-git-repo-check", "--cd", str(request.root), *sandbox]
        args += ["-m", model] if model else []
        args += ["-c", "model_provider=aethr", "-c", f"model_providers.aethr={_toml(provider)}"]
        return [*args, "-"]

    def new_run(self, request: Request, emit: Emit) -> AgentRun:
        return _CodexRun(self, request, emit)


class _CodexRun(AgentRun):
    def __init__(self, backend: CodexBackend, request: Request, emit: Emit) -> None:
        super().__init__(request, emit)
        self.backend = backend
        self.finished = False
        self.lost = 0  # reports of a connection that failed

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "item.completed":
            self._item(as_dict(event.get("item")))
        elif kind == "turn.completed":
            self.finished = True
            usage = as_dict(event.get("usage"))  # its input_tokens include the cached_input_tokens
            tokens = (count(usage.get(k)) for k in ("input_tokens", "output_tokens", "cached_input_tokens"))
            self.spent(self.priced(*tokens))
        elif kind == "turn.failed":
            self.finished = True
            self.errors.append(str(as_dict(event.get("error")).get("message") or "the turn failed"))
        elif kind == "error":
            message = str(event.get("message", ""))
            if _UNREACHABLE in message:
                self.lost += 1
                if self.lost >= 2:
                    raise self.unreachable(self.backend, message.partition("(")[2].rstrip(")") or message)
            if message.startswith("Reconnecting"):  # other errors come again in `turn.failed`
                self.note(f"Codex: {message}")

    def _item(self, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if kind == "agent_message":
            text = str(item.get("text", ""))
            self.say(text if text.endswith("\n") else text + "\n")
        elif kind == "command_execution":
            self.say(f"· shell {item.get('command', '')}: exit {item.get('exit_code')}\n")
        elif kind == "file_change":
            for change in item.get("changes") or []:
                change = as_dict(change)
                self.say(f"· {change.get('kind', 'edit')} {relative(str(change.get('path', '')), self.request.root)}\n")
        elif kind == "error":
            self.note(f"Codex: {item.get('message', '')}")  # a notice (unknown model metadata), not a failure

    def check(self, code: int, stderr: tuple[str, ...]) -> None:
        if self.errors:
            reason = self.errors[-1]
            if any(mark in reason for mark in _REFUSED_KEY):
                raise self.refused_key(self.backend, reason)
            raise self.failed(f"Codex failed: {reason}")
        if not self.finished or code != 0:
            tail = " | ".join(line.strip() for line in stderr[-3:] if "WARNING" not in line) or "no output on stderr"
            raise self.failed(f"Codex ended (status {code}) without finishing its turn: {tail}")


def _toml(table: dict[str, object]) -> str:
    """An inline TOML table (JSON strings are valid TOML basic strings)."""
    items = (f"{k}={json.dumps(v) if isinstance(v, str) else str(v).lower()}" for k, v in table.items())
    return "{" + ",".join(items) + "}"
