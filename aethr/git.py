"""Every git subprocess call aethr makes, with typed results.

Reads stream from git and stop at a byte cap, so an 8 MB diff is never held
whole. Nothing here writes to the repository except `snapshot`, which stores
blobs and a tree object (unreferenced, collected by git's own gc) through a
temporary index, leaving the user's index untouched.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from aethr import diffstream, proc

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
# `git_diff:staged`: what `git commit` would commit. A branch named "staged" is written
# `refs/heads/staged` or as a range (`staged...HEAD`).
STAGED = "staged"
_ENV = {"GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}


class GitError(Exception):
    """A git command failed; the message says which and why."""


class GitMissing(GitError):
    """git is not installed or not on PATH."""


class Capped(NamedTuple):
    text: str
    truncated: bool
    bytes_read: int


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **_ENV, **(extra or {})}


def _argv(args: Sequence[str]) -> list[str]:
    return ["git", "-c", "core.quotepath=off", *args]


def _run(root: Path, args: tuple[str, ...], env: dict[str, str] | None) -> proc.Captured:
    try:
        return proc.capture(_argv(args), cwd=root, env=_env(env))
    except FileNotFoundError:
        raise GitMissing("git is not installed (or not on PATH)") from None


def _git(root: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    done = _run(root, args, env)
    if check and done.code != 0:
        said = done.stderr.decode("utf-8", errors="replace").strip()
        raise GitError(f"git {' '.join(args)} failed: {said or done.code}")
    return done.stdout.decode("utf-8", errors="replace")


def command(root: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    """A git call for the modules that speak git for one purpose (`worktree`), through the
    same runner and environment as every call here."""
    forget_head()  # such a call may commit or switch branches
    return _git(root, *args, env=env, check=check)


def _start(root: Path, args: list[str]) -> proc.Child:
    """git with its output on a pipe, for callers that read it as it comes (stderr is drained
    meanwhile: under `core.autocrlf` git can write a warning per file there)."""
    try:
        return proc.start(_argv(args), cwd=root, env=_env(), supervised=False, stderr_lines=20)
    except FileNotFoundError:
        raise GitMissing("git is not installed (or not on PATH)") from None


def _failed(args: list[str], child: proc.Child, code: int) -> GitError:
    return GitError(f"git {' '.join(args)} failed: {chr(10).join(child.stderr).strip() or code}")


def _git_capped(root: Path, args: list[str], cap: int) -> Capped:
    """Run git and keep at most `cap` bytes of its output; stop git once the cap is hit."""
    with _start(root, args) as child:
        data = child.stdout.read(cap + 1)
        truncated = len(data) > cap
        code = 0 if truncated else child.finish()  # past the cap, leaving the block stops git
        if code != 0:
            raise _failed(args, child, code)
    # surrogateescape keeps bytes that are not UTF-8 recognisable, so a caller can leave
    # them out with a note instead of showing replacement characters.
    return Capped(data[:cap].decode("utf-8", errors="surrogateescape"), truncated, min(len(data), cap))


# The commit HEAD points at (None before the first commit), per git directory: read with the
# location, and again after `forget_head` (a step that may edit files ran; aethr moved HEAD).
_HEADS: dict[Path, str | None] = {}


@functools.lru_cache(maxsize=16)
def _locate(path: Path) -> tuple[Path, Path] | None:
    """The work tree's top folder and the git directory, and HEAD with them, in one call; None
    outside a work tree. Cached: a run asks for every git source, and a repository does not
    move under a run. (`--revs-only` prints nothing for an unborn HEAD, and fails for none.)"""
    args = ("rev-parse", "--show-toplevel", "--absolute-git-dir", "--revs-only", "HEAD^{commit}")
    lines = _git(path, *args, check=False).splitlines()
    if len(lines) not in (2, 3):
        return None
    _HEADS[Path(lines[1])] = lines[2] if len(lines) == 3 else None
    return Path(lines[0]), Path(lines[1])


def toplevel(path: Path) -> Path | None:
    """The repository's top folder, or None outside a repository or without git (the one
    "is this a git repository" check; `why_not_a_repository` says which)."""
    try:
        found = _locate(path)
    except GitMissing:
        return None
    return found[0] if found else None


def why_not_a_repository(path: Path) -> str:
    """Why `toplevel(path)` is None, in a few words."""
    return "git is not installed" if shutil.which("git") is None else "not a git repository"


def _git_dir(root: Path) -> Path:
    found = _locate(root)
    if found is None:
        raise GitError(f"{root} is not inside a git work tree")
    return found[1]


def head(root: Path) -> str | None:
    """The commit HEAD points at, or None in a repository with no commits yet; as read with
    the repository's location unless `forget_head` was called since."""
    found = _locate(root)
    if found is not None and found[1] in _HEADS:
        return _HEADS[found[1]]
    out = _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False).strip() or None
    if found is not None:
        _HEADS[found[1]] = out
    return out


def forget_head() -> None:
    """HEAD may have moved (a step that may edit files, or aethr's own commit): read it again."""
    _HEADS.clear()


def _diff_base(root: Path, revision_range: str | None) -> list[str]:
    """The revision arguments of a diff: `revision_range`; for `STAGED` the index against HEAD
    (`git diff --cached`); else the working tree against HEAD. HEAD is the empty tree before
    the first commit, as `git commit` sees it."""
    if revision_range == STAGED:
        return ["--cached", "--end-of-options", head(root) or EMPTY_TREE]
    base = revision_range or head(root) or EMPTY_TREE
    if base.startswith("-"):
        raise GitError(f"'{base}' is not a revision range")
    return ["--end-of-options", base]


def has_changes(root: Path, revision_range: str | None = None) -> bool:
    """Whether `diff_lines` would show any tracked change (one quiet git call, no output read)."""
    args = ("diff", "--quiet", "--no-ext-diff", "--no-textconv", *_diff_base(root, revision_range), "--")
    done = _run(root, args, None)
    if done.code not in (0, 1):
        said = done.stderr.decode("utf-8", errors="replace").strip()
        raise GitError(f"git {' '.join(args)} failed: {said or done.code}")
    return done.code == 1


class Diff(NamedTuple):
    names: list[str]  # every path the diff changes (both sides of a rename), relative to the root
    lines: Iterator[bytes]  # the patch's lines, as git writes them


@contextlib.contextmanager
def diff_lines(root: Path, revision_range: str | None = None) -> Iterator[Diff]:
    """`git diff` of tracked files in one pass: the changed paths, then the patch's lines as
    bytes, read as git writes them (at most 64 KiB at a time, so one enormous line is never
    held whole): staged and unstaged against HEAD (the empty tree before the first commit),
    only the staged (`STAGED`), or `revision_range`; below `root`, paths relative to it (as
    `list_files_split` gives them). Leaving the block early stops git. Raises GitError if
    git fails."""
    base = _diff_base(root, revision_range)
    args = ["diff", "--raw", "-z", "-p", "--no-ext-diff", "--no-color", "--no-textconv", "--relative", *base]
    args += ["--", "."]
    with _start(root, args) as child:
        stdout = child.stdout
        names, head = diffstream.read_names(stdout)
        yield Diff(names, diffstream.lines(head, stdout))
        # A caller that left before the end stopped reading: leaving the block stops git.
        if not stdout.read(1):
            code = child.finish()
            if code != 0:
                raise _failed(args, child, code)


def list_files_split(root: Path) -> tuple[list[str], list[str]]:
    """Tracked files and untracked-not-ignored files below `root`, in one call."""
    out = _git(root, "ls-files", "-z", "-t", "--cached", "--others", "--exclude-standard", "--deduplicate")
    entries = out.split("\0")  # each is a tag, a space and the name; `?` tags an untracked file
    untracked = [entry[2:] for entry in entries if entry[:1] == "?"]
    tracked = [entry[2:] for entry in entries if len(entry) > 2 and entry[:1] != "?"]
    return tracked, untracked


def snapshot(root: Path, exclude: list[str] | None = None) -> str:
    """A tree object of the working tree below `root` as it is now (untracked files included,
    `.gitignore` honoured, `exclude` paths left out), built through a temporary index so the
    user's staging is kept."""
    git_dir = _git_dir(root)
    with tempfile.TemporaryDirectory(prefix="aethr-index-") as tmp:
        index = Path(tmp) / "index"
        real_index = git_dir / "index"
        if real_index.exists():
            # Starting from the real index keeps git's stat cache: unchanged files are not rehashed.
            # Its mtime is kept too: git rehashes an entry written in the same second as the index
            # ("racily clean"), and a copy with a newer mtime would hide an edit made in that second.
            shutil.copy2(real_index, index)
        env = {"GIT_INDEX_FILE": str(index)}
        _git(root, "add", "--all", "--", ".", env=env)
        if exclude:
            _git(root, "rm", "--cached", "--quiet", "--ignore-unmatch", "--", *exclude, env=env)
        return _git(root, "write-tree", env=env).strip()


def diff_trees(root: Path, before: str, after: str, cap: int) -> Capped:
    return _git_capped(root, ["diff", "--no-ext-diff", "--no-color", before, after], cap)


def changed_files(root: Path, before: str, after: str) -> list[str]:
    out = _git(root, "diff", "--name-only", "-z", "--no-renames", before, after)
    return [name for name in out.split("\0") if name]


def diff_stat(root: Path, before: str, after: str) -> str:
    return _git(root, "diff", "--stat=100", before, after).rstrip()


def is_ignored(root: Path, path: str) -> bool:
    return _run(root, ("check-ignore", "--quiet", "--", path), None).code == 0


PR_DIFF_CAP = 64 * 1024 * 1024


def pull_request_diff(root: Path, revision_range: str | None) -> Capped:
    """The diff GitHub shows for a pull request: `git diff -M RANGE` (the working tree
    against HEAD without one), from the repository's top, with a/ and b/ prefixes whatever
    the user's configuration says. Raises GitError if git fails."""
    base = _diff_base(root, revision_range)
    top = toplevel(root) or root
    args = ["diff", "--no-ext-diff", "--no-color", "--no-textconv", "-M", "--src-prefix=a/", "--dst-prefix=b/"]
    return _git_capped(top, [*args, *base, "--"], PR_DIFF_CAP)
