"""The `aethr` command line: build objects, call the executor, map errors to exit codes.

`main()` is the one error boundary: an AethrError becomes one message on stderr
and its exit code; anything else is reported as a bug. Tracebacks only with
`--verbose`. Imported by nothing.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer

from aethr import CONFIG_NAME, __version__
from aethr.errors import AethrError, ExitCode, InternalError, OutputClosed, UsageError

app = typer.Typer(
    name="aethr",
    help="Run explicit AI coding workflows written in YAML.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
auth_app = typer.Typer(help="Store and check provider API keys in the project .env.", no_args_is_help=True)
app.add_typer(auth_app, name="auth")

_verbose = False
_json_output = False  # `run --json`: a failure is also a `run_failed` event on stdout


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
    global _verbose
    _verbose = _verbose or value


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"aethr {__version__}")


@app.command()
def init(
    preset: Annotated[str | None, typer.Argument(help="The preset to copy (see --list).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing .aethr.yaml.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the presets and exit.")] = False,
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
    presets.write(chosen, target, force=force)
    typer.echo(f"Wrote {CONFIG_NAME} from preset '{chosen.name}'. Next: aethr run \"<your task>\"")


@app.command()
def validate(config: ConfigOpt = None, verbose: VerboseOpt = False) -> None:
    """Check the workflow file without running anything."""
    _set_verbose(verbose)
    from aethr.config import load
    from aethr.project import require_config

    path = require_config(Path.cwd(), config).config
    assert path is not None
    wf = load(path)
    loops = sum(1 for s in wf.steps if s.repeat)
    typer.echo(
        f"{path}: ok · workflow {wf.workflow} · {len(wf.steps)} step(s) · {len(wf.roles)} role(s)"
        + (f" · {loops} loop(s)" if loops else "")
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of the workflow file."""
    import json

    from aethr.config import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command()
def run(
    task: Annotated[str | None, typer.Argument(help="What to do. Omit it to write it in your editor.")] = None,
    config: ConfigOpt = None,
    show_prompt: Annotated[
        bool, typer.Option("--show-prompt", help="Print every step's prompt; call no model.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="One JSON event per line on stdout.")] = False,
    resume_checkpoint: Annotated[
        str | None,
        typer.Option("--resume-checkpoint", help="Continue a failed run: a checkpoint path, @PATH, or 'last'."),
    ] = None,
    force_resume: Annotated[
        bool,
        typer.Option("--force-resume", help="Resume even if the repository changed since the checkpoint."),
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run the workflow on a task."""
    global _json_output
    _set_verbose(verbose)
    _json_output = json_
    from aethr import runner

    options = runner.RunOptions(
        task=task,
        config=config,
        show_prompt=show_prompt,
        json_output=json_,
        resume=resume_checkpoint,
        force_resume=force_resume,
        verbose=_verbose,
    )
    try:
        runner.run_command(options)
    except BrokenPipeError:
        raise OutputClosed from None  # not an OSError, so Typer does not turn it into exit 1


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


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def _fail(code: int, lines: list[str]) -> NoReturn:
    sys.stdout.flush()
    for line in lines:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()
    raise SystemExit(code)


def _exit(code: int) -> NoReturn:
    """Flush and leave at once. Tearing down the interpreter after a live run (LiteLLM's
    millions of objects) costs up to a second and does nothing useful: every file aethr
    writes is already closed and fsynced, so the only buffers left are stdout and stderr."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _bug_lines(what: str, checkpoint: str | None) -> list[str]:
    lines = [
        f"aethr: internal error (this is a bug in aethr {__version__}): {what}",
        "  hint: rerun with --verbose for the traceback, and please report it",
    ]
    if checkpoint:
        lines.append(f"  resume: aethr run --resume-checkpoint {checkpoint}")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `aethr` script and `python -m aethr`."""
    gc.disable()  # already off when started through aethr.__main__.run; see there why
    try:
        try:
            _main(argv)
        except KeyboardInterrupt:  # a second Ctrl-C while the first one is being reported
            _fail(ExitCode.INTERRUPTED, ["aethr: interrupted"])
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        _exit(code)
    _exit(0)


def _report_json(exc: AethrError) -> None:
    """Under `run --json`, a failure the executor did not report still ends stdout with one
    `run_failed` event, so a reader of the stream always learns how the run ended."""
    if not _json_output or exc.reported:
        return
    import json

    event = {"event": "run_failed", "reason": exc.message, "exit_code": int(exc.exit_code), "hint": exc.hint}
    with contextlib.suppress(OSError):
        sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")


def _main(argv: list[str] | None) -> None:
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = app(args=argv, standalone_mode=False, prog_name="aethr")
        # Typer turns a KeyboardInterrupt outside a command's own handling into a returned 130.
        if code == ExitCode.INTERRUPTED:
            _fail(ExitCode.INTERRUPTED, ["aethr: interrupted"])
        if isinstance(code, int) and code:
            raise SystemExit(code)
    except InternalError as exc:
        if _verbose:
            traceback.print_exc()
        _report_json(exc)
        _fail(exc.exit_code, _bug_lines(exc.message, exc.checkpoint))
    except AethrError as exc:
        if _verbose:
            traceback.print_exc()
        _report_json(exc)
        lines = [f"aethr: error: {exc.message}"]
        if exc.hint:
            lines.append(f"  hint: {exc.hint}")
        if exc.checkpoint:
            lines.append(f"  resume: aethr run --resume-checkpoint {exc.checkpoint}")
            if _verbose:
                lines.append(Path(exc.checkpoint).read_text(encoding="utf-8"))
        _fail(int(exc.exit_code), lines)
    except typer.Abort:
        _fail(ExitCode.INTERRUPTED, ["aethr: aborted"])
    except KeyboardInterrupt:
        _fail(ExitCode.INTERRUPTED, ["aethr: interrupted"])
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.TyperException as exc:
        # Typer's usage errors (unknown option, missing argument) know how to show themselves.
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            sys.stderr.write(f"aethr: error: {exc.format_message()}\n")
        raise SystemExit(ExitCode.USAGE) from None
    except (OutputClosed, BrokenPipeError):
        # The reader went away (`aethr run … | head`): not an error worth a message.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(ExitCode.OK) from None
    except Exception as exc:  # the boundary: anything else is a bug in aethr
        if _verbose:
            traceback.print_exc()
        _fail(ExitCode.INTERNAL, _bug_lines(f"{type(exc).__name__}: {exc}", None))
    raise SystemExit(0)
