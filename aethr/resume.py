"""Resuming a run from its checkpoint: which one, whether it may go on, and in which mode.

A resume must never repeat or skip work wrongly, so it is refused when:
- the checkpoint is of another workflow, or the workflow was edited (exit 3);
- any field does not fit this workflow: a step index out of range, a loop count
  past its limit, a result of a step the workflow lacks (exit 3);
- another task is given (exit 2), or the environment asks for another mode (exit 2);
- the repository changed since a finished step was recorded (exit 4, unless
  --force-resume). A run that failed before any step finished has nothing to
  protect, so edits such as `aethr auth login`'s `.env` and `.gitignore` are fine.
A resume runs in the checkpoint's mode: a live run resumes live, with the same
AETHR_MODEL, even when the resume command does not repeat AETHR_LIVE.

The resume command a failed run prints (`command_line`) repeats every option that
shapes the run, so that following it as printed resumes the same run: the workflow
(`-c FILE`, absolute, or `--preset`), `--context` (in the checkpoint's digest),
`--exec-commands` (else a mock resume would pass the failed command without running
it), `--max-cost`, `--fail-on-revise`, and an isolated run's `--apply` or `--branch NAME`
(else its result would come back another way; the worktree itself is in the checkpoint).
The task, the `-p` values and the mode (live or mock, and AETHR_MODEL) come from the
checkpoint, so the line needs no AETHR_LIVE; how the run is shown (`--json`,
`--output`) is the reader's choice and is left out.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from aethr import fingerprint, runstore
from aethr.checkpoint import RunState
from aethr.errors import CheckpointError, EnvironmentNotReady, UsageError
from aethr.schema import Workflow
from aethr.settings import Settings


def resolve(value: str, root: Path) -> Path:
    """The checkpoint a `--resume-checkpoint` value names: a path, @PATH, or `last`."""
    if value == "last":
        return runstore.newest(root)
    return Path(value.removeprefix("@")).expanduser()


def check(state: RunState, workflow: Workflow, task: str | None, source: str) -> None:
    """Refuse a checkpoint that does not fit this workflow and task (see the module doc).
    `source` names the workflow given: its file, or `preset NAME`."""
    if state.workflow != workflow.workflow:
        raise CheckpointError(
            f"the checkpoint is of workflow '{state.workflow}', and this run was given workflow "
            f"'{workflow.workflow}' ({source})",
            hint="resume with the workflow the checkpoint ran (its file or --preset), or start a new run",
        )
    if state.workflow_digest != workflow.digest():
        raise CheckpointError(
            f"{source} was edited since the checkpoint was written (workflow '{workflow.workflow}')",
            hint="undo the edit to resume, or start a new run",
        )
    if task is not None and task.strip() != state.task.strip():
        raise UsageError(
            "the task given differs from the checkpoint's task",
            hint="omit the task when resuming: it is taken from the checkpoint",
        )
    steps = {s.id: s for s in workflow.steps}
    if state.next_index >= len(workflow.steps):
        raise CheckpointError(
            f"the checkpoint's next step ({state.next_index}) is past the workflow's last "
            f"({len(workflow.steps) - 1}): there is nothing to resume"
        )
    for step_id, passes in state.passes.items():
        loop = steps[step_id].repeat if step_id in steps else None
        if loop is None or passes >= loop.max_iterations:
            raise CheckpointError(f"the checkpoint's loop count for '{step_id}' ({passes}) does not fit the workflow")
    strangers = sorted({r.step_id for r in state.results} - set(steps))
    if strangers:
        raise CheckpointError(f"the checkpoint has results of steps the workflow lacks: {', '.join(strangers)}")


def check_world(state: RunState, root: Path, config: Path, force: bool) -> None:
    """Refuse (EnvironmentNotReady) when the repository changed since a finished step."""
    if not state.results or force or state.fingerprint is None:
        return
    now = fingerprint.take(root, config)
    if now and now != state.fingerprint:
        raise EnvironmentNotReady(
            f"the repository changed since the checkpoint: {fingerprint.describe_change(root, state.fingerprint, now)}",
            hint="skipping finished steps is safe only if nothing changed; pass --force-resume to resume anyway",
        )


def settle_mode(state: RunState, settings: Settings) -> Settings:
    """The settings to resume with: the checkpoint's mode. Raises UsageError when the
    environment asks for another one."""
    if state.mode == "mock":
        if settings.live:
            raise UsageError(
                "the checkpoint is of a mock run, and this environment asks for a live one (AETHR_LIVE or AETHR_MODEL)",
                hint="unset AETHR_LIVE and AETHR_MODEL to finish it in mock mode, or start a new run to go live",
            )
        return settings
    if settings.model_override is not None and settings.model_override != state.model_override:
        was = f"AETHR_MODEL={state.model_override}" if state.model_override else "the workflow's own models"
        raise UsageError(
            f"the checkpoint's run used {was}, and this environment sets AETHR_MODEL={settings.model_override}",
            hint="resume with the same models (or without AETHR_MODEL), or start a new run",
        )
    return settings._replace(live=True, model_override=state.model_override)


class _HandBack(Protocol):
    @property
    def apply(self) -> bool: ...
    @property
    def branch(self) -> str | None: ...


class Shaping(Protocol):
    """The options of `aethr run` that shape a run, read-only (the runner's RunOptions)."""

    @property
    def config(self) -> Path | None: ...
    @property
    def preset(self) -> str | None: ...
    @property
    def context(self) -> Sequence[str]: ...
    @property
    def exec_commands(self) -> bool: ...
    @property
    def max_cost(self) -> float | None: ...
    @property
    def fail_on_revise(self) -> bool: ...
    @property
    def isolation(self) -> _HandBack: ...


def command_line(checkpoint: str, options: Shaping) -> str:
    """The shell command that resumes the run at `checkpoint` as it ran (see the module doc)."""
    words = ["aethr", "run", "--resume-checkpoint", checkpoint]
    if options.config is not None:
        words += ["-c", str(options.config.resolve())]
    if options.preset is not None:
        words += ["--preset", options.preset]
    for source in options.context:
        words += ["--context", source]
    if options.exec_commands:
        words.append("--exec-commands")
    if options.max_cost is not None:
        words += ["--max-cost", repr(options.max_cost)]
    if options.fail_on_revise:
        words.append("--fail-on-revise")
    if options.isolation.apply:
        words.append("--apply")
    if options.isolation.branch is not None:
        words += ["--branch", options.isolation.branch]
    return shlex.join(words)
