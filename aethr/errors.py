"""The one exception family of aethr, and the exit codes it maps to.

    AethrError                exit 1   a failure the user can meet
    ├── StepFailed            exit 1   a step's model or agent failed
    ├── UsageError            exit 2   the command line is wrong
    ├── ConfigError           exit 3   the workflow file is invalid
    │   └── CheckpointError   exit 3   a checkpoint is missing, garbled or foreign
    ├── EnvironmentNotReady   exit 4   a key, a tool or the repository is not ready
    ├── LoopExhausted         exit 5   a repeat loop ran out of passes (status loop_exhausted)
    ├── RevisionRequested     exit 5   --fail-on-revise: the review says revise (status revise)
    ├── NoVerdict             exit 5   --fail-on-revise: no `Review status:` line (status no_verdict)
    ├── SpendCapReached       exit 6   the run reached its spend cap
    ├── InternalError         exit 70  a bug in aethr (any unexpected exception)
    └── Interrupted           exit 130 Ctrl-C or SIGTERM

`boundary.py` is the only place that turns these into a message and an exit code.
Exit codes are part of the interface: scripts and CI gate on them. Exit 5 is the one
code that several failures share ("the gate did not get a pass"), so `run_finished`
tells them apart by a status word of their own (`status`); every other status word is
the exit code's name.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aethr.usage import Usage


class ExitCode(IntEnum):
    OK = 0
    STEP_FAILED = 1
    USAGE = 2
    INVALID_CONFIG = 3
    NOT_READY = 4
    LOOP_EXHAUSTED = 5
    SPEND_CAP = 6
    INTERNAL = 70
    INTERRUPTED = 130


class OutputClosed(Exception):
    """The reader of stdout went away (`aethr run | head`). Not a failure, so not an
    AethrError: the run stops and aethr exits 0 quietly, as git does."""


class AethrError(Exception):
    """A failure with a user-facing message, an optional hint and an exit code."""

    exit_code: ExitCode = ExitCode.STEP_FAILED
    #: The word `run_finished` reports; None: the exit code's name (`status_word`).
    status: str | None = None

    def __init__(self, message: str, *, hint: str | None = None, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # What the failed step spent before it failed (None: nothing is known to be spent);
        # the executor adds it to the run's spend, so no dollar goes uncounted.
        self.usage = usage
        # Set by the executor when the run left a checkpoint to resume from.
        self.checkpoint: str | None = None
        # Set by the runner: the command that resumes the run as it ran (`resume.command_line`).
        self.resume: str | None = None
        # Set by the executor once it has reported this failure as a RunFailed event.
        self.reported = False


class StepFailed(AethrError):
    exit_code = ExitCode.STEP_FAILED


class UsageError(AethrError):
    exit_code = ExitCode.USAGE


class ConfigError(AethrError):
    exit_code = ExitCode.INVALID_CONFIG


class CheckpointError(ConfigError):
    pass


class EnvironmentNotReady(AethrError):
    exit_code = ExitCode.NOT_READY


class LoopExhausted(AethrError):
    exit_code = ExitCode.LOOP_EXHAUSTED
    status = "loop_exhausted"


class RevisionRequested(AethrError):
    """`--fail-on-revise`: the run finished and its review says revise."""

    exit_code = ExitCode.LOOP_EXHAUSTED
    status = "revise"


class NoVerdict(AethrError):
    """`--fail-on-revise`: the run finished and no output has a `Review status:` line (the
    review forgot it, or was cut before it). A gate fails closed: no verdict is no pass."""

    exit_code = ExitCode.LOOP_EXHAUSTED
    status = "no_verdict"


class SpendCapReached(AethrError):
    exit_code = ExitCode.SPEND_CAP


class InternalError(AethrError):
    """An unexpected exception: a bug. The run still leaves its checkpoint."""

    exit_code = ExitCode.INTERNAL


class Interrupted(AethrError):
    exit_code = ExitCode.INTERRUPTED
