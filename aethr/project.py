"""The one project-root finder, shared by runs, `validate` and `auth`.

The project root is the folder holding `.aethr.yaml`, found in the working
directory or the nearest folder above it, stopping at the repository's top (like
git). With no workflow file it is the repository's top, and outside git the
working directory. The project's `.env` is always `<root>/.env`: a run reads it
and `aethr auth` writes it, so both agree on which file holds a key.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from aethr import CONFIG_NAME, git
from aethr.errors import ConfigError

_NO_CONFIG_HINT = "run `aethr init` to create one from a preset (`aethr init --list` shows them)"


class Project(NamedTuple):
    root: Path  # resolved
    config: Path | None  # the workflow file, when there is one

    @property
    def dotenv(self) -> Path:
        return self.root / ".env"


def find(cwd: Path, given: Path | None = None) -> Project:
    """The project seen from `cwd`; with `given` (--config), the folder holding that file."""
    if given is not None:
        return Project(given.resolve().parent, given)
    here = cwd.resolve()
    top = git.toplevel(here)
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return Project(folder, folder / CONFIG_NAME)
        if folder == top or (top is None and (folder / ".git").exists()):
            break
    return Project(top or here, None)


def require_config(cwd: Path, given: Path | None) -> Project:
    """The project, which must have a workflow file. Raises ConfigError naming where it looked."""
    if given is not None and not given.is_file():
        what = "is a folder, not a workflow file" if given.is_dir() else "no workflow file here"
        raise ConfigError(f"{given}: {what}", hint="check the --config path")
    project = find(cwd, given)
    if project.config is None:
        raise ConfigError(f"no {CONFIG_NAME} in {cwd.resolve()} or the folders above it", hint=_NO_CONFIG_HINT)
    return project
