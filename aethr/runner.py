"""Wire one `aethr run`: find and load the workflow, read settings, pick the task,
check a checkpoint before resuming, choose a renderer, and call the executor.

The project root is the folder holding the workflow file; context never reads
above it, and checkpoints are keyed by it.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from aethr import checkpoint, git
from aethr import settings as settings_mod
from aethr.backends import Backends
from aethr.config import Workflow, find_config
from aethr.config import load as load_workflow
from aethr.errors import CheckpointError, EnvironmentNotReady, UsageError
from aethr.events import EventSink
from aethr.executor import Durability, Executor
from aethr.settings import Settings

_TASK_TEMPLATE = "\n# Write the task above. Lines starting with '#' are ignored; an empty task aborts.\n"


def fingerprint(root: Path, config_path: Path) -> str | None:
    """HEAD plus a tree of the working tree (untracked files included, the workflow file
    left out because its digest is checked on its own). None outside git."""
    try:
        if git.toplevel(root) is None:
            return None
        tree = git.snapshot(root, exclude=[config_path.resolve().relative_to(root.resolve()).as_posix()])
        return f"head:{git.head(root) or 'none'} tree:{tree}"
    except (git.GitError, ValueError):
        return None


def _describe_change(root: Path, old: str, new: str) -> str:
    old_head, old_tree = (part.split(":", 1)[1] for part in old.split())
    new_head, new_tree = (part.split(":", 1)[1] for part in new.split())
    what = []
    if old_head != new_head:
        what.append(f"HEAD moved from {old_head[:10]} to {new_head[:10]}")
    if old_tree != new_tree:
        try:
            files = git.changed_files(root, old_tree, new_tree)
            shown = ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
            what.append(f"files changed: {shown}" if files else "the working tree changed")
        except git.GitError:
            what.append("the working tree changed")
    return "; ".join(what)


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
    now = fingerprint(root, config)
    if state.fingerprint and now and now != state.fingerprint and not force:
        raise EnvironmentNotReady(
            f"the repository changed since the checkpoint: {_describe_change(root, state.fingerprint, now)}",
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


def run_command(
    *,
    task: str | None,
    config: Path | None,
    show_prompt: bool,
    json_output: bool,
    resume: str | None,
    force_resume: bool,
    verbose: bool,
) -> None:
    config_path = find_config(config)
    workflow = load_workflow(config_path)
    root = config_path.parent.resolve()
    settings = settings_mod.load(Path.cwd())
    uses_litellm = settings.live and not show_prompt and any(s.backend == "model" for s in workflow.steps)
    if uses_litellm:
        from aethr.backends.live import preload

        preload()  # overlaps the seconds-long litellm import with the work below
    if show_prompt and resume:
        raise UsageError("--show-prompt and --resume-checkpoint do not go together")

    state = None
    checkpoint_path = None
    if resume:
        checkpoint_path = resolve_checkpoint(resume, root)
        state = checkpoint.load(checkpoint_path)
        check_resume(state, workflow, task, root, config_path, force_resume)
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
            fingerprint=lambda: fingerprint(root, config_path),
        )
    if not uses_litellm:
        # A live model run re-enables it after the first call (backends.live), so that the
        # LiteLLM import in the background is not collected through.
        gc.freeze()
        gc.enable()
    executor = Executor(workflow, root, backends, _sink(show_prompt, json_output, settings, verbose), durability)
    if state is None:
        assert task is not None
        state = executor.new_state(task)
    executor.run(state, resumed_from=str(checkpoint_path) if checkpoint_path else None)
    if durability is not None:
        durability.path.unlink(missing_ok=True)
