"""The one factory: which backend answers each step of a run, chosen once from the settings.

    preview  nothing is called; the output is a placeholder (`--show-prompt`)
    mock     deterministic replies, or the scripted ones of AETHR_MOCK_RESPONSES
    live     LiteLLM for model steps; for `backend: <agent>`, that agent's adapter from the
             registry (`aethr.agents`)
    command  `run:` steps run for real in live runs (and mock runs with --exec-commands);
             otherwise the mock stands in for them and nothing runs

Backends are imported when a step first needs one, so a run that calls no model never
imports litellm.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from aethr import agents
from aethr.backends import Backend, CommandSpec, Endpoint, Request, local
from aethr.errors import ConfigError
from aethr.names import litellm_model_name
from aethr.schema import Step, Workflow
from aethr.settings import Settings

if TYPE_CHECKING:
    from aethr.backends.agent import AgentBackend
    from aethr.structured import OutputSpec

AGENT_IDLE = 180.0  # seconds an agent may go without an event, unless the step says


class Backends:
    """The backend for each step of one run, chosen once from the settings."""

    def __init__(self, workflow: Workflow, settings: Settings, root: Path, *, preview: bool = False) -> None:
        self.workflow = workflow
        self.root = root
        self.settings = settings
        self.mode = "preview" if preview else settings.mode
        # A preview shows each step's prompt once: loops are not followed.
        self.follows_loops = not preview
        self._cache: dict[str, Backend] = {}
        self._outputs: dict[str, OutputSpec | None] = {}
        self._windows: dict[tuple[str, str | None], int | None] = {}  # an Ollama model's window, asked once
        self._fitted: dict[str, int] = {}  # a step's num_ctx, fitted to its latest prompt

    def model_for(self, step: Step) -> str | None:
        if step.kind == "command":
            return None
        model = self.settings.model_override or self.workflow.model_of(step.role)
        return litellm_model_name(model) if model else None

    def endpoint_for(self, step: Step) -> Endpoint:
        """The endpoint, retries, price and time limits of a model step's calls."""
        entry = None if self.settings.model_override else self.workflow.entry_of(step.role)
        model = self.model_for(step)
        listed = None
        for name, price in self.workflow.prices.items():
            if model is not None and litellm_model_name(name) == model:
                from aethr.pricing import Price

                read, write = (None if rate is None else rate / 1e6 for rate in (price.cached_input, price.cache_write))
                listed = Price(price.input / 1e6, price.output / 1e6, None, read, write)
        api_base, key_env = (entry.api_base, entry.api_key_env) if entry else (None, None)
        near = local.is_local(model, api_base, key_env)
        first_byte = self.settings.first_byte_timeout
        if near and not self.settings.first_byte_given:
            first_byte = local.FIRST_BYTE  # long enough for a cold load
        return Endpoint(
            api_base=api_base,
            api_key_env=key_env,
            retries=entry.retries if entry else None,
            price=listed,
            first_byte=first_byte,
            local=near,
            num_ctx=self._fitted.get(step.id),
            idle=step.idle_timeout or (AGENT_IDLE if step.kind in agents.BY_NAME else self.settings.idle_timeout),
            max_tokens=step.max_output_tokens,
            allow_truncated=step.allow_truncated,
        )

    def check_window(self, step: Step, prompt: str) -> str | None:
        """Refuse (ConfigError) a model step whose prompt is longer than its model's context
        window, before the call; a warning when it is within 10% of it. A preview shows the
        window in its estimate instead."""
        model = self.model_for(step)
        # A mock run sends nothing, so it has no window to keep to (and need not read the table).
        if self.mode != "live" or step.kind != "model" or model is None:
            return None
        from aethr import pricing
        from aethr.context import estimate_tokens

        tokens = estimate_tokens(prompt)
        if local.is_ollama(model):
            self._fit_ollama(step, model, tokens)
            return None
        window = pricing.window(model)
        if window is None or tokens < window * 0.9:
            return None
        sources = ", ".join(str(c) for c in step.context) or "no context sources: the history"
        if tokens > window:
            raise ConfigError(
                f"step '{step.id}': its prompt (~{tokens:,} tokens) is longer than {model}'s context window "
                f"({window:,} tokens); nothing was sent",
                hint=f"narrow its context ({sources}), use history_visibility: latest or summary, "
                "or choose a model with a larger window",
            )
        return f"its prompt (~{tokens:,} tokens) is within 10% of {model}'s context window ({window:,})"

    def _fit_ollama(self, step: Step, model: str, tokens: int) -> None:
        """Ask the Ollama server for the model's window, and fit `num_ctx` to the prompt (or
        refuse it): kept for the step's endpoint (`endpoint_for`)."""
        server = (model, self.endpoint_for(step).api_base)
        if server not in self._windows:
            self._windows[server] = local.ollama_window(step.id, model, server[1])
        window = self._windows[server]
        if window is not None:
            self._fitted[step.id] = local.fit(step.id, model, tokens, window, step.max_output_tokens)

    def price_for(self, step: Step) -> tuple[float, float] | None:
        """USD per input and output token of a model step: the workflow's `prices:`, else
        LiteLLM's table; None when unknown (agents and commands included)."""
        if step.kind != "model":
            return None
        from aethr import pricing

        found = pricing.of(self.model_for(step), self.endpoint_for(step).price)
        return None if found is None else (found.input_per_token, found.output_per_token)

    def command_for(self, step: Step) -> CommandSpec | None:
        """A `run:` step's command, with what it may see of the environment."""
        if step.run is None:
            return None
        return CommandSpec(
            step.run if isinstance(step.run, str) else tuple(step.run),
            step.cwd or ".",
            tuple(step.env.items()),
            tuple(step.ok_exit_codes),
            step.output_tokens * 4,
            self.withheld(),
        )

    def withheld(self) -> frozenset[str]:
        """Keys aethr loaded from `.env` that commands and agents do not get: all but those
        the workflow's `env_passthrough` names (an agent still gets its own provider's key)."""
        return self.settings.dotenv_keys - set(self.workflow.env_passthrough)

    def timeout_for(self, step: Step) -> float:
        if step.timeout is not None:
            return step.timeout
        if step.kind == "command":
            return 600.0
        if step.kind in agents.BY_NAME:
            return 900.0
        return self.settings.timeout

    def output_for(self, step: Step) -> OutputSpec | None:
        """The step's output schema, read and checked once per run (ConfigError when bad);
        a preview shows what a live run would ask for."""
        if step.id not in self._outputs:
            from aethr.structured import resolve

            self._outputs[step.id] = resolve(step, self.root, self.model_for(step))
        return self._outputs[step.id]

    def for_step(self, step: Step) -> Backend:
        if self.mode == "preview":
            kind = "preview"
        elif step.kind == "command":
            kind = "command" if self.mode == "live" or self.settings.exec_commands else "mock"
        else:
            kind = self.mode if self.mode != "live" else step.backend
        if kind not in self._cache:
            from aethr.backends.masking import Masked

            # The door: whatever the backend says reaches the run masked (`backends.masking`).
            self._cache[kind] = Masked(self._make(kind), self.settings.secrets)
        spec = self.output_for(step) if kind in ("mock", "model") else None
        if spec is not None:
            from aethr.backends.checked import Checked

            return Checked(self._cache[kind], spec)
        return self._cache[kind]

    def _make(self, kind: str) -> Backend:
        if kind == "preview":
            from aethr.backends.mock import PreviewBackend

            return PreviewBackend(self._shown)
        if kind == "mock":
            from aethr.backends.mock import MockBackend

            return MockBackend(self.settings.mock_responses, self._shown)
        if kind == "command":
            from aethr.backends.command import CommandBackend

            return CommandBackend()
        if kind in agents.BY_NAME:
            return agent_backend(kind, self.settings.agent_bin(kind), self.withheld())
        if kind != "model":
            raise AssertionError(f"no backend for {kind!r}")
        from aethr.backends.live import LiteLLMBackend

        return LiteLLMBackend()

    def _shown(self, request: Request) -> str | None:
        """The command line an agent step would start in a live run (for a preview or mock)."""
        if request.backend not in agents.BY_NAME:
            return None
        return agent_backend(request.backend, self.settings.agent_bin(request.backend), self.withheld()).shown(request)

    def preflight(self) -> None:
        """Refuse a run that cannot work, before any call or checkpoint: a live model step whose
        role has no model (ConfigError), a missing key or tool (EnvironmentNotReady), a bad
        AETHR_MOCK_RESPONSES file (ConfigError). A live model step's provider key is left to
        `check_keys`: knowing which key a provider needs takes the LiteLLM import."""
        for step in self.workflow.steps:
            if self.mode == "live" and step.kind == "model" and self.model_for(step) is None:
                raise ConfigError(
                    f"step '{step.id}': role '{step.role}' has no model, and this is a live run",
                    hint=f"add `{step.role}: openai:gpt-4o-mini` (or another model) under `models:`, "
                    "or set AETHR_MODEL",
                )
        for step in self.workflow.steps:
            self.output_for(step)
            if not self._keyed_by_litellm(step):
                self.for_step(step).check_ready(step, self.model_for(step), self.root, self.endpoint_for(step))

    def check_keys(self) -> None:
        """Refuse (EnvironmentNotReady) a live model step whose provider key is missing. It waits
        for the LiteLLM import (seconds), so the runner calls it once the run's header is out,
        and still before any checkpoint."""
        for step in self.workflow.steps:
            if self._keyed_by_litellm(step):
                self.for_step(step).check_ready(step, self.model_for(step), self.root, self.endpoint_for(step))

    def _keyed_by_litellm(self, step: Step) -> bool:
        return self.mode == "live" and step.kind == "model"


def agent_backend(name: str, binary: str | None, hidden: frozenset[str] = frozenset()) -> AgentBackend:
    """The backend of agent `name`, the adapter its registry row names, which withholds the
    `hidden` variables from the agent; no I/O."""
    module, _, cls = agents.BY_NAME[name].adapter.partition(":")
    made: AgentBackend = getattr(importlib.import_module(module), cls)(binary, hidden)
    return made
