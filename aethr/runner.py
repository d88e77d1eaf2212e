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

from aethr import checkpoint, editor, effective, isolation, runstore, sensitive, session
from aethr import params as params_mod
from aethr import settings as settings_mod
from aethr.backends.router import Backends
from aethr.errors import AethrError, InternalError, Interrupted, OutputClosed, UsageError
from aethr.events import AfterStart, Event, EventSink, Notice
from aethr.executor import Executor, header
from aethr.report import Report, ReportOptions
from aethr.run import budget
from aethr.schema import ModelEntry, Param, Workflow
from aethr.settings import Settings
from aethr.statusline import for_renderer, on_tty, with_progress
from aethr.usage import Usage


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
    the ending. Raises AethrError subclasses; a closed stdout is OutputClosed."""
    try:
        _reported(options)
    except BrokenPipeError:
        raise OutputClosed from None  # not an OSError, so Typer does not turn it into exit 1


def _reported(options: RunOptions) -> None:
    report = Report(options.report, os.environ)
    try:
        _run(options, report)
    except OutputClosed:
        raise
    except AethrError as exc:
        if exc.checkpoint:
            from aethr import resume

            exc.resume = resume.command_line(exc.checkpoint, options)
        report.close(int(exc.exit_code), exc)
        raise
    except KeyboardInterrupt:
        report.close(int(Interrupted.exit_code), Interrupted("interrupted"))
        raise
    except Exception as exc:
        report.close(int(InternalError.exit_code), InternalError(f"{type(exc).__name__}: {exc}"))
        raise
    report.close(0, None)


class _Inputs(NamedTuple):
    """What a run is given, read and checked before anything runs."""

    source: effective.Source
    workflow: Workflow  # the file or preset with --context, before values: its digest is the checkpoint's
    settings: Settings
    state: checkpoint.RunState | None  # the checkpoint's state, on a resume
    resumed: Path | None  # the checkpoint's path, on a resume
    values: dict[str, params_mod.Value]


def _inputs(options: RunOptions) -> _Inputs:
    """The workflow, settings, checkpoint and parameter values of the run. Raises AethrError."""
    if options.max_cost is not None and not 0 < options.max_cost < float("inf"):
        raise UsageError(f"--max-cost {options.max_cost:g}: a spend cap is a positive number of USD")
    given = effective.source(Path.cwd(), options.config, options.preset)
    workflow = effective.with_context(given.workflow, options.context)
    settings = _settings(given.project.dotenv, workflow, options)
    if (options.show_prompt or options.estimate) and options.resume:
        raise UsageError("--show-prompt and --estimate do not go together with --resume-checkpoint")
    state, resumed, settings = _resumed(options, workflow, given.project.root, given.label, settings)
    values = _values(options, workflow, given.project.root, settings, state)
    return _Inputs(given, workflow, settings, state, resumed, values)


def _run(options: RunOptions, report: Report) -> None:
    got = _inputs(options)
    settings, state, values, root = got.settings, got.state, got.values, got.source.project.root
    if _promoted_early(options, got.workflow, values, settings, state):
        return
    show_prompt = options.show_prompt or options.estimate  # an estimate is a preview, shown as a table
    workflow = effective.with_values(got.workflow, values)
    uses_litellm = settings.live and not show_prompt and any(s.kind == "model" for s in workflow.steps)
    if uses_litellm:
        from aethr.backends.live import preload

        preload()  # overlaps the seconds-long litellm import with the work below
    backends = Backends(workflow, settings, root, preview=show_prompt)
    backends.preflight()  # setup errors (tools, AETHR_MOCK_RESPONSES, …) before the header and any checkpoint
    isolated = isolation.decide(options.isolation, workflow, state, root)
    caps = [c for c in (options.max_cost, settings.max_cost, workflow.max_cost) if c is not None]
    cap = min(caps) if caps else None  # the lowest cap wins
    if cap is not None and not show_prompt:
        budget.check(cap, backends, state.spent if state is not None else Usage())
    task = editor.task_of(options.task, settings) if state is None else options.task
    if not uses_litellm:
        # A live model run re-enables it after the first call (backends.live), so that the
        # LiteLLM import in the background is not collected through.
        gc.freeze()
        gc.enable()
    sink: EventSink = report.wrap(_sink(options, settings))
    leave_out = got.source.config_path.resolve().relative_to(root).as_posix()
    if show_prompt:
        assert task is not None
        shown = AfterStart(_estimating(sink, workflow, backends), _preview_notes(values, isolated))
        _preview(options, got, Executor(workflow, root, backends, shown, None, config_file=leave_out), task)
        return
    sink = with_progress(sink, settings, json=options.json_output, cap=cap)
    state = state or _new_state(task, workflow.workflow, got.workflow.digest(), settings, values)
    path = got.resumed or runstore.new_path(root)
    # The first line at once: the header goes out before the LiteLLM import is waited for, the
    # worktree is made and the tree is listed. Keys are checked after it, before any checkpoint.
    sink.emit(header(workflow, backends, state.task, path, str(got.resumed) if got.resumed else None))
    backends.check_keys()
    where = session.where(root, got.source.config_path, isolated, backends, options.isolation, sink)
    make = functools.partial(
        Executor, workflow, backends=backends, sink=sink, config_file=leave_out, cap=cap, announced=True
    )
    session.run(make, workflow, state, where, path, got.resumed, options.force_resume, report)
    if options.save_workflow is not None:
        _promote(options, got.workflow, values, settings, state.task, state.model_override)
    if options.fail_on_revise:
        report.gate()


def _estimating(sink: EventSink, workflow: Workflow, backends: Backends) -> EventSink:
    """A preview's sink: with --estimate, each step's cost is added as its prompt is shown."""
    from aethr import estimate

    return estimate.Estimating(sink, workflow, backends, {})


def _preview(options: RunOptions, got: _Inputs, executor: Executor, task: str) -> None:
    """--show-prompt and --estimate: every step's prompt (and cost) shown; nothing is called."""
    preview = executor.run(executor.new_state(task))
    if options.save_workflow is not None:
        _promote(options, got.workflow, got.values, got.settings, preview.task, got.settings.model_override)


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
