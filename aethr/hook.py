"""aethr as a git hook: a review of what a commit or a push is about to hand on.

    aethr-hook pre-commit [--fail-on-revise] [aethr run options]   reviews `git_diff:staged`
    aethr-hook pre-push   [--fail-on-revise] [aethr run options]   reviews FROM..TO

The pushed range is the pre-commit framework's `PRE_COMMIT_FROM_REF..PRE_COMMIT_TO_REF`.
The review is `aethr run` in a child process with the range passed as the workflow's own
`base` parameter (`-p base=staged`), so the `git_diff:{{params.base}}` of the
`review-existing-diff` preset, the default, sees that and nothing else; `--preset` or
`--config` in the options picks another workflow, which must take `base` the same way.

Decisions, where a hook differs from a run:
- Advisory by default: the findings are printed and the hook exits 0 however the review
  ended, since a hook that blocks because a provider is down teaches people `--no-verify`.
  With `--fail-on-revise` aethr's exit code is the hook's: a revise (5), or a review that
  could not be made, blocks (fail closed). Ctrl-C (130) always stops the commit.
- Mock mode (neither AETHR_LIVE nor AETHR_MODEL, in the environment or the project's .env)
  runs nothing: a mock reply is not a review, so the hook says that nothing was reviewed
  and exits 0, with `--fail-on-revise` too, so a teammate without keys can still commit.
- Nothing to review (nothing staged, an empty range, a first push, which the framework
  sends without a range) exits 0 at once, before settings are read or anything is called.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from aethr import git
from aethr.errors import AethrError, ExitCode

DEFAULT_PRESET = "review-existing-diff"
_WHAT = {"pre-commit": "commit", "pre-push": "push"}
_TASKS = {
    "pre-commit": "Review the staged change, which is about to be committed",
    "pre-push": "Review the commits about to be pushed",
}
_USAGE = "usage: aethr-hook pre-commit|pre-push [--fail-on-revise] [aethr run options]"


def _say(line: str) -> None:
    sys.stderr.write(f"aethr: {line}\n")
    sys.stderr.flush()


def _revision(stage: str, env: Mapping[str, str]) -> str | None:
    """What the hook reviews: `staged`, or the pushed range; None for a push without one."""
    if stage == "pre-commit":
        return git.STAGED
    start, end = env.get("PRE_COMMIT_FROM_REF", "").strip(), env.get("PRE_COMMIT_TO_REF", "").strip()
    return f"{start}..{end}" if start and end else None


def _option(args: Sequence[str], *names: str) -> str | None:
    """The value of the last `--name VALUE` or `--name=VALUE` among `args`, or None."""
    found = None
    for position, arg in enumerate(args):
        for name in names:
            if arg == name and position + 1 < len(args):
                found = args[position + 1]
            elif arg.startswith(f"{name}="):
                found = arg.partition("=")[2]
    return found


def _live(root: Path, config: str | None) -> bool:
    """Whether a run would call models, by the settings' own rule (the project's .env included)."""
    from aethr import project, settings

    try:
        return settings.load(project.find(root, Path(config) if config else None).dotenv).live
    except AethrError:
        return True  # a bad AETHR_MODEL: the run reports it, where runs report errors


def _nothing_to_review(root: Path, stage: str, revision: str | None) -> str | None:
    """Why there is nothing to review, or None."""
    if revision is None:
        return "no pushed range (PRE_COMMIT_FROM_REF is not set, as on a first push): nothing to review"
    if git.has_changes(root, revision):
        return None
    return "nothing staged: nothing to review" if stage == "pre-commit" else f"no changes in {revision}"


def review(stage: str, args: Sequence[str], root: Path, env: Mapping[str, str]) -> int:
    """Review what `stage` hands on, with `args` for `aethr run`; the hook's exit code."""
    revision = _revision(stage, env)
    try:
        empty = _nothing_to_review(root, stage, revision)
    except git.GitError as exc:
        _say(f"cannot read the change: {exc}")
        return ExitCode.NOT_READY
    if empty is not None:
        _say(empty)
        return ExitCode.OK
    what = _WHAT[stage]
    if not _live(root, _option(args, "--config", "-c")):
        _say(
            "nothing was reviewed: aethr is in mock mode. Set AETHR_LIVE=1 (or AETHR_MODEL) and a"
            f" provider key, in the environment or the project's .env, to review each {what}. The {what} goes on."
        )
        return ExitCode.OK
    chosen = _option(args, "--preset") or _option(args, "--config", "-c")
    workflow = [] if chosen else ["--preset", DEFAULT_PRESET]
    command = [sys.executable, "-m", "aethr", "run", _TASKS[stage], *workflow, "-p", f"base={revision}", *args]
    code = subprocess.run(command, cwd=root, check=False).returncode
    if code in (ExitCode.OK, ExitCode.INTERRUPTED) or "--fail-on-revise" in args:
        return code
    _say(f"the review ended with exit {code}; the hook is advisory, so the {what} goes on")
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> None:
    """The `aethr-hook` script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in _WHAT:
        _say(_USAGE)
        raise SystemExit(ExitCode.USAGE)
    root = git.toplevel(Path.cwd())
    if root is None:
        _say(f"{git.why_not_a_repository(Path.cwd())}: a hook reviews a git change")
        raise SystemExit(ExitCode.NOT_READY)
    try:
        raise SystemExit(review(args[0], args[1:], root, os.environ))
    except KeyboardInterrupt:
        _say("interrupted")
        raise SystemExit(ExitCode.INTERRUPTED) from None


if __name__ == "__main__":
    main()
