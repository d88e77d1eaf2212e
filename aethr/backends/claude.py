"""`backend: claude`: hand a step to Claude Code, which edits the working tree.

    claude -p --output-format stream-json --verbose --permission-mode acceptEdits [--model M]

The prompt goes on stdin. What is Claude Code's own lives here: its command line,
its environment and its stream-json events:

- `assistant` messages carry text and tool calls, shown as they come, and the tokens
  of each call (priced as a floor while the step runs, for the spend cap);
- `user` messages carry tool results; a failed tool is shown;
- `system`/`api_retry` says it retries a call: a refused key ends the step at once
  (exit 4), other retries are notices;
- the last event, `result`, has the run's cost (`total_cost_usd`), its tokens by model
  (`modelUsage`: its `usage` is zeroed on budget errors), whether it failed
  (`is_error`, `subtype` `error_*`) and the tool calls it was refused
  (`permission_denials`), which fail the step: its work is incomplete.

Its environment: a clean config home (CLAUDE_CONFIG_DIR) unless the step inherits the
user's, ANTHROPIC_BASE_URL for a compatible endpoint, the role's `api_key_env` as
ANTHROPIC_API_KEY, at most two retries of a failed call, and no non-essential traffic.
Permissions: `acceptEdits` (file edits only), or `bypassPermissions` with
`unsafe_permissions`, which Claude Code refuses to do as root: aethr says so first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aethr.backends import Emit, Endpoint, Request
from aethr.backends.agent import AgentBackend, AgentRun, as_dict, count, relative
from aethr.errors import EnvironmentNotReady
from aethr.usage import Usage

if TYPE_CHECKING:
    from aethr.schema import Step


class ClaudeBackend(AgentBackend, agent="claude"):
    reports_cost = True  # `total_cost_usd`: a spend cap needs no price for its model
    key_variables = ("ANTHROPIC_API_KEY",)
    base_variables = ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_BASE")
    login = "anthropic"
    home_variable = "CLAUDE_CONFIG_DIR"
    cli_key = "ANTHROPIC_API_KEY"
    cli_base = "ANTHROPIC_BASE_URL"

    def check_ready(self, step: Step, model: str | None, root: Path, endpoint: Endpoint) -> None:
        super().check_ready(step, model, root, endpoint)
        if step.unsafe_permissions and hasattr(os, "geteuid") and os.geteuid() == 0:
            raise EnvironmentNotReady(
                f"step '{step.id}' sets unsafe_permissions, and Claude Code refuses to skip permission "
                "checks when run as root (as CI containers often are)",
                hint="run aethr as another user, or drop unsafe_permissions: Claude Code may then edit "
                "files (acceptEdits) but not run commands",
            )

    def arguments(self, request: Request, home: Path | None) -> list[str]:
        mode = "bypassPermissions" if request.unsafe_permissions else "acceptEdits"
        args = ["-p", "--output-format", "stream-json", "--verbose", "--permission-mode", mode]
        model = self.model_name(request)
        return args + (["--model", model] if model else [])

    def environment(self, request: Request, home: Path | None = None) -> dict[str, str]:
        env = super().environment(request, home)
        env.setdefault("CLAUDE_CODE_MAX_RETRIES", "2")
        env.setdefault("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        return env

    def new_run(self, request: Request, emit: Emit) -> AgentRun:
        return _ClaudeRun(self, request, emit)


class _ClaudeRun(AgentRun):
    def __init__(self, backend: ClaudeBackend, request: Request, emit: Emit) -> None:
        super().__init__(request, emit)
        self.backend = backend
        self.result: dict[str, Any] | None = None
        self.tools: dict[str, str] = {}  # tool_use id -> "Edit a.txt"
        self.calls: set[str] = set()  # message ids already counted

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        message = as_dict(event.get("message"))
        if kind == "assistant":
            self._assistant(message)
        elif kind == "user":
            for block in _blocks(message):
                if block.get("type") == "tool_result" and block.get("is_error"):
                    what = self.tools.get(str(block.get("tool_use_id")), "a tool")
                    self.say(f"· {what}: error ({_text(block.get('content'))[:200]})\n")
        elif kind == "system" and event.get("subtype") == "api_retry":
            if event.get("error") == "authentication_failed" or event.get("error_status") in (401, 403):
                raise self.refused_key(self.backend, f"the API refused the key ({event.get('error_status')})")
            attempt, most = event.get("attempt"), event.get("max_retries")
            self.note(f"Claude Code retries a call ({attempt}/{most}): {event.get('error')}")
        elif kind == "result":
            self.result = event
            self.settle(_total(event, self.usage))

    def _assistant(self, message: dict[str, Any]) -> None:
        for block in _blocks(message):
            if block.get("type") == "text" and block.get("text"):
                text = str(block["text"])
                self.say(text if text.endswith("\n") else text + "\n")
            elif block.get("type") == "tool_use":
                inputs = as_dict(block.get("input"))
                target = inputs.get("file_path") or inputs.get("command") or inputs.get("pattern") or ""
                what = f"{block.get('name', 'tool')} {relative(str(target), self.request.root)}".strip()
                self.tools[str(block.get("id"))] = what
                self.say(f"· {what}\n")
        call = str(message.get("id", ""))
        usage = as_dict(message.get("usage"))
        if call and call not in self.calls and usage:
            self.calls.add(call)
            # Anthropic counts cache reads and writes beside `input_tokens`, not within it.
            read, written = count(usage.get("cache_read_input_tokens")), count(usage.get("cache_creation_input_tokens"))
            self.spent(self.priced(count(usage.get("input_tokens")) + read + written, 0, read, written))

    def check(self, code: int, stderr: tuple[str, ...]) -> None:
        result = self.result
        if result is None:
            tail = " | ".join(line.strip() for line in stderr[-3:]) or "no output on stderr"
            raise self.failed(f"Claude Code ended (status {code}) without its final result: {tail}")
        denied = [_denied(item) for item in result.get("permission_denials") or []]
        if denied:
            raise self.failed(
                f"Claude Code was refused permission for: {', '.join(dict.fromkeys(denied))}; its work is incomplete",
                hint="set `unsafe_permissions: true` on the step (not as root) to allow commands too, then resume",
            )
        subtype = str(result.get("subtype", ""))
        if result.get("is_error") or subtype.startswith("error") or code != 0:
            reason = str(result.get("result") or "").strip() or _SUBTYPES.get(subtype, subtype or f"status {code}")
            if result.get("api_error_status") in (401, 403) or result.get("api_error") == "authentication_failed":
                raise self.refused_key(self.backend, reason)
            raise self.failed(f"Claude Code failed: {reason}")


_SUBTYPES = {
    "error_max_turns": "it reached its turn limit",
    "error_max_budget_usd": "it reached its budget",
    "error_during_execution": "an error during its run",
}


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return [as_dict(block) for block in content] if isinstance(content, list) else []


def _total(result: dict[str, Any], so_far: Usage) -> Usage:
    """The whole run's usage from its `result`: tokens from `modelUsage` (else as its calls
    reported them), and its cost in full as `total_cost_usd` says, with or without tokens.
    Without that field, what its calls were priced at so far stands, as a floor."""
    prompt = completion = read = written = 0
    for usage in (as_dict(u) for u in as_dict(result.get("modelUsage")).values()):
        read += count(usage.get("cacheReadInputTokens"))
        written += count(usage.get("cacheCreationInputTokens"))
        prompt += count(usage.get("inputTokens"))
        completion += count(usage.get("outputTokens"))
    prompt += read + written
    if not prompt and not completion:
        prompt, completion = so_far.prompt_tokens, so_far.completion_tokens
        read, written = so_far.cached_tokens, so_far.cache_write_tokens
    tokens = (prompt, completion)
    cost = result.get("total_cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
        return Usage(*tokens, float(cost), cached_tokens=read, cache_write_tokens=written)
    return Usage(*tokens, so_far.cost_usd, at_least=True, cached_tokens=read, cache_write_tokens=written)


def _denied(item: Any) -> str:
    denial = as_dict(item)
    inputs = as_dict(denial.get("tool_input"))
    target = inputs.get("command") or inputs.get("file_path") or ""
    return f"{denial.get('tool_name', 'a tool')} ({str(target)[:80]})" if target else str(denial.get("tool_name"))


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(as_dict(part).get("text", "")) for part in content)
    return str(content or "")
