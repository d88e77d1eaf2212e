"""The project's files, listed once and shared by every context source of a run.

Inside git, git's own listing is the truth: tracked files plus untracked files it
does not ignore, in one `git ls-files` call. Outside git, a walk that skips `.git`
and honours the root `.gitignore` (negations included), with git's own pattern
rules from the `pathspec` library. `glob:` patterns use the same rules, anchored
at the project root: `*` stays within a folder, `**` spans folders.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
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
            names = tracked + untracked
            names.sort()  # git gives two sorted runs: sorting them is a merge
            return Listing(tuple(dict.fromkeys(names)), tuple(untracked))
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


def _compiled(pattern: str) -> tuple[re.Pattern[str] | None, Callable[[str], bool]]:
    """`pattern`'s own regex (None for a negation, or a pattern pathspec builds no regex for),
    and a test for project-relative paths: does `pattern` (a `glob:` argument) match?"""
    import pathspec

    anchored = pattern if pattern.startswith(("/", "**")) else "/" + pattern
    spec = pathspec.PathSpec.from_lines("gitignore", [anchored])
    compiled = getattr(spec.patterns[0], "regex", None) if spec.patterns else None
    if not isinstance(compiled, re.Pattern) or not spec.patterns[0].include:
        return None, spec.match_file
    # The pattern's own regex, matched directly: a third of the cost per path on a big tree.
    return compiled, lambda rel: compiled.match(rel) is not None


def glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A test for project-relative paths: does `pattern` (a `glob:` argument) match?"""
    return _compiled(pattern)[1]


def match_globs(patterns: Iterable[str], files: Sequence[str]) -> dict[str, list[str]]:
    """Each pattern's matches among `files`, in their order, from one pass over `files`: one
    regex made of every pattern's own picks the candidates (a filter run in C, no Python per
    path), then only those are tested against each pattern."""
    tests = {pattern: _compiled(pattern) for pattern in patterns}
    found: dict[str, list[str]] = {pattern: [] for pattern in tests}
    regexes = [regex.pattern for regex, _ in tests.values() if regex is not None]
    candidates: Iterable[str] = files
    if tests and len(regexes) == len(tests):
        with contextlib.suppress(re.error):  # two patterns' group names could clash: test each
            candidates = filter(re.compile("|".join(f"(?:{r})" for r in regexes)).match, files)
    for rel in candidates:
        for pattern, (_, test) in tests.items():
            if test(rel):
                found[pattern].append(rel)
    return found


def globbed(patterns: list[str], files: Callable[[], Listing]) -> Callable[[str], list[str]]:
    """A step's glob matches: every one of `patterns` matched in one pass over `files()`, when
    the first is asked for (a step whose budget runs out first lists nothing)."""
    found: dict[str, list[str]] = {}

    def matches(pattern: str) -> list[str]:
        if pattern not in found:
            found.update(match_globs([p for p in patterns if p not in found] or [pattern], files().files))
        return found[pattern]

    return matches
