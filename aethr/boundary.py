"""The one error boundary: run a command, turn every ending into a message and an exit code.

An AethrError becomes one message on stderr with its exit code (`aethr run` reports
its own ending on stdout and in files first: `report`); an interrupt at any moment is
exit 130; a closed stdout is a quiet exit 0; anything else is reported as a bug
(exit 70). Tracebacks only with `--verbose`.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shlex
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType
from typing import NoReturn

import typer

from aethr import __version__
from aethr.cli import Flags, app
from aethr.errors import AethrError, ExitCode, InternalError, OutputClosed


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


def _bug_lines(what: str, exc: AethrError | None) -> list[str]:
    lines = [
        f"aethr: internal error (this is a bug in aethr {__version__}): {what}",
        "  hint: rerun with --verbose for the traceback, and please report it",
    ]
    return lines + _resume_lines(exc)


def _resume_lines(exc: AethrError | None) -> list[str]:
    """The command that resumes a run that left a checkpoint, to follow as printed."""
    if exc is None or not exc.checkpoint:
        return []
    return [f"  resume: {exc.resume or 'aethr run --resume-checkpoint ' + shlex.quote(exc.checkpoint)}"]


def _report_usage(argv: list[str], message: str) -> None:
    """A usage error Typer found before `aethr run` began still ends as every run does:
    `run_finished` under `--json`, `::error` under GitHub Actions, the step summary."""
    args = argv[: argv.index("--")] if "--" in argv else argv
    commands = [a for a in args if not a.startswith("-")]
    if not commands or commands[0] != "run":
        return
    from aethr.errors import UsageError
    from aethr.report import Report, ReportOptions

    Report(ReportOptions(json_output="--json" in args), os.environ).close(ExitCode.USAGE, UsageError(message))


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
        if Flags.verbose:
            traceback.print_exc()
        _fail(exc.exit_code, _bug_lines(exc.message, exc))
    except AethrError as exc:
        if Flags.verbose:
            traceback.print_exc()
        lines = [f"aethr: error: {exc.message}"]
        if exc.hint:
            lines.append(f"  hint: {exc.hint}")
        lines += _resume_lines(exc)
        if exc.checkpoint and Flags.verbose:
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
        _report_usage(sys.argv[1:] if argv is None else argv, exc.format_message())
        raise SystemExit(ExitCode.USAGE) from None
    except (OutputClosed, BrokenPipeError):
        # The reader went away (`aethr run … | head`): not an error worth a message.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(ExitCode.OK) from None
    except Exception as exc:  # the boundary: anything else is a bug in aethr
        if Flags.verbose:
            traceback.print_exc()
        _fail(ExitCode.INTERNAL, _bug_lines(f"{type(exc).__name__}: {exc}", None))
    raise SystemExit(0)
