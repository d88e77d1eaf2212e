"""Who answers a step: the `Backend` protocol, what it is asked and what it answers.

    preview  nothing is called; the output is a placeholder (`--show-prompt`)
    mock     deterministic replies, or the scripted ones of AETHR_MOCK_RESPONSES
    live     LiteLLM for model steps; an agent CLI for `backend: opencode | claude | codex | gemini`
    command  `run:` steps run for real in live runs (and mock runs with --exec-commands);
             otherwise the mock stands in for them and nothing runs

The choice of a backend for each step is `backends.router`. Constructors do no I/O and
import nothing heavy: litellm is imported only when a live model step runs (see `backends.live`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

from aethr.events import Event
from aethr.schema import Step
from aethr.usage import Usage

if TYPE_CHECKING:
    from aethr.pricing import Price
    from aethr.structured import OutputSpec

Emit = Callable[[Event], None]


class Endpoint(NamedTuple):
    """Where a model step's calls go, when the workflow says more than the model's name."""

    api_base: str | None = None
    api_key_env: str | None = None  # the variable holding the key; "none" for a keyless server
    retries: int | None = None  # None: the default (2, or 0 behind a gateway)
    price: Price | None = None  # USD per token (input, output, cached input), from `prices:`
    first_byte: float = 25.0  # seconds until the first chunk
    idle: float = 60.0  # seconds between chunks (agents: between events)
    max_tokens: int | None = None  # the step's `max_output_tokens`, sent to the model
    allow_truncated: bool = False  # the step's `allow_truncated`: an answer cut at max_tokens is taken
    local: bool = False  # a server on this machine, or a keyless one (`backends.local`)
    num_ctx: int | None = None  # Ollama: the window the prompt and its answer were fitted to
    cap_limited: bool = False  # max_tokens is what the rest of the spend cap pays for, below the step's own


class CommandSpec(NamedTuple):
    run: str | tuple[str, ...]
    cwd: str  # relative to the project root
    env: tuple[tuple[str, str], ...] = ()
    ok_exit_codes: tuple[int, ...] = (0,)
    output_chars: int = 16_000
    hidden: frozenset[str] = frozenset()  # keys from .env the command may not see

    def shown(self) -> str:
        return self.run if isinstance(self.run, str) else shlex.join(self.run)

    def argv(self) -> list[str]:
        return ["/bin/sh", "-c", self.run] if isinstance(self.run, str) else list(self.run)


class Request(NamedTuple):
    step_id: str
    role: str
    backend: str  # the step's `backend:` ("model", or an agent: "opencode", "claude", …)
    model: str | None  # LiteLLM form, `provider/model`
    task: str
    prompt: str
    timeout: float
    root: Path
    unsafe_permissions: bool = False
    done_marker: str | None = None  # text that ends this step's loop, if it controls one (for the mock)
    endpoint: Endpoint = Endpoint()  # model steps: where calls go, their limits and price
    command: CommandSpec | None = None  # `run:` steps: the command
    iteration: int = 1  # which pass of the step this is
    inherit_user_config: bool = False  # agents: the user's own config home, not a clean one
    output: OutputSpec | None = None  # model steps: the JSON Schema the answer must fit
    capped: bool = False  # agents: the run has a spend cap, so their calls are metered as they go
    cache_at: int | None = None  # model steps: where the prompt's cache breakpoint goes (`aethr.prompt_cache`)


class Completion(NamedTuple):
    text: str
    usage: Usage
    # Set by a backend that stood in for an agent without running it (mock, preview): what
    # later steps see as the step's change instead of a measured diff.
    simulated_change: str | None = None
    passed: bool | None = None  # command steps: whether the command passed
    last_lines: tuple[str, ...] = ()  # command steps: the end of the output, for a failure message


class Backend(Protocol):
    #: True when the backend edits the working tree; the executor then records the diff.
    edits_tree: bool
    #: True when the backend calls nothing that costs money (mock, preview).
    free: bool

    def check_ready(self, step: Step, model: str | None, root: Path, endpoint: Endpoint) -> None:
        """Raise EnvironmentNotReady (a missing key, tool or repository) before any call."""
        ...

    def complete(self, request: Request, emit: Emit) -> Completion:
        """Answer one step, emitting TextChunk (and Retrying) events as it goes.
        Raises StepFailed (or Interrupted) on failure."""
        ...


class Router(Protocol):
    """What the executor asks about each step: `Backends`, or a scripted one in tests."""

    mode: str
    follows_loops: bool

    def model_for(self, step: Step) -> str | None: ...

    def timeout_for(self, step: Step) -> float: ...

    def endpoint_for(self, step: Step) -> Endpoint: ...

    def command_for(self, step: Step) -> CommandSpec | None: ...

    def check_window(self, step: Step, prompt: str) -> str | None: ...

    def price_for(self, step: Step) -> tuple[float, float] | None: ...

    def output_for(self, step: Step) -> OutputSpec | None: ...

    def for_step(self, step: Step) -> Backend: ...
