"""The project's files, listed once and shared by every context source of a run.

Inside git, git's own listing is the truth: tracked files plus untracked files it
does not ignore, in one `git ls-files` call. Outside git, a walk that skips `.git`
and honours the root `.gitignore` (negations included), with git's own pattern
rules from the `pathspec` library. `glob:` patterns use the same rules, anchored
at the project root: `*` stays within a folder, `**` spans folders.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from aethr import git


class Listing(NamedTuple):
    files: tuple[str, ...]  # every file, sorted, relative to the root
    untracked: tuple[str, ...]  # the untracked ones, in git's order (empty outside git)


class Lister:
    """The project's files, listed on first use and kept until `forget` (after a step that
    may have changed the tree), so every source of every step shares one listing."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._found: Listing | None = None

    def __call__(self) -> Listing:
        if self._found is None:
            self._found = list_project(self.root)
        return self._found

    def forget(self) -> None:
        self._found = None


def list_project(root: Path) -> Listing:
    """The files below `root` (resolved), from git when it is a repository, else a walk."""
    if git.toplevel(root) is not None:
        try:
            tracked, untracked = git.list_files_split(root)
            return Listing(tuple(sorted({*tracked, *untracked})), tuple(untracked))
        except git.GitError:
            pass
    return Listing(tuple(_walk(root)), ())


def _walk(root: Path) -> list[str]:
    ignored = _gitignore(root)
    found = []
    for folder, dirs, files in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        prefix = "" if rel_folder == "." else rel_folder + "/"
        dirs[:] = sorted(d for d in dirs if d != ".git" and not ignored(prefix + d + "/"))
        found += [prefix + f for f in files if not ignored(prefix + f)]
    return sorted(found)


def _gitignore(root: Path) -> Callable[[str], bool]:
    try:
        lines = (root / ".gitignore").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return lambda rel: False
    import pathspec

    spec = pathspec.GitIgnoreSpec.from_lines(lines)
    return spec.match_file


def glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A test for project-relative paths: does `pattern` (a `glob:` argument) match?"""
    import pathspec

    anchored = pattern if pattern.startswith(("/", "**")) else "/" + pattern
    spec = pathspec.PathSpec.from_lines("gitignore", [anchored])
    compiled = getattr(spec.patterns[0], "regex", None) if spec.patterns else None
    if compiled is None or not spec.patterns[0].include:
        return spec.match_file
    # The pattern's own regex, matched directly: a third of the cost per path on a big tree.
    return lambda rel: compiled.match(rel) is not None
