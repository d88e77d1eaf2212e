"""Reading an agent's event fields, which are never trusted: shared by every agent adapter."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def as_dict(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: event fields are never trusted."""
    return value if isinstance(value, dict) else {}


def count(value: Any) -> int:
    """A token count from an event field: 0 unless it is a number."""
    return int(value) if isinstance(value, int | float) else 0


def relative(target: str, root: Path) -> str:
    """A path the agent reported, shown relative to the project root when inside it."""
    if target.startswith(str(root) + os.sep):
        return target[len(str(root)) + 1 :]
    return target
