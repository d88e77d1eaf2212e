"""`aethr auth`: keep provider keys in the project `.env`, safely.

The file is written atomically with mode 0600 (a looser existing file is
tightened), and inside a git repository `.env` is added to `.gitignore` if git
does not already ignore it. Keys are never printed: at most their last 4
characters.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from aethr import CONFIG_NAME, git
from aethr.errors import UsageError
from aethr.settings import key_source

PROVIDERS: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "google": "GEMINI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "xai": "XAI_API_KEY",
}


def project_root(cwd: Path) -> Path:
    """The folder holding the nearest .aethr.yaml (up to the repository's top), else the
    repository's top, else `cwd`."""
    here = cwd.resolve()
    top = git.toplevel(here)
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
        if top is not None and folder == top:
            break
    return top or here


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
    if path.exists():
        loose = (path.stat().st_mode & 0o077) != 0
        lines = path.read_text(encoding="utf-8").splitlines()
    entry = f"{name}={_quote(value)}"
    kept = [ln for ln in lines if not ln.strip().removeprefix("export ").startswith(f"{name}=")]
    kept.append(entry)
    tmp = path.with_name(f".env.aethr-{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(kept) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return loose


def _quote(value: str) -> str:
    if any(c in value for c in " #'\"\\$"):
        return "'" + value.replace("'", "") + "'"
    return value


def _ensure_ignored(root: Path) -> str | None:
    """Add `.env` to .gitignore when git would not ignore it. Returns a note if it did."""
    top = git.toplevel(root)
    if top is None or git.is_ignored(root, ".env"):
        return None
    gitignore = root / ".gitignore"
    existing = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    separator = "" if not existing or existing.endswith("\n") else "\n"
    gitignore.write_text(f"{existing}{separator}.env\n", encoding="utf-8")
    return f"added .env to {gitignore} so the key is never committed"


def login(provider: str, key: str | None, cwd: Path) -> None:
    name = _variable(provider)
    value = (key if key is not None else _read_key(provider)).strip()
    if not value:
        raise UsageError("no key given: nothing was written")
    if any(c in value for c in "\n\r"):
        raise UsageError("the key has a line break in it: nothing was written")
    root = project_root(cwd)
    path = root / ".env"
    tightened = write_env_value(path, name, value)
    typer.echo(f"Saved {name} ({masked(value)}) to {path} (mode 0600).")
    if tightened:
        typer.echo(f"Tightened the permissions of {path} to 0600 (it was readable by others).")
    note = _ensure_ignored(root)
    if note:
        typer.echo(note[0].upper() + note[1:] + ".")


def status(cwd: Path) -> None:
    path = project_root(cwd) / ".env"
    shown: set[str] = set()
    for provider, name in PROVIDERS.items():
        if name in shown:
            continue
        shown.add(name)
        found = key_source(name, path)
        label = "gemini/google" if name == "GEMINI_API_KEY" else provider
        if found is None:
            typer.echo(f"{label:<14} {name:<20} missing")
        else:
            where = "environment" if found[0] == "environment" else str(path)
            typer.echo(f"{label:<14} {name:<20} set ({masked(found[1])}) from {where}")
