"""How a run ended, for a reader who was not watching: a script, a CI job, a reviewer.

A `Report` wraps the run's event sink and keeps what a summary needs: each step's
latest result, the run's usage and its checkpoint. When the run has ended, with
whatever exit code, `close` writes:

- under `--json`, the last line of stdout: `run_finished`, with the exit code, a
  status word, the verdict, per-step results, tokens, cost and the checkpoint, for
  every ending (a success, a failure, Ctrl-C, a bad workflow file);
- `--output FILE`: the final step's text and the verdict, as Markdown or JSON;
- `$GITHUB_STEP_SUMMARY`, when set: a Markdown table appended (model text only with
  `--summary-include-output`);
- under `GITHUB_ACTIONS=true`, an `::error title=aethr::…` line for a failure, on
  stdout (on stderr under `--json`, where stdout holds only events).

The verdict is `pass` or `revise` from the latest step that has one: the `verdict`
field of a JSON answer, or the last `Review status:` line; else `none`. The status
word is the exit code's name, except at exit 5, whose three causes each have their
own: `loop_exhausted`, `revise`, `no_verdict`.
aethr talks to no GitHub API: all of this is files and text.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from aethr import sensitive
from aethr.errors import AethrError, ExitCode, NoVerdict, RevisionRequested
from aethr.events import Event, EventSink, RunFailed, RunFinished, RunStarted, StepFinished
from aethr.fsutil import atomic_write
from aethr.usage import Usage


class ReportOptions(NamedTuple):
    json_output: bool = False
    output: Path | None = None  # --output FILE
    output_format: str = "md"  # md | json | github-review | sarif
    summary_include_output: bool = False
    diff_range: str | None = None  # --diff-range: the pull request's diff, for github-review
    review_output: Path | None = None  # --review-output FILE: github-review JSON, beside --output


def status_word(code: int) -> str:
    """`ok`, `step_failed`, `usage`, …: the exit code's name, for readers that match on words."""
    try:
        return "ok" if code == 0 else ExitCode(code).name.lower()
    except ValueError:
        return "failed"


class Report:
    def __init__(self, options: ReportOptions, env: Mapping[str, str]) -> None:
        self.options = options
        self.env = env
        self.inner: EventSink | None = None
        self.workflow = ""
        self.steps: dict[str, StepFinished] = {}  # the latest pass of each step, in order
        self.usage = Usage(0, 0, 0.0)
        self.seconds = 0.0
        self.checkpoint: str | None = None
        self.cap: float | None = None  # the run's spend cap, as the executor reported it
        self.failed_step: str | None = None
        self.closed = False
        self.error: AethrError | None = None  # how the run failed, once it has ended
        self.patch: str | None = None  # an isolated run's result: its patch, or its branch
        self.branch: str | None = None

    def wrap(self, sink: EventSink) -> Report:
        self.inner = sink
        return self

    def emit(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.workflow = event.workflow
        elif isinstance(event, StepFinished):
            self.steps.pop(event.step_id, None)
            self.steps[event.step_id] = event
        elif isinstance(event, RunFinished | RunFailed):
            self.usage, self.seconds, self.cap = event.usage, event.seconds, event.cap_usd
            if isinstance(event, RunFailed):
                self.checkpoint, self.failed_step = event.checkpoint, event.step_id
            elif self.options.json_output:
                return  # `close` writes the one `run_finished`, with how the run ended
        if self.inner is not None:
            self.inner.emit(event)

    @property
    def verdict(self) -> str:
        from aethr.conditions import verdict_of

        for result in reversed(list(self.steps.values())):
            found = verdict_of(result.output)
            if found:
                return found
        return "none"

    def gate(self) -> None:
        """--fail-on-revise fails closed: only a `pass` verdict passes the gate. Raises
        RevisionRequested or NoVerdict otherwise."""
        if self.verdict == "revise":
            raise RevisionRequested(
                "the review's verdict is revise (--fail-on-revise)",
                hint="read the review, change the code, run it again",
            )
        if self.verdict != "pass":
            raise NoVerdict(
                "no step's output has a 'Review status:' line, so there is no verdict to pass (--fail-on-revise)",
                hint="the review may have been cut or have left out its last line: read it, then run it again",
            )

    def status(self, code: int) -> str:
        """How the run ended, as a word: the error's own (exit 5 has three), else the code's name."""
        if self.error is not None and self.error.status is not None:
            return self.error.status
        return status_word(code)

    @property
    def final_text(self) -> str:
        return next(reversed(self.steps.values())).output if self.steps else ""

    def close(self, code: int, error: AethrError | None) -> None:
        """The run ended with `code` (and `error`, when it failed): write every report asked for."""
        if self.closed:
            return
        self.closed = True
        self.error = error
        reason = error.message if error is not None else None
        if self.options.json_output:
            self._json_end(code, error)
        if self.options.output is not None:
            self._write_output(code, reason, self.options.output, self.options.output_format)
        if self.options.review_output is not None:
            self._write_output(code, reason, self.options.review_output, "github-review")
        summary = self.env.get("GITHUB_STEP_SUMMARY")
        if summary:
            with Path(summary).open("a", encoding="utf-8") as out:
                out.write(self.markdown_summary(code, reason))
        if self.env.get("GITHUB_ACTIONS") == "true":
            self._workflow_commands(code, reason)

    def _workflow_commands(self, code: int, reason: str | None) -> None:
        """An annotation per finding of the final answer, and `::error` for a failure."""
        from aethr.ci.outputs import annotation_lines

        stream = sys.stderr if self.options.json_output else sys.stdout
        lines = annotation_lines(sensitive.mask(self.final_text))
        if code != 0 and reason:
            lines.append(f"::error title=aethr::{_escape(sensitive.mask(reason))}")
        stream.write("".join(line + "\n" for line in lines))
        stream.flush()

    def _json_end(self, code: int, error: AethrError | None) -> None:
        from aethr.render import JsonRenderer

        sink: EventSink = self.inner or JsonRenderer(sys.stdout)
        if error is not None and not error.reported:
            # A failure the executor did not report (a bad file, a missing key) still gets its event.
            sink.emit(RunFailed(self.workflow, error.message, code, None, 0.0, self.usage, error.checkpoint))
        event = RunFinished(
            self.workflow,
            self.seconds,
            self.usage,
            tuple(self.steps.values()),
            cap_usd=self.cap,
            exit_code=code,
            status=self.status(code),
            verdict=self.verdict,
            checkpoint=self.checkpoint or (error.checkpoint if error else None),
            reason=error.message if error else None,
            patch=self.patch,
            branch=self.branch,
        )
        sink.emit(event)

    def _write_output(self, code: int, reason: str | None, path: Path, fmt: str) -> None:
        text = sensitive.mask(self.final_text)
        heading = f"### aethr · {self.workflow or 'run'} · verdict: **{self.verdict}**"
        if fmt in ("github-review", "sarif"):
            body = self._ci_output(text, heading, code, reason, fmt)
        elif fmt == "json":
            data = {"workflow": self.workflow, "verdict": self.verdict, "exit_code": code}
            data |= {"status": self.status(code), "reason": reason, "output": text}
            body = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
        else:
            head = f"<!-- aethr -->\n{heading}\n\n"
            ending = (
                ""
                if self.status(code) in ("ok", "revise")
                else f"\n\n> The run failed (exit {code}, {self.status(code)}): {reason}\n"
            )
            from aethr.ci.outputs import markdown

            body = head + (markdown(text).strip() or "_(no output)_") + ending + "\n"
        atomic_write(path, body.encode(), mode=0o644)

    def _ci_output(self, text: str, heading: str, code: int, reason: str | None, fmt: str) -> str:
        from aethr import git
        from aethr.ci.outputs import render

        def diff_text() -> str:
            try:
                # The repository aethr runs in: the one whose pull request the review is for.
                return git.pull_request_diff(Path.cwd(), self.options.diff_range).text
            except git.GitError as exc:
                # The run is over: its findings still go out, all in the review's body.
                sys.stderr.write(f"aethr: the pull request's diff could not be read: {exc}\n")
                return ""

        if self.status(code) not in ("ok", "revise"):
            heading += f"\n\n> The run failed (exit {code}, {self.status(code)}): {sensitive.mask(reason or '')}"
        return render(fmt, text, heading, diff_text)

    def markdown_summary(self, code: int, reason: str | None) -> str:
        from aethr.usage import money, tokens

        lines = [f"### aethr · {self.workflow or 'run'} · verdict: **{self.verdict}**", ""]
        lines += ["| step | role | model | passes | status | time | tokens | cost |", "| --- " * 8 + "|"]
        for step in self.steps.values():
            status = "ok" if step.passed is not False else "failed"
            row = (step.step_id, step.role, step.model or "-", str(step.iteration), status)
            lines.append(
                "| " + " | ".join((*row, f"{step.seconds:.1f}s", tokens(step.usage), money(step.usage))) + " |"
            )
        if self.failed_step and self.failed_step not in self.steps:
            lines.append(f"| {self.failed_step} | | | | failed | | | |")
        total = f"tokens {tokens(self.usage, share=True)} · {money(self.usage)}"
        ending = "finished" if code == 0 else f"failed: {_cell(sensitive.mask(reason or ''))}"
        lines += ["", f"**exit {code}** ({self.status(code)}) · {ending} · {total}", ""]
        if self.options.summary_include_output and self.final_text:
            lines += ["<details><summary>final output</summary>", "", sensitive.mask(self.final_text), "</details>", ""]
        return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    """A workflow command's message: one line, with GitHub's escapes."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
