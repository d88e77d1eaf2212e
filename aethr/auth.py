"""`aethr auth`: keep provider keys in the project `.env`, safely.

The file is written atomically with mode 0600 (a looser existing file is
tightened), and inside a git repository `.env` is added to `.gitignore` if git
does not already ignore it. Keys are never printed: at most their last 4
characters.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from aethr import git, project
from aethr.errors import UsageError
from aethr.fsutil import atomic_write
from aethr.settings import key_source

PROVIDERS: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "google": "GEMINI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "xai": "XAI_API_KEY",
}


def masked(value: str) -> str:
    return f"…{value[-4:]}" if len(value) >= 12 else "…"


def _variable(provider: str) -> str:
    name = provider.lower()
    if name not in PROVIDERS:
        raise UsageError(f"unknown provider '{provider}'", hint=f"choose one of: {', '.join(PROVIDERS)}")
    return PROVIDERS[name]


def _read_key(provider: str) -> str:
    if sys.stdin.isatty():
        return str(typer.prompt(f"{provider} API key", hide_input=True)).strip()
    # Piped in (`printf %s "$KEY" | aethr auth login openai`): never echoed.
    return sys.stdin.readline().strip()


def write_env_value(path: Path, name: str, value: str) -> bool:
    """Set `name=value` in the .env at `path`, keeping other lines. Returns True if an
    existing file's permissions were tightened to 0600."""
    lines: list[str] = []
    loose = False
    if path.is_file():
        loose = (path.stat().st_mode & 0o077) != 0
        lines = path.read_text(encoding="utf-8").splitlines()
    entry = f"{name}={_quote(value)}"
    kept = [ln for ln in lines if not ln.strip().removeprefix("export ").startswith(f"{name}=")]
    kept.append(entry)
    atomic_write(path, ("\n".join(kept) + "\n").encode(), mode=0o600)
    return loose


def _quote(value: str) -> str:
    """The value as .env text that python-dotenv reads back exactly: single-quoted (no `$`
    expansion) with `\\` and `'` escaped, when it holds anything a bare value would lose."""
    if any(c in value for c in " #'\"\\$="):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return value


def _ensure_ignored(root: Path) -> str | None:
    """Add `.env` to .gitignore when git would not ignore it. Returns a note if it did."""
    top = git.toplevel(root)
    if top is None or git.is_ignored(root, ".env"):
        return None
    gitignore = root / ".gitignore"
    existing = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    separator = "" if not existing or existing.endswith("\n") else "\n"
    atomic_write(gitignore, f"{existing}{separator}.env\n".encode(), mode=0o644)
    return f"added .env to {gitignore} so the key is never committed"


def login(provider: str, key: str | None, cwd: Path) -> None:
    name = _variable(provider)
    value = (key if key is not None else _read_key(provider)).strip()
    if not value:
        raise UsageError("no key given: nothing was written")
    if any(c in value for c in "\n\r"):
        raise UsageError("the key has a line break in it: nothing was written")
    root = project.find(cwd).root
    path = root / ".env"
    tightened = write_env_value(path, name, value)
    typer.echo(f"Saved {name} ({masked(value)}) to {path} (mode 0600).")
    if tightened:
        typer.echo(f"Tightened the permissions of {path} to 0600 (it was readable by others).")
    note = _ensure_ignored(root)
    if note:
        typer.echo(note[0].upper() + note[1:] + ".")


# The key each provider prefix reads, for listing what a workflow needs.
_KEYS_BY_PROVIDER = {**{p: v for p, v in PROVIDERS.items() if p != "google"}, "litellm_proxy": "LITELLM_PROXY_API_KEY"}


def status(cwd: Path) -> None:
    found_project = project.find(cwd)
    path = found_project.dotenv
    shown: set[str] = set()
    for provider, name in PROVIDERS.items():
        if name in shown:
            continue
        shown.add(name)
        label = "gemini/google" if name == "GEMINI_API_KEY" else provider
        typer.echo(f"{label:<14} {name:<20} {_where(name, path)}")
    if found_project.config is not None:
        _needed(found_project.config, path)


def _where(name: str, dotenv: Path) -> str:
    found = key_source(name, dotenv)
    if found is None:
        return "missing"
    where = "environment" if found[0] == "environment" else str(dotenv)
    return f"set ({masked(found[1])}) from {where}"


def _needed(config: Path, dotenv: Path) -> None:
    """The keys the workflow's model and agent steps need, by the role that needs each."""
    from aethr import agents
    from aethr.config import load
    from aethr.errors import ConfigError
    from aethr.names import litellm_model_name

    try:
        workflow = load(config)
    except ConfigError:
        typer.echo(f"\n{config} is not valid: `aethr validate` says why")
        return
    needs: dict[str, list[str]] = {}
    # Model steps, and the agents that call a provider with its key (OpenCode keeps its own).
    calling = [s for s in workflow.steps if s.kind == "model" or getattr(agents.get(s.kind), "provider", None)]
    for role in dict.fromkeys(s.role for s in calling):
        entry, model = workflow.entry_of(role), workflow.model_of(role)
        if entry is not None and entry.api_key_env:
            needs.setdefault(entry.api_key_env, []).append(role)
        elif model:
            provider = litellm_model_name(model).partition("/")[0]
            needs.setdefault(_KEYS_BY_PROVIDER.get(provider, f"(the {provider} key LiteLLM reads)"), []).append(role)
    if not needs:
        return
    typer.echo(f"\nthis workflow ({config.name}) needs, for live runs:")
    for name, roles in needs.items():
        state = "no key (a keyless server)" if name == "none" else _where(name, dotenv)
        typer.echo(f"  {name:<22} {state}  · roles: {', '.join(roles)}")
