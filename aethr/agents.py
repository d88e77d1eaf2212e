"""The agent registry: every coding-agent CLI aethr can hand a step to, one row each.

This is the one list. The workflow schema's `backend:` choices, the `AETHR_<AGENT>_BIN`
variables that settings read, the provider a role's model must name, the install hint
of a missing CLI and the adapter class that drives it are all read from these rows; the
adapters themselves (`aethr.backends.<name>`) hold only how to talk to their CLI.

Pure data with no imports of aethr: the schema, settings and the backends all read it,
and an adapter is named by its import path so that reading the table loads no backend.
"""

from __future__ import annotations

from typing import NamedTuple


class Agent(NamedTuple):
    name: str  # the step's `backend:` value
    title: str  # as users know it, in messages
    program: str  # the executable looked up on PATH
    bin_variable: str  # the variable naming another executable
    npm: str  # the npm package that installs it (the install hint; the Makefile pins its version)
    provider: str | None  # the LiteLLM provider its role's model must name; None: the agent's own names
    adapter: str  # `module:Class` of its backend, imported only when a step uses it


AGENTS = (
    Agent(
        "opencode",
        "OpenCode",
        "opencode",
        "AETHR_OPENCODE_BIN",
        "opencode-ai",
        None,
        "aethr.backends.opencode:OpenCodeBackend",
    ),
    Agent(
        "claude",
        "Claude Code",
        "claude",
        "AETHR_CLAUDE_BIN",
        "@anthropic-ai/claude-code",
        "anthropic",
        "aethr.backends.claude:ClaudeBackend",
    ),
    Agent(
        "codex",
        "Codex",
        "codex",
        "AETHR_CODEX_BIN",
        "@openai/codex",
        "openai",
        "aethr.backends.codex:CodexBackend",
    ),
    Agent(
        "gemini",
        "Gemini CLI",
        "gemini",
        "AETHR_GEMINI_BIN",
        "@google/gemini-cli",
        "gemini",
        "aethr.backends.gemini:GeminiBackend",
    ),
)
BY_NAME = {agent.name: agent for agent in AGENTS}
NAMES = tuple(BY_NAME)


def get(name: str) -> Agent | None:
    """The row of the agent `name` (a step's `backend:`), or None for `model` or a typo."""
    return BY_NAME.get(name)
