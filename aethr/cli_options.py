"""The vocabulary of the `aethr` command line: each option's flag and help, and the help's
epilog (modes, environment, exit codes). `cli` holds the commands that take them; an
isolated run's options are `cli_isolate`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from aethr.runner import RunOptions

EPILOG = """\b
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
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and checkpoint JSON.")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="The workflow file (default: .aethr.yaml here or above)."),
]
TaskArg = Annotated[str | None, typer.Argument(help="What to do. Omit it to write it in your editor.")]
ShowPromptOpt = Annotated[bool, typer.Option("--show-prompt", help="Print every step's prompt; call no model.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON event per line on stdout.")]
ForceSaveOpt = Annotated[bool, typer.Option("--force", help="Let --save-workflow replace a file.")]


def run_options(given: Mapping[str, Any]) -> RunOptions:
    """`aethr run`'s parameters, by the names Typer gives them, as the runner's RunOptions:
    the report's and the isolation's options grouped, repeated options as tuples."""
    from aethr import isolation, runner
    from aethr.report import ReportOptions

    report = ReportOptions(
        given["json_"],
        given["output"],
        given["output_format"].value,
        given["summary_include_output"],
        given["diff_range"],
        given["review_output"],
    )
    return runner.RunOptions(
        task=given["task"],
        config=given["config"],
        show_prompt=given["show_prompt"],
        json_output=given["json_"],
        resume=given["resume_checkpoint"],
        force_resume=given["force_resume"],
        verbose=given["verbose"],
        exec_commands=given["exec_commands"],
        estimate=given["estimate"],
        max_cost=given["max_cost"],
        fail_on_revise=given["fail_on_revise"],
        context=tuple(given["context"] or ()),
        preset=given["preset"],
        params=tuple(given["param"] or ()),
        save_workflow=given["save_workflow"],
        force=given["force"],
        report=report,
        isolation=isolation.Asked(given["isolate"], given["apply"], given["branch"], given["allow_shared_tree"]),
    )
