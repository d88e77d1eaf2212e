"""Wire one `aethr run`: find and load the workflow, read settings, pick the task,
check a checkpoint before resuming, choose a renderer, and call the executor.

The project root is the folder holding the workflow file; context never reads
above it, and checkpoints are keyed by it.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import NamedTuple

from aethr import checkpoint, fingerprint, project
from aethr import settings as settings_mod
from aethr.backends import Backends
from aethr.config import Workflow
from aethr.config import load as load_workflow
from aethr.errors import CheckpointError, EnvironmentNotReady, UsageError
from aethr.events import EventSink
from aethr.executor import Durability, Executor
from aethr.settings import Settings


class RunOptions(NamedTuple):
    """What `aethr run` was asked to do, from its command line."""

    task: str | None = None
    config: Path | None = None
    show_prompt: bool = False
    json_output: bool = False
    resume: str | None = None
    force_resume: bool = False
    verbose: bool = False


_TASK_TEMPLATE = "\n# Write the task above. Lines starting with '#' are ignored; an empty task aborts.\n"


def resolve_checkpoint(value: str, root: Path) -> Path:
    if value == "last":
        return checkpoint.newest(root)
    return Path(value.removeprefix("@")).expanduser()


def check_resume(
    state: checkpoint.RunState, workflow: Workflow, task: str | None, root: Path, config: Path, force: bool
) -> None:
    """Refuse a resume that could repeat or skip work wrongly. Raises CheckpointError (another
    or an edited workflow), UsageError (another task), EnvironmentNotReady (the repository
    changed, unless `force`)."""
    if state.workflow != workflow.workflow:
        raise CheckpointError(
            f"the checkpoint is of workflow '{state.workflow}', but {config} is '{workflow.workflow}'"
        )
    if state.workflow_digest != workflow.digest():
        raise CheckpointError(
            f"{config} was edited since the checkpoint was written (workflow '{workflow.workflow}')",
            hint="undo the edit to resume, or start a new run",
        )
    if task is not None and task.strip() != state.task.strip():
        raise UsageError(
            "the task given differs from the checkpoint's task",
            hint="omit the task when resuming: it is taken from the checkpoint",
        )
    if state.next_index >= len(workflow.steps):
        raise CheckpointError("the checkpoint's run already finished: there is nothing to resume")
    now = fingerprint.take(root, config)
    if state.fingerprint and now and now != state.fingerprint and not force:
        raise EnvironmentNotReady(
            f"the repository changed since the checkpoint: {fingerprint.describe_change(root, state.fingerprint, now)}",
            hint="skipping finished steps is safe only if nothing changed; pass --force-resume to resume anyway",
        )


def ask_task(settings: Settings) -> str:
    """Open the user's editor on a temporary file and return what they wrote.
    Raises UsageError with no terminal, no editor, or an empty task."""
    if not sys.stdin.isatty():
        raise UsageError("no task given", hint='pass it as an argument: aethr run "what to do"')
    import shlex
    import subprocess
    import tempfile

    editor = settings.editor or "vi"
    with tempfile.TemporaryDirectory(prefix="aethr-task-") as folder:
        path = Path(folder) / "TASK.md"
        path.write_text(_TASK_TEMPLATE, encoding="utf-8")
        try:
            code = subprocess.call([*shlex.split(editor), str(path)])
        except OSError as exc:
            raise UsageError(
                f"cannot start the editor {editor!r}: {exc.strerror or exc}",
                hint="set AETHR_EDITOR or EDITOR, or pass the task as an argument",
            ) from None
        if code != 0:
            raise UsageError(f"the editor {editor!r} exited with status {code}; nothing was run")
        text = path.read_text(encoding="utf-8", errors="replace")
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    task = "\n".join(lines).strip()
    if not task:
        raise UsageError("the task is empty: nothing to do")
    return task


def _sink(show_prompt: bool, json_output: bool, settings: Settings, verbose: bool) -> EventSink:
    from aethr import render

    if json_output:
        return render.JsonRenderer(sys.stdout)
    if show_prompt:
        return render.PreviewRenderer(sys.stdout)
    color = sys.stdout.isatty() and not settings.no_color
    return render.TerminalRenderer(sys.stdout, sys.stderr, color=color, verbose=verbose)


def run_command(options: RunOptions) -> None:
    """Run (or resume, or preview) the workflow. Raises AethrError subclasses."""
    found = project.require_config(Path.cwd(), options.config)
    assert found.config is not None
    config_path, root = found.config, found.root
    workflow = load_workflow(config_path)
    settings = settings_mod.load(found.dotenv)
    show_prompt = options.show_prompt
    uses_litellm = settings.live and not show_prompt and any(s.backend == "model" for s in workflow.steps)
    if uses_litellm:
        from aethr.backends.live import preload

        preload()  # overlaps the seconds-long litellm import with the work below
    if show_prompt and options.resume:
        raise UsageError("--show-prompt and --resume-checkpoint do not go together")

    task = options.task
    state = None
    checkpoint_path = None
    if options.resume:
        checkpoint_path = resolve_checkpoint(options.resume, root)
        state = checkpoint.load(checkpoint_path)
        check_resume(state, workflow, task, root, config_path, options.force_resume)
    elif task is None:
        task = ask_task(settings)
    elif not task.strip():
        raise UsageError("the task is empty: nothing to do")

    backends = Backends(workflow, settings, root, preview=show_prompt)
    backends.preflight()
    durability = None
    if not show_prompt:
        durability = Durability(
            path=checkpoint_path or checkpoint.new_path(root),
            save=checkpoint.save,
            fingerprint=lambda: fingerprint.take(root, config_path),
        )
    if not uses_litellm:
        # A live model run re-enables it after the first call (backends.live), so that the
        # LiteLLM import in the background is not collected through.
        gc.freeze()
        gc.enable()
    sink = _sink(show_prompt, options.json_output, settings, options.verbose)
    executor = Executor(workflow, root, backends, sink, durability)
    if state is None:
        assert task is not None
        state = executor.new_state(task)
    executor.run(state, resumed_from=str(checkpoint_path) if checkpoint_path else None)
    if durability is not None:
        durability.path.unlink(missing_ok=True)
