"""The shared core of agent backends: a coding-agent CLI that edits the working tree.

An agent module says only what is its own: how to find the binary, its command
line and environment, how to read one line of its event stream, and how its end
maps to success or failure. This core does the rest, the same for every agent:
the prompt on stdin (and nothing else there, written inside the deadline), the
process supervised (`proc`: a wall-clock timeout, an idle limit of `idle_timeout`
seconds without an event, the whole tree ended), a clean temporary config home unless the step
sets `inherit_user_config`, text and tool lines streamed, usage reported as it
grows, and failures that carry what was spent.

The executor records what the step changed (tree snapshots before and after), so
no agent module looks at files.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aethr import agents, git, pricing, proc, sensitive
from aethr.backends import Completion, Emit, Endpoint, Request, metering
from aethr.backends.fields import as_dict as as_dict  # re-exported
from aethr.backends.fields import count as count
from aethr.backends.fields import relative as relative
from aethr.errors import EnvironmentNotReady, StepFailed
from aethr.events import Notice, TextChunk, UsageReported
from aethr.settings import env_value
from aethr.usage import Usage

if TYPE_CHECKING:
    from aethr.schema import Step


class AgentRun:
    """Follows one agent process: its text, usage, errors and stderr. Subclasses read events."""

    def __init__(self, request: Request, emit: Emit) -> None:
        self.request = request
        self.emit = emit
        self.parts: list[str] = []
        self.usage = Usage(0, 0, 0.0)
        self.errors: list[str] = []
        self.relayed = False  # the relay meters its calls: the agent's own usage reports are not counted
        self.wake: Callable[[Callable[[], None]], None] | None = None  # runs a task between its lines
        self.flush: Callable[[], None] = lambda: None  # once it has ended: what the relay has not counted yet

    @property
    def step(self) -> str:
        return self.request.step_id

    def say(self, text: str) -> None:
        self.parts.append(text)
        self.emit(TextChunk(self.request.step_id, text))

    def note(self, text: str) -> None:
        """Something worth knowing that is not the agent's answer (a retry, a notice)."""
        self.emit(Notice(self.request.step_id, sensitive.mask(text)))

    def spent(self, more: Usage) -> None:
        """Add one finished call's usage and report the step's total so far."""
        self.settle(self.usage + more)

    def settle(self, total: Usage, metered: bool = False) -> None:
        """The step's usage is `total` (an agent that reports its whole run at the end). Under the
        relay only its counts (`metered`) stand: the agent's own would count each call twice."""
        if self.relayed and not metered:
            return
        self.usage = total
        self.emit(UsageReported(self.request.step_id, self.usage))

    def priced(self, prompt_tokens: int, completion_tokens: int, cached: int = 0, written: int = 0) -> Usage:
        """Tokens priced at the workflow's `prices:` entry, else LiteLLM's table; the cost is unknown
        for a model in neither. `prompt_tokens` counts every input token: the `cached` ones read
        from the prompt cache and the `written` ones among them, each at its own rate."""
        price = pricing.of(self.request.model, self.request.endpoint.price)
        cost = None if price is None else price.cost(prompt_tokens, completion_tokens, cached, written)
        return Usage(prompt_tokens, completion_tokens, cost, cached_tokens=cached, cache_write_tokens=written)

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
        return StepFailed(f"step '{self.step}': {sensitive.mask(message)}", hint=hint, usage=self.usage)

    def refused_key(self, backend: AgentBackend, message: str) -> EnvironmentNotReady:
        """The provider refused the key (exit 4), with the variable to fix."""
        variable = backend.key_variable(self.request)
        return EnvironmentNotReady(
            f"step '{self.step}': {backend.name} could not authenticate: {sensitive.mask(message)}",
            hint=f"check {variable} (`aethr auth status`), then resume",
        )

    def unreachable(self, backend: AgentBackend, detail: str) -> StepFailed:
        where = backend.base_url(self.request) or f"{backend.name}'s default endpoint"
        return self.failed(
            f"{backend.name} cannot reach {where}: {detail}",
            hint="check the endpoint (is the server up, is the base URL right?), then resume",
        )


class AgentBackend:
    """A coding-agent CLI as a backend. Subclasses set the class attributes and implement
    `command`, `environment` and `new_run`."""

    edits_tree = True
    free = False
    # From its row of the registry (`aethr.agents`), set by `class X(AgentBackend, agent=NAME)`.
    name = "agent"  # as users know it: "OpenCode"
    program = ""  # the default executable name
    install = ""  # the command that installs it
    bin_variable = ""  # the variable that names the executable
    key_variables: tuple[str, ...] = ()  # where its provider's key is read, first found wins
    base_variables: tuple[str, ...] = ()  # where a compatible endpoint's base URL is read
    login = ""  # the provider of `aethr auth login` for that key
    cli_key: str | None = None  # the variable the CLI reads its key from
    cli_base: str | None = None  # the variable the CLI reads a compatible endpoint from
    home_variable: str | None = None  # the variable that moves its config home
    upstream: str | None = None  # its provider's own endpoint; set: under a cap it is metered by the relay

    def __init_subclass__(cls, agent: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        row = agents.BY_NAME[agent]
        cls.name, cls.program, cls.bin_variable = row.title, row.program, row.bin_variable
        cls.install = f"npm install -g {row.npm}"

    def __init__(self, binary: str | None, hidden: frozenset[str] = frozenset()) -> None:
        self._binary = binary
        self.hidden = hidden  # keys aethr loaded from .env that the workflow does not pass through

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

    def check_ready(self, step: Step, model: str | None, root: Path, endpoint: Endpoint) -> None:
        self.executable()
        self.check_root(root, step.id)
        variable = endpoint.api_key_env or next(iter(self.key_variables), None)
        if variable and variable != "none" and not step.inherit_user_config and not env_value(variable):
            raise EnvironmentNotReady(
                f"step '{step.id}' hands work to {self.name}, which needs {variable}, and it is not set",
                hint=f"run `aethr auth login {self.login}` or export {variable}=… (a project .env is loaded "
                f"too); or set `inherit_user_config: true` on the step to use your own {self.name} login",
            )

    def check_root(self, root: Path, step_id: str) -> None:
        if git.toplevel(root) is None:
            raise EnvironmentNotReady(
                f"step '{step_id}' hands work to {self.name}, which needs a git repository to record "
                f"what it changed, and {root} is not in one ({git.why_not_a_repository(root)})",
                hint="run `git init` (and commit your work) first",
            )

    def key_variable(self, request: Request) -> str:
        """The variable holding the key this step's agent sends: the role's `api_key_env`, else
        the first of `key_variables` that is set (else the first)."""
        if request.endpoint.api_key_env and request.endpoint.api_key_env != "none":
            return request.endpoint.api_key_env
        found = [name for name in self.key_variables if env_value(name)]
        return (found or list(self.key_variables) or ["(none)"])[0]

    def key(self, request: Request) -> str | None:
        return env_value(self.key_variable(request))

    def base_url(self, request: Request) -> str | None:
        """The role's `api_base`, else a compatible endpoint's base URL set in the environment."""
        found = [env_value(name) for name in self.base_variables]
        return request.endpoint.api_base or next((value for value in found if value), None)

    def model_name(self, request: Request) -> str | None:
        """The model as the CLI names it: without LiteLLM's `provider/`."""
        return request.model.partition("/")[2] or request.model if request.model else None

    def arguments(self, request: Request, home: Path | None) -> list[str]:
        """The command line after the executable."""
        raise NotImplementedError

    def own_variables(self, request: Request) -> set[str]:
        """The variables through which this step's agent is documented to find its provider's
        key and endpoint: they reach it even when they come from `.env`."""
        names = {*self.key_variables, *self.base_variables, self.cli_key or "", self.cli_base or ""}
        return names | {request.endpoint.api_key_env or ""}

    def environment(self, request: Request, home: Path | None = None) -> dict[str, str]:
        """The agent's environment: aethr's own, less the keys from `.env` that the workflow's
        `env_passthrough` does not name (the rule `run:` steps have), with the endpoint and key
        of the step's role in the variables the CLI reads, and `home` as its config home."""
        withheld = self.hidden - self.own_variables(request)
        env = {k: v for k, v in os.environ.items() if k not in withheld}
        env["PWD"] = str(request.root)
        if home is not None and self.home_variable:
            env[self.home_variable] = str(home)
        base = self.base_url(request)
        if base and self.cli_base:
            env[self.cli_base] = base
        wanted = request.endpoint.api_key_env
        if self.cli_key and wanted:
            env[self.cli_key] = "aethr-keyless" if wanted == "none" else (self.key(request) or "")
        return env

    def prepare_home(self, home: Path, request: Request) -> None:
        """Write what the agent needs in its clean config home (settings that select API keys)."""

    def new_run(self, request: Request, emit: Emit) -> AgentRun:
        raise NotImplementedError

    def shown(self, request: Request) -> str:
        """The command line a live run would start, for a preview or mock run: the variables
        set for it, then the command (the prompt goes on stdin); keys masked."""
        home = None if request.inherit_user_config else Path(tempfile.gettempdir()) / "aethr-agent-XXXX"
        env = self.environment(request, home)
        shown = {k: "****" if k == self.cli_key else v for k, v in env.items() if os.environ.get(k) != v}
        added = [f"{k}={shlex.quote(v)}" for k, v in shown.items() if k != "PWD"]
        command = [self._binary or self.program, *self.arguments(request, home)]
        return sensitive.mask(" ".join([*added, *map(shlex.quote, command)]) + " < prompt")

    def complete(self, request: Request, emit: Emit) -> Completion:
        self.check_root(request.root, request.step_id)
        run = self.new_run(request, emit)
        home = None if request.inherit_user_config else Path(tempfile.mkdtemp(prefix="aethr-agent-"))
        try:
            if home is not None:
                self.prepare_home(home, request)
            upstream = (self.base_url(request) or self.upstream) if self.upstream else None
            with metering.routed(request, upstream, run) as routed:
                return self._follow(run, routed, home)
        finally:
            if home is not None:
                shutil.rmtree(home, ignore_errors=True)

    def _follow(self, run: AgentRun, request: Request, home: Path | None) -> Completion:
        idle = request.endpoint.idle
        try:
            child = proc.start(
                [self.executable(), *self.arguments(request, home)],
                cwd=request.root,
                env=self.environment(request, home),
                stdin=request.prompt.encode(),
                on_stderr=run.stderr_line,
            )
            run.wake = child.post
        except OSError as exc:
            raise EnvironmentNotReady(
                f"cannot start {self.name}: {exc.strerror or exc}", hint=f"reinstall: {self.install}"
            ) from None
        # The prompt is written inside the deadline, and leaving the block ends the tree (a
        # timeout, a raising hook, Ctrl-C). On Ctrl-C the executor counts the usage reported so
        # far (UsageReported), as a floor.
        with child:
            ended = child.follow(run.line, timeout=request.timeout, idle=idle)
        run.flush()
        if ended.code is None:
            limit = f"within {request.timeout:g}s" if ended.timed_out else f"(no output for {idle:g}s)"
            setting = "`timeout`" if ended.timed_out else "`idle_timeout`"
            raise StepFailed(
                f"step '{request.step_id}': {self.name} did not finish {limit} and was stopped "
                "(with every process it started)",
                hint=f"raise the step's {setting}, then resume",
                usage=run.usage.cut_short(),
            )
        run.check(ended.code, ended.stderr_tail)
        return Completion("".join(run.parts), run.usage)
