"""Wire one `aethr run`: find and load the workflow, read settings, pick the task,
check a checkpoint before resuming, choose a renderer, and call the executor.

The project root is the folder holding the workflow file; context never reads
above it, and checkpoints are keyed by it.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
from pathlib import Path
from typing import NamedTuple

from aethr import checkpoint, effective, isolation, sensitive, session
from aethr import params as params_mod
from aethr import settings as settings_mod
from aethr.backends.router import Backends
from aethr.errors import AethrError, InternalError, Interrupted, OutputClosed, UsageError
from aethr.events import AfterStart, Event, EventSink, Notice, Usage
from aethr.executor import Executor
from aethr.report import Report, ReportOptions
from aethr.run import budget
from aethr.schema import ModelEntry, Param, Workflow
from aethr.settings import Settings
from aethr.statusline import for_renderer, on_tty, with_progress


class RunOptions(NamedTuple):
    """What `aethr run` was asked to do, from its command line."""

    task: str | None = None
    config: Path | None = None
    show_prompt: bool = False
    json_output: bool = False
    resume: str | None = None
    force_resume: bool = False
    verbose: bool = False
    exec_commands: bool = False
    estimate: bool = False
    max_cost: float | None = None
    fail_on_revise: bool = False  # a final `revise` verdict exits 5
    context: tuple[str, ...] = ()  # --context: sources added to every model and agent step
    preset: str | None = None  # --preset: a built-in workflow instead of the file
    params: tuple[str, ...] = ()  # -p NAME=VALUE
    save_workflow: Path | None = None  # --save-workflow: promote the run to a workflow file
    force: bool = False  # --force: --save-workflow may replace a file
    isolation: isolation.Asked = isolation.Asked()  # --isolate, --apply, --branch, --allow-shared-tree
    report: ReportOptions = ReportOptions()  # --output, the step summary


_TASK_TEMPLATE = "\n# Write the task above. Lines starting with '#' are ignored; an empty task aborts.\n"


def ask_task(settings: Settings) -> str:
    """Open the user's editor on a temporary file and return what they wrote.
    Raises UsageError with no terminal, no editor, or an empty task."""
    if not sys.stdin.isatty() or settings.unattended:
        why = " (CI is set: aethr never waits for a person there)" if settings.unattended else ""
        raise UsageError(f"no task given{why}", hint='pass it as an argument: aethr run "what to do"')
    import shlex
    import subprocess
    import tempfile

    editor = settings.editor or "vi"
    with tempfile.TemporaryDirectory(prefix="aethr-task-") as folder:
        path = Path(folder) / "TASK.md"
        path.write_text(_TASK_TEMPLATE, encoding="utf-8")
        try:
            child = subprocess.Popen([*shlex.split(editor), str(path)])
        except OSError as exc:
            raise UsageError(
                f"cannot start the editor {editor!r}: {exc.strerror or exc}",
                hint="set AETHR_EDITOR or EDITOR, or pass the task as an argument",
            ) from None
        try:
            code = child.wait()
        except KeyboardInterrupt:
            # A SIGTERM reaches aethr alone (Ctrl-C reaches the editor too): end the editor as well.
            child.terminate()
            child.wait()
            raise
        if code != 0:
            raise UsageError(f"the editor {editor!r} exited with status {code}; nothing was run")
        text = path.read_text(encoding="utf-8", errors="replace")
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    task = "\n".join(lines).strip()
    if not task:
        raise UsageError("the task is empty: nothing to do")
    return task


def _sink(options: RunOptions, settings: Settings) -> EventSink:
    from aethr import render

    sink: EventSink
    if options.json_output:
        sink = render.JsonRenderer(sys.stdout)
    elif options.estimate:
        sink = render.EstimateRenderer(sys.stdout)
    elif options.show_prompt:
        sink = render.PreviewRenderer(sys.stdout)
    else:
        color = sys.stdout.isatty() and not settings.no_color and not settings.unattended
        renderer = render.TerminalRenderer(sys.stdout, sys.stderr, color=color, verbose=options.verbose)
        sink = for_renderer(renderer, sys.stderr, settings, on_tty=on_tty(settings))
    return render.QuietOnClosedOutput(sink)


def run_command(options: RunOptions) -> None:
    """Run (or resume, or preview) the workflow, then report how it ended (`report`), whatever
    the ending. Raises AethrError subclasses."""
    report = Report(options.report, os.environ)
    try:
        _run(options, report)
    except OutputClosed:
        raise
    except AethrError as exc:
        if exc.checkpoint:
            from aethr import resume

            exc.resume = resume.command_line(
                exc.checkpoint,
                config=options.config,
                preset=options.preset,
                context=options.context,
                exec_commands=options.exec_commands,
                max_cost=options.max_cost,
                fail_on_revise=options.fail_on_revise,
            )
        report.close(int(exc.exit_code), exc)
        raise
    except KeyboardInterrupt:
        report.close(int(Interrupted.exit_code), Interrupted("interrupted"))
        raise
    except Exception as exc:
        report.close(int(InternalError.exit_code), InternalError(f"{type(exc).__name__}: {exc}"))
        raise
    report.close(0, None)


def _run(options: RunOptions, report: Report) -> None:
    if options.max_cost is not None and not 0 < options.max_cost < float("inf"):
        raise UsageError(f"--max-cost {options.max_cost:g}: a spend cap is a positive number of USD")
    given = effective.source(Path.cwd(), options.config, options.preset)
    config_path, root = given.config_path, given.project.root
    workflow = effective.with_context(given.workflow, options.context)
    settings = _settings(given.project.dotenv, workflow, options)
    show_prompt = options.show_prompt or options.estimate  # an estimate is a preview, shown as a table
    if show_prompt and options.resume:
        raise UsageError("--show-prompt and --estimate do not go together with --resume-checkpoint")
    task = options.task
    state, checkpoint_path, settings = _resumed(options, workflow, root, given.label, settings)
    values = _values(options, workflow, root, settings, state)
    if _promoted_early(options, workflow, values, settings, state):
        return
    raw, raw_digest = workflow, workflow.digest()  # of the file (and --context), before substitution
    workflow = effective.with_values(workflow, values)
    uses_litellm = settings.live and not show_prompt and any(s.kind == "model" for s in workflow.steps)
    if uses_litellm:
        from aethr.backends.live import preload

        preload()  # overlaps the seconds-long litellm import with the work below
    backends = Backends(workflow, settings, root, preview=show_prompt)
    backends.preflight()  # setup errors (keys, tools, AETHR_MOCK_RESPONSES) before any checkpoint
    isolated = isolation.decide(options.isolation, workflow, state, root)
    caps = [c for c in (options.max_cost, settings.max_cost, workflow.max_cost) if c is not None]
    cap = min(caps) if caps else None  # the lowest cap wins
    if cap is not None and not show_prompt:
        budget.check(cap, backends, state.spent if state is not None else Usage())
    task = _task(task, settings) if state is None else task
    if not uses_litellm:
        # A live model run re-enables it after the first call (backends.live), so that the
        # LiteLLM import in the background is not collected through.
        gc.freeze()
        gc.enable()
    sink: EventSink = report.wrap(_sink(options, settings))
    if not show_prompt:
        sink = with_progress(sink, settings, json=options.json_output, cap=cap)
    if show_prompt:
        from aethr import estimate

        sink = estimate.Estimating(sink, workflow, backends, {})
    leave_out = config_path.resolve().relative_to(root).as_posix()
    if show_prompt:
        assert task is not None
        sink = AfterStart(sink, _preview_notes(values, isolated))
        executor = Executor(workflow, root, backends, sink, None, config_file=leave_out)
        preview = executor.run(executor.new_state(task))
        if options.save_workflow is not None:
            _promote(options, raw, values, settings, preview.task, settings.model_override)
        return
    state = state or _new_state(task, workflow.workflow, raw_digest, settings, values)
    where = session.where(root, config_path, isolated, backends, options.isolation, sink)
    make = functools.partial(Executor, workflow, backends=backends, sink=sink, config_file=leave_out, cap=cap)
    session.run(make, workflow, state, where, checkpoint_path, options.force_resume, report)
    if options.save_workflow is not None:
        _promote(options, raw, values, settings, state.task, state.model_override)
    if options.fail_on_revise:
        report.gate()


def _new_state(
    task: str | None, workflow: str, digest: str, settings: Settings, values: dict[str, params_mod.Value]
) -> checkpoint.RunState:
    """A new run's state: its task, the workflow's digest before substitution, mode and values."""
    assert task is not None
    kept = {name: v.text for name, v in values.items()}
    return checkpoint.RunState(task, workflow, digest, settings.mode, settings.model_override, params=kept)


def _settings(dotenv: Path, workflow: Workflow, options: RunOptions) -> Settings:
    """The run's settings, and its one secret set (the roles' `api_key_env` values included)
    handed to the secret policy, for the run's whole length."""
    names = (e.api_key_env for e in workflow.models.values() if isinstance(e, ModelEntry))
    keys = tuple(name for name in names if name and name != "none")
    settings = settings_mod.load(dotenv, keys)._replace(exec_commands=options.exec_commands)
    sensitive.use(settings.secrets)
    return settings


def _task(task: str | None, settings: Settings) -> str:
    """The task of a new run: the argument, or written in the editor."""
    if task is None:
        return ask_task(settings)
    if not task.strip():
        raise UsageError("the task is empty: nothing to do")
    return task


def _resumed(
    options: RunOptions, workflow: Workflow, root: Path, label: str, settings: Settings
) -> tuple[checkpoint.RunState | None, Path | None, Settings]:
    """With --resume-checkpoint: the checkpoint, checked against this workflow, and the mode it ran in."""
    if not options.resume:
        return None, None, settings
    from aethr import resume

    path = resume.resolve(options.resume, root)
    state = checkpoint.load(path)
    resume.check(state, workflow, options.task, label)
    return state, path, resume.settle_mode(state, settings)


def _promoted_early(
    options: RunOptions,
    workflow: Workflow,
    values: dict[str, params_mod.Value],
    settings: Settings,
    state: checkpoint.RunState | None,
) -> bool:
    """--save-workflow: the target checked before anything runs; a failed run is promoted from
    its checkpoint, without running (True). Imported only when asked for, like the estimate."""
    if options.save_workflow is None:
        return False
    from aethr import promote

    promote.check_target(options.save_workflow, options.force)
    if state is not None:
        _promote(options, workflow, values, settings, state.task, state.model_override)
    return state is not None


def _promote(
    options: RunOptions,
    workflow: Workflow,
    values: dict[str, params_mod.Value],
    settings: Settings,
    task: str,
    model_override: str | None,
) -> None:
    """--save-workflow: the run's effective workflow, as an editable file."""
    assert options.save_workflow is not None
    caps = [c for c in (options.max_cost, settings.max_cost) if c is not None]
    from aethr import promote

    data = promote.effective(workflow, values, model_override, min(caps) if caps else None)
    promote.save(options.save_workflow, data, task, options.force)
    sys.stderr.write(f"aethr: saved this run's workflow to {options.save_workflow}\n")


def _values(
    options: RunOptions, workflow: Workflow, root: Path, settings: Settings, state: checkpoint.RunState | None
) -> dict[str, params_mod.Value]:
    """The parameter values: a resume replays the checkpoint's; otherwise -p, defaults, and on
    a terminal (never with CI set) a question for a missing required one."""
    if state is not None:
        if options.params:
            raise UsageError("-p does not go with --resume-checkpoint: a resume replays the run's own values")
        return {name: params_mod.Value(text, "checkpoint") for name, text in state.params.items()}
    ask = _ask if sys.stdin.isatty() and not settings.unattended else None
    return params_mod.resolve(workflow.params, list(options.params), root, ask)


def _preview_notes(values: dict[str, params_mod.Value], isolated: bool) -> list[Event]:
    """A preview says which values it used, and where each came from (and that it would isolate)."""
    notes: list[Event] = [Notice("", isolation.PREVIEW)] if isolated else []
    if values:
        listed = ", ".join(f"{name}={value.text!r} ({value.source})" for name, value in values.items())
        notes.append(Notice("", f"params: {listed}"))
    return notes


def _ask(name: str, param: Param, wrong: str | None) -> str:
    """One question on the terminal; `wrong`: what was wrong with the last answer."""
    if wrong:
        sys.stderr.write(f"aethr: {name}: {wrong}; try again\n")
    kind = f"one of {', '.join(param.choices or [])}" if param.type == "choice" else param.type
    about = f" ({kind}{f': {param.description}' if param.description else ''})"
    sys.stderr.write(f"aethr: parameter {name}{about}: ")
    sys.stderr.flush()
    return sys.stdin.readline().strip()
