"""The `aethr` commands: build objects and call the executor.

`boundary.main()` runs them and is the one place that turns errors into
messages and exit codes. Imported only by the boundary.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from aethr import CONFIG_NAME, __version__
from aethr.cli_isolate import AllowSharedOpt, ApplyOpt, BranchOpt, IsolateOpt
from aethr.errors import AethrError, OutputClosed, UsageError

_EPILOG = """\b
Modes: unless AETHR_LIVE=1 or AETHR_MODEL is set, a run is a mock run
(deterministic replies: no model is called, no agent starts, no run: step
runs unless --exec-commands). AETHR_LIVE=1 calls the models the workflow
names; AETHR_MODEL=provider:model calls that one model for every step.
run --show-prompt prints every prompt, --estimate what each step will cost;
neither calls anything.

\b
Environment: AETHR_LIVE, AETHR_MODEL, AETHR_TIMEOUT (a whole call),
AETHR_FIRST_BYTE_TIMEOUT (until a model's first chunk), AETHR_IDLE_TIMEOUT
(a silent stream), AETHR_MAX_COST, AETHR_MOCK_RESPONSES, AETHR_<AGENT>_BIN,
AETHR_EDITOR, NO_COLOR, CI (never ask, no colours), GITHUB_ACTIONS (::error
lines), GITHUB_STEP_SUMMARY (append a summary), provider keys
(OPENAI_API_KEY, ...) and base URLs (OPENAI_API_BASE, ...); the project's
.env is read too.

\b
Exit codes: 0 success, 1 a step failed, 2 usage, 3 invalid workflow or
checkpoint, 4 environment not ready, 5 a loop ran out of passes (or, with
--fail-on-revise, the final review says revise or gives no verdict), 6 the
spend cap was reached,
70 internal error (a bug), 130 interrupted. Under --json the last line is
always `run_finished`, with the exit code, status and verdict.
"""


class OutputFormat(StrEnum):
    md = "md"
    json = "json"
    github_review = "github-review"
    sarif = "sarif"


ContextOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--context", metavar="SOURCE", help="Add a context source to every model and agent step (repeatable)."
    ),
]
EstimateOpt = Annotated[
    bool, typer.Option("--estimate", help="Print what each step will cost (tokens, USD); call nothing.")
]
MaxCostOpt = Annotated[
    float | None, typer.Option("--max-cost", metavar="USD", help="Stop the run at this spend in USD (exit 6).")
]
ResumeOpt = Annotated[
    str | None, typer.Option("--resume-checkpoint", help="Continue a failed run: a checkpoint path, @PATH, or 'last'.")
]
ForceResumeOpt = Annotated[
    bool, typer.Option("--force-resume", help="Resume even if the repository changed since the checkpoint.")
]
ExecCommandsOpt = Annotated[
    bool, typer.Option("--exec-commands", help="In a mock run, run the workflow's run: steps for real.")
]
PresetOpt = Annotated[
    str | None, typer.Option("--preset", help="Run a built-in preset; writes no file (`aethr init --list`).")
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", metavar="NAME=VALUE", help="A workflow parameter, NAME=VALUE (repeatable)."),
]
SaveOpt = Annotated[
    Path | None, typer.Option("--save-workflow", help="Once the run finishes, save its workflow here (promotion).")
]
FailOnReviseOpt = Annotated[
    bool, typer.Option("--fail-on-revise", help="Exit 5 unless the final review says pass (a CI gate).")
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", help="Write the final text and verdict here, even on failure.")
]
OutputFormatOpt = Annotated[OutputFormat, typer.Option("--output-format", help="The --output file's format.")]
DiffRangeOpt = Annotated[
    str | None, typer.Option("--diff-range", metavar="RANGE", help="The pull request's diff, for github-review.")
]
ReviewOpt = Annotated[Path | None, typer.Option("--review-output", help="Also write the github-review JSON here.")]
SummaryOpt = Annotated[
    bool, typer.Option("--summary-include-output", help="Put model text in $GITHUB_STEP_SUMMARY too.")
]

app = typer.Typer(
    name="aethr",
    help="Run explicit AI coding workflows written in YAML.",
    epilog=_EPILOG,
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


VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and checkpoint JSON.")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="The workflow file (default: .aethr.yaml here or above)."),
]


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


@app.command(epilog=_EPILOG)
def run(
    task: Annotated[str | None, typer.Argument(help="What to do. Omit it to write it in your editor.")] = None,
    config: ConfigOpt = None,
    show_prompt: Annotated[
        bool, typer.Option("--show-prompt", help="Print every step's prompt; call no model.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="One JSON event per line on stdout.")] = False,
    estimate: EstimateOpt = False,
    max_cost: MaxCostOpt = None,
    resume_checkpoint: ResumeOpt = None,
    force_resume: ForceResumeOpt = False,
    exec_commands: ExecCommandsOpt = False,
    preset: PresetOpt = None,
    context: ContextOpt = None,
    param: ParamOpt = None,
    save_workflow: SaveOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Let --save-workflow replace a file.")] = False,
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
    from aethr import isolation, runner
    from aethr.report import ReportOptions

    options = runner.RunOptions(
        task=task,
        config=config,
        show_prompt=show_prompt,
        json_output=json_,
        resume=resume_checkpoint,
        force_resume=force_resume,
        verbose=Flags.verbose,
        exec_commands=exec_commands,
        estimate=estimate,
        max_cost=max_cost,
        fail_on_revise=fail_on_revise,
        context=tuple(context or ()),
        preset=preset,
        params=tuple(param or ()),
        save_workflow=save_workflow,
        force=force,
        report=ReportOptions(json_, output, output_format.value, summary_include_output, diff_range, review_output),
        isolation=isolation.Asked(isolate, apply, branch, allow_shared_tree),
    )
    try:
        runner.run_command(options)
    except BrokenPipeError:
        raise OutputClosed from None  # not an OSError, so Typer does not turn it into exit 1


@app.command()
def checkpoints(
    prune: Annotated[bool, typer.Option("--prune", help="Remove every kept checkpoint no running run holds.")] = False,
    config: ConfigOpt = None,
) -> None:
    """List this project's kept checkpoints, newest first (or prune them)."""
    from aethr import checkpoint, project, runstore

    root = project.find(Path.cwd(), config).root
    if prune:
        from aethr.isolation import prune_message

        typer.echo(prune_message(root, runstore.prune(root)))
        return
    kept = runstore.kept(root)
    if not kept:
        typer.echo(f"No checkpoints of {root}.")
        return
    for item in kept:
        try:
            state = checkpoint.load(item.path)
            where = f"after '{state.results[-1].step_id}'" if state.results else "before the first step"
            about = f"{state.mode:<4}  {where:<28}  {' '.join(state.task.split())[:50]}"
        except AethrError:
            about = "unreadable (garbled or from another version)"
        running = "  (running)" if item.running else ""
        typer.echo(f"{_age(item.age_seconds):>8}  {about}{running}\n          {item.path}")


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
