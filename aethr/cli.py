"""The `aethr` commands: build objects and call the executor.

`boundary.main()` runs them and is the one place that turns errors into
messages and exit codes. Imported only by the boundary.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from aethr import CONFIG_NAME, __version__
from aethr.cli_isolate import AllowSharedOpt, ApplyOpt, BranchOpt, IsolateOpt
from aethr.cli_options import (
    EPILOG,
    ConfigOpt,
    ContextOpt,
    DiffRangeOpt,
    EstimateOpt,
    ExecCommandsOpt,
    FailOnReviseOpt,
    ForceResumeOpt,
    ForceSaveOpt,
    JsonOpt,
    MaxCostOpt,
    OutputFormat,
    OutputFormatOpt,
    OutputOpt,
    ParamOpt,
    PresetOpt,
    ResumeOpt,
    ReviewOpt,
    SaveOpt,
    ShowPromptOpt,
    SummaryOpt,
    TaskArg,
    VerboseOpt,
    run_options,
)
from aethr.errors import AethrError, UsageError

app = typer.Typer(
    name="aethr",
    help="Run explicit AI coding workflows written in YAML.",
    epilog=EPILOG,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
auth_app = typer.Typer(help="Store and check provider API keys in the project .env.", no_args_is_help=True)
app.add_typer(auth_app, name="auth")


class Flags:
    """What the boundary needs to know of the command line once a command has parsed it."""

    verbose = False
    json_output = False  # `run --json`: a failure is also a `run_failed` event on stdout


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"aethr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and checkpoint JSON.")] = False,
) -> None:
    _set_verbose(verbose)


def _set_verbose(value: bool) -> None:
    Flags.verbose = Flags.verbose or value


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"aethr {__version__}")


@app.command()
def init(
    preset: Annotated[str | None, typer.Argument(help="The preset to copy (see --list).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing .aethr.yaml.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the presets and exit.")] = False,
    schema: Annotated[
        bool,
        typer.Option("--schema", help="Also write .aethr.schema.json beside it, for editor completion."),
    ] = False,
) -> None:
    """Copy a preset workflow into ./.aethr.yaml."""
    from aethr import presets

    available = presets.all_presets()
    if list_:
        width = max(len(p.name) for p in available)
        for p in available:
            typer.echo(f"{p.name:<{width}}  {p.description}")
        return
    target = Path.cwd() / CONFIG_NAME
    if preset is None:
        names = ", ".join(p.name for p in available)
        if not sys.stdin.isatty():
            raise UsageError("no preset given", hint=f"run `aethr init PRESET` with one of: {names}")
        if target.exists() and not force:
            presets.write(available[0], target, force=False)  # raises the refusal before asking
        for number, p in enumerate(available, 1):
            typer.echo(f"  {number}. {p.name:<22} {p.description}")
        choice = typer.prompt("Preset number", type=int)
        if not 1 <= choice <= len(available):
            raise UsageError(f"{choice} is not a preset number (1 to {len(available)})")
        chosen = available[choice - 1]
    else:
        chosen = presets.get(preset)
    presets.write(chosen, target, force=force, schema=schema)
    typer.echo(f"Wrote {CONFIG_NAME} from preset '{chosen.name}'. Next: aethr run \"<your task>\"")


@app.command()
def validate(config: ConfigOpt = None, param: ParamOpt = None, verbose: VerboseOpt = False) -> None:
    """Check the workflow file without running anything; list its parameters' values."""
    _set_verbose(verbose)
    from aethr.config import load
    from aethr.params import resolve
    from aethr.project import require_config
    from aethr.rules import unused_params

    found = require_config(Path.cwd(), config)
    assert found.config is not None
    wf = load(found.config)
    values = resolve(wf.params, list(param or ()), found.root, None, missing_ok=True)
    from aethr import structured
    from aethr.effective import with_values

    shaped = with_values(wf, values) if any(s.output for s in wf.steps) else wf
    for step in shaped.steps:  # an output schema is read and checked against the meta-schema
        structured.resolve(step, found.root, None)
    loops = sum(1 for s in wf.steps if s.repeat)
    typer.echo(
        f"{found.config}: ok · workflow {wf.workflow} · {len(wf.steps)} step(s) · {len(wf.roles)} role(s)"
        + (f" · {loops} loop(s)" if loops else "")
    )
    for name, declared in wf.params.items():
        value = f"{values[name].text!r} ({values[name].source})" if name in values else "(required: give -p)"
        typer.echo(
            f"  param {name} = {value} · {declared.type}{f' · {declared.description}' if declared.description else ''}"
        )
    for name in unused_params(wf):
        typer.echo(f"aethr: warning: parameter '{name}' is declared but never used", err=True)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the workflow file."""
    import json

    from aethr.schema import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command(epilog=EPILOG)
def run(
    task: TaskArg = None,
    config: ConfigOpt = None,
    show_prompt: ShowPromptOpt = False,
    json_: JsonOpt = False,
    estimate: EstimateOpt = False,
    max_cost: MaxCostOpt = None,
    resume_checkpoint: ResumeOpt = None,
    force_resume: ForceResumeOpt = False,
    exec_commands: ExecCommandsOpt = False,
    preset: PresetOpt = None,
    context: ContextOpt = None,
    param: ParamOpt = None,
    save_workflow: SaveOpt = None,
    force: ForceSaveOpt = False,
    fail_on_revise: FailOnReviseOpt = False,
    output: OutputOpt = None,
    output_format: OutputFormatOpt = OutputFormat.md,
    diff_range: DiffRangeOpt = None,
    review_output: ReviewOpt = None,
    summary_include_output: SummaryOpt = False,
    isolate: IsolateOpt = None,
    apply: ApplyOpt = False,
    branch: BranchOpt = None,
    allow_shared_tree: AllowSharedOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run the workflow on a task."""
    _set_verbose(verbose)
    Flags.json_output = json_
    from aethr import runner

    options = run_options({**locals(), "verbose": Flags.verbose})
    runner.run_command(options)


@app.command()
def checkpoints(
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove every kept checkpoint no running run holds, with its worktree.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """List this project's kept checkpoints, newest first (or prune them)."""
    from aethr import checkpoint, project, runstore

    root = project.find(Path.cwd(), config).root
    if prune:
        from aethr.isolation import prune_message

        typer.echo(prune_message(root, runstore.prune(root)))
        return
    from aethr.isolation import stray_trees

    kept = runstore.kept(root)
    if not kept:
        typer.echo(f"No checkpoints of {root}.")
    for item in kept:
        tree = ""
        try:
            state = checkpoint.load(item.path)
            where = f"after '{state.results[-1].step_id}'" if state.results else "before the first step"
            about = f"{state.mode:<4}  {where:<28}  {' '.join(state.task.split())[:50]}"
            tree = f"\n          worktree {state.worktree['path']}" if state.worktree else ""
        except AethrError:
            about = "unreadable (garbled or from another version)"
        running = "  (running)" if item.running else ""
        typer.echo(f"{_age(item.age_seconds):>8}  {about}{running}\n          {item.path}{tree}")
    for stray in stray_trees(root):
        typer.echo(f"{'':>8}  worktree of a run that ended before its first checkpoint\n          {stray}")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


@auth_app.command("login")
def auth_login(
    provider: Annotated[str, typer.Argument(help="openai, anthropic, google (gemini), openrouter or xai.")],
    key: Annotated[str | None, typer.Option("--key", help="The key (default: asked for, hidden).")] = None,
) -> None:
    """Store a provider key in the project .env (mode 0600, git-ignored)."""
    from aethr import auth

    auth.login(provider, key, Path.cwd())


@auth_app.command("status")
def auth_status() -> None:
    """Show which provider keys are set, and where from."""
    from aethr import auth

    auth.status(Path.cwd())
