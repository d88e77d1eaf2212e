"""The one secret policy: which paths and which contents never reach a prompt.

Every context source (`file:`, `glob:`, `git_diff`, `git_diff:<range>`) asks the
same three questions, so the rules cannot drift apart:
- `by_name(rel)`: git internals, `.env` files and private-key files, by name;
- `by_target(root, rel)`: the same, for what a path resolves to (a symlink with an
  ordinary name to `.env` or into `.git/` is refused), and nothing outside the root;
- `by_content(data)`: private-key blocks, and the values of the run's secrets.
Each answers None (allowed) or the reason, worded to follow "refused PATH: ".
`mask(text)` hides those values in text that must be shown.

The run's secrets (`secrets.Secrets`) are built once, when settings load, and handed
here by `use` when the run starts; nothing here reads the environment. Until then the
set is empty (commands that are not runs show no model or agent text).
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path, PurePosixPath

from aethr.secrets import Secrets

# Basenames that hold secrets by convention. `id_*` counts only without an extension
# (id_rsa, id_ed25519_sk…), so id_utils.py is a file like any other; id_rsa.pub is public.
SECRET_NAMES = (".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore")
_SSH_KEY = re.compile(r"id_[A-Za-z0-9_]+")
_PRIVATE_KEY = re.compile(rb"-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")
SECRET_REASON = "it may hold secrets (.env files and private keys are never included)"
_run_secrets = Secrets()


def use(secrets: Secrets) -> None:
    """Make `secrets` the set every later question and mask uses (once, at a run's start)."""
    global _run_secrets
    _run_secrets = secrets


def current() -> Secrets:
    return _run_secrets


def overread() -> int:
    """How many bytes past a cut a screen must read, so that a secret straddling the cut is
    seen whole: the longest secret's length (a private-key header is shorter than that)."""
    return max(_run_secrets.longest, 64)


def by_name(rel: str) -> str | None:
    """Why the project-relative path `rel` must not be read, judged by its name alone."""
    pure = PurePosixPath(rel.replace(os.sep, "/"))
    if ".git" in pure.parts:
        return "git internals are never included"
    name = pure.name
    if _SSH_KEY.fullmatch(name) or any(fnmatch.fnmatchcase(name, pattern) for pattern in SECRET_NAMES):
        return SECRET_REASON
    return None


def by_target(root: Path, rel: str) -> str | None:
    """Why `rel` must not be read, judged by its name and by what it resolves to. `root` is
    resolved. Absolute paths and `..` are refused before anything is resolved."""
    pure = PurePosixPath(rel.replace(os.sep, "/"))
    if pure.is_absolute() or Path(rel).is_absolute():
        return "absolute paths are not allowed; use a path inside the project"
    if ".." in pure.parts:
        return "'..' would leave the project root"
    reason = by_name(rel)
    if reason:
        return reason
    resolved = (root / rel).resolve()
    if not resolved.is_relative_to(root):
        return "it is a symlink that leads outside the project root"
    target = resolved.relative_to(root).as_posix()
    if target != pure.as_posix():
        reason = by_name(target)
        if reason:
            return f"it is a symlink to {target}, and {reason}"
    return None


def by_content(data: bytes) -> str | None:
    """Why text with these bytes must not be sent: a private key, or a known key's value."""
    if _PRIVATE_KEY.search(data):
        return "it looks like a private key"
    if _run_secrets.found_in(data):
        return "it contains the value of an API key, token or password this run knows"
    return None


def mask(text: str) -> str:
    """`text` with every value of the run's secrets as `****`."""
    return _run_secrets.mask(text)
