"""The only reader of `os.environ` and of the project's `.env`.

Everything else receives a frozen `Settings`. Variables:

    AETHR_LIVE=1            call the models configured in the workflow
    AETHR_MODEL=p:model     call this one model for every step (implies live)
    AETHR_TIMEOUT=SECONDS   a whole model call's limit (default 600; a step's `timeout` wins)
    AETHR_FIRST_BYTE_TIMEOUT=S  seconds until a model's first chunk (default 25)
    AETHR_IDLE_TIMEOUT=S    seconds a model's stream may stay silent (default 60)
    AETHR_MOCK_RESPONSES=F  a JSON list of replies the mock model gives, in order
    AETHR_<AGENT>_BIN=PATH  an agent's executable (default: its program on PATH); the
                            agents and their variables are the rows of `aethr.agents`
    AETHR_EDITOR            the editor for a task (then $VISUAL, then $EDITOR)
    AETHR_HEARTBEAT=S       off a terminal (and under --json), a progress line after each S
                            seconds of silence (default 30; 0 turns it off)
    NO_COLOR                plain output even on a terminal (TERM=dumb: a plain status line too)
    CI                      unattended: no editor or question ever opens, no colours
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from aethr.errors import UsageError
from aethr.secrets import Secrets, collect

DEFAULT_TIMEOUT = 600.0
DEFAULT_FIRST_BYTE = 25.0
DEFAULT_IDLE = 60.0
DEFAULT_HEARTBEAT = 30.0
_TRUE = {"1", "true", "yes", "on"}


class Settings(NamedTuple):
    live: bool = False
    model_override: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    first_byte_timeout: float = DEFAULT_FIRST_BYTE
    first_byte_given: bool = False  # AETHR_FIRST_BYTE_TIMEOUT is set: it wins over a local server's default
    idle_timeout: float = DEFAULT_IDLE
    mock_responses: Path | None = None
    agent_bins: tuple[tuple[str, str], ...] = ()  # (agent, executable) from AETHR_<AGENT>_BIN
    no_color: bool = False
    dumb_terminal: bool = False  # TERM=dumb: no cursor movement, so a plain status line
    heartbeat: float = DEFAULT_HEARTBEAT  # AETHR_HEARTBEAT; 0: no heartbeat
    editor: str | None = None
    dotenv_path: Path | None = None
    dotenv_keys: frozenset[str] = frozenset()
    exec_commands: bool = False  # --exec-commands: a mock run runs `run:` steps for real
    max_cost: float | None = None  # AETHR_MAX_COST: a spend cap in USD
    unattended: bool = False  # CI is set: never open an editor or ask; no colours
    secrets: Secrets = Secrets()  # the run's secret set (`secrets.collect`), built once here

    @property
    def mode(self) -> str:
        return "live" if self.live else "mock"

    def agent_bin(self, agent: str) -> str | None:
        return dict(self.agent_bins).get(agent)


def load(dotenv: Path, key_variables: tuple[str, ...] = ()) -> Settings:
    """Load the project's `.env` (`project.Project.dotenv`), if there is one, into the process
    environment (never overriding a variable that is already set) and read aethr's variables.
    `key_variables` are the roles' `api_key_env` names: their values join the run's secrets.

    Keys must be in the environment because LiteLLM and OpenCode read them there.
    Raises UsageError for a malformed AETHR_TIMEOUT.
    """
    dotenv_path = dotenv if dotenv.is_file() else None
    added: set[str] = set()
    in_file: dict[str, str] = {}
    if dotenv_path is not None:
        from dotenv import dotenv_values

        in_file = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}
        for key, value in in_file.items():
            if key not in os.environ:
                os.environ[key] = value
                added.add(key)
    env = os.environ
    override = env.get("AETHR_MODEL", "").strip() or None
    if override is not None:
        from aethr.names import model_problem

        problem = model_problem(override)
        if problem:
            raise UsageError(f"AETHR_MODEL={override!r}: {problem}", hint="fix or unset AETHR_MODEL")
    timeout = _seconds(env, "AETHR_TIMEOUT", DEFAULT_TIMEOUT)
    mock = env.get("AETHR_MOCK_RESPONSES", "").strip()
    return Settings(
        live=override is not None or env.get("AETHR_LIVE", "").strip().lower() in _TRUE,
        model_override=override,
        timeout=timeout,
        first_byte_timeout=_seconds(env, "AETHR_FIRST_BYTE_TIMEOUT", DEFAULT_FIRST_BYTE),
        first_byte_given=bool(env.get("AETHR_FIRST_BYTE_TIMEOUT", "").strip()),
        max_cost=_seconds(env, "AETHR_MAX_COST", 0.0, what="amount of USD") if env.get("AETHR_MAX_COST") else None,
        idle_timeout=_seconds(env, "AETHR_IDLE_TIMEOUT", DEFAULT_IDLE),
        mock_responses=Path(mock) if mock else None,
        agent_bins=_agent_bins(env),
        no_color="NO_COLOR" in env,
        dumb_terminal=env.get("TERM", "").strip() == "dumb",
        heartbeat=_heartbeat(env),
        unattended=env.get("CI", "").strip().lower() not in ("", "0", "false", "no"),
        editor=env.get("AETHR_EDITOR") or env.get("VISUAL") or env.get("EDITOR") or None,
        dotenv_path=dotenv_path,
        dotenv_keys=frozenset(added),
        # Every value in the file counts, loaded or not: an agent can read the file itself.
        secrets=collect(env, key_variables, in_file),
    )


def _agent_bins(env: os._Environ[str]) -> tuple[tuple[str, str], ...]:
    """(agent, executable) for each agent whose `AETHR_<AGENT>_BIN` is set (the registry's rows)."""
    from aethr.agents import AGENTS

    return tuple((a.name, env[a.bin_variable].strip()) for a in AGENTS if env.get(a.bin_variable, "").strip())


def _seconds(env: os._Environ[str], name: str, default: float, what: str = "number of seconds") -> float:
    raw = env.get(name, "").strip()
    try:
        value = float(raw) if raw else default
        if not 0 < value < float("inf"):
            raise ValueError
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a positive {what}") from None
    return value


def _heartbeat(env: os._Environ[str]) -> float:
    """AETHR_HEARTBEAT in seconds; `0` turns the heartbeat off (any other value must be positive)."""
    if env.get("AETHR_HEARTBEAT", "").strip() == "0":
        return 0.0
    return _seconds(env, "AETHR_HEARTBEAT", DEFAULT_HEARTBEAT)


def env_value(name: str) -> str | None:
    """One environment variable (after `load`), for the few edges that need a raw value."""
    return os.environ.get(name)


def prepare_litellm() -> None:
    """Keep LiteLLM offline and away from other `.env` files; call before importing it.

    The bundled price list is used unless the user chose otherwise. LiteLLM's default mode
    ("DEV") loads, on import, the first `.env` found walking up from *its own install folder*:
    for a tool installed under the home folder that is a stray `~/.env`. aethr loads the
    project's `.env` itself (see `load`), so LiteLLM is always put in its "PRODUCTION" mode,
    whose only effect outside LiteLLM's proxy server is to skip that.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ["LITELLM_MODE"] = "PRODUCTION"


def key_source(name: str, dotenv_path: Path | None) -> tuple[str, str] | None:
    """Where a key is set and its value: ("environment", v) or (".env", v); None if unset.
    Call before `load`, which copies `.env` values into the environment."""
    if os.environ.get(name):
        return "environment", os.environ[name]
    if dotenv_path is not None and dotenv_path.is_file():
        from dotenv import dotenv_values

        value = dotenv_values(dotenv_path).get(name)
        if value:
            return ".env", value
    return None
