"""The one secret policy: which paths and which contents never reach a prompt.

Every context source (`file:`, `glob:`, `git_diff`, `git_diff:<range>`) asks the
same three questions, so the rules cannot drift apart:
- `by_name(rel)`: git internals, `.env` files and private-key files, by name;
- `by_target(root, rel)`: the same, for what a path resolves to (a symlink with an
  ordinary name to `.env` or into `.git/` is refused), and nothing outside the root;
- `by_content(data)`: private-key blocks, and the values of keys aethr knows.
Each answers None (allowed) or the reason, worded to follow "refused PATH: ".
`mask(text)` hides those key values in text that must be shown (a command's output).
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path, PurePosixPath

from aethr import settings

# Basenames that hold secrets by convention. `id_*` counts only without an extension
# (id_rsa, id_ed25519_sk…), so id_utils.py is a file like any other; id_rsa.pub is public.
SECRET_NAMES = (".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore")
_SSH_KEY = re.compile(r"id_[A-Za-z0-9_]+")
_PRIVATE_KEY = re.compile(rb"-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")
SECRET_REASON = "it may hold secrets (.env files and private keys are never included)"


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
    for value in settings.secret_values():
        if value.encode() in data:
            return "it contains the value of an API key or token set in the environment"
    return None


def mask(text: str) -> str:
    """`text` with the value of every API key or token set in the environment as `****`."""
    for value in settings.secret_values():
        text = text.replace(value, "****")
    return text
