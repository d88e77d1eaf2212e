"""The built-in presets: list them, read them, copy one into a project.

In an installed wheel the top-level `presets/` folder ships as `aethr/_presets`;
in a source checkout it is read from beside the package.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from aethr import CONFIG_NAME
from aethr.errors import UsageError
from aethr.fsutil import atomic_write

__all__ = ["CONFIG_NAME", "Preset", "all_presets", "get", "write"]

SCHEMA_FILE = Path(__file__).with_name("workflow.schema.json")
SCHEMA_BESIDE = ".aethr.schema.json"  # `init --schema` writes the schema here, beside the workflow
_SCHEMA_LINE = "# yaml-language-server: $schema="


def _folder() -> Path:
    packaged = Path(__file__).with_name("_presets")
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "presets"


class Preset(NamedTuple):
    name: str
    description: str
    text: str


def all_presets() -> list[Preset]:
    """Every preset, by name. The description is the first comment line after the schema line."""
    found = []
    for path in sorted(_folder().glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        comments = [line[1:].strip() for line in text.splitlines() if line.startswith("#")]
        description = next((c for c in comments if not c.startswith("yaml-language-server")), "")
        found.append(Preset(path.stem, description, text))
    return found


def get(name: str) -> Preset:
    """The preset called `name`. Raises UsageError listing the valid names."""
    presets = {p.name: p for p in all_presets()}
    if name not in presets:
        raise UsageError(
            f"unknown preset '{name}'",
            hint=f"choose one of: {', '.join(presets)} (`aethr init --list` describes them)",
        )
    return presets[name]


def write(preset: Preset, target: Path, *, force: bool, schema: bool = False) -> None:
    """Copy a preset to `target`. Raises UsageError if `target` exists and `force` is false:
    a workflow the user edited is never overwritten by accident.

    The preset's `$schema` comment must work on every machine that checks the file out, so
    it never holds a local install path: with `schema`, the schema is written beside the
    workflow (`.aethr.schema.json`, to commit with it) and the comment points there,
    relatively; without it, the comment is left out.
    """
    if target.exists() and not force:
        raise UsageError(
            f"{target} already exists; it was left as it is",
            hint="pass --force to replace it with the preset",
        )
    lines = preset.text.splitlines(keepends=True)
    if lines and lines[0].startswith(_SCHEMA_LINE):
        lines = lines[1:]
        if schema:
            atomic_write(target.with_name(SCHEMA_BESIDE), SCHEMA_FILE.read_bytes(), mode=0o644)
            lines.insert(0, f"{_SCHEMA_LINE}{SCHEMA_BESIDE}\n")
    atomic_write(target, "".join(lines).encode(), mode=0o644)
