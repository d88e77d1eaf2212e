"""Loop conditions: when a `repeat` loop stops, and what the controller is told.

A step with `repeat` controls a loop. Its condition answers three questions, and
the executor and prompt builder ask only these:
- `check(output)`: did this pass meet the goal, and why (one line for the user);
- `instruction(back_to)`: what the controller's prompt says about its reply;
- `goal`: the goal in words, for the message when the passes run out;
- `marker`: text that meets the goal, so the mock can pass a loop by default.

Conditions: `until_review_pass` (the last `Review status:` line says pass),
`until_contains` (the text appears), `until_command_passes` (a `run:` step's
exit code is one of its `ok_exit_codes`) and `until: {field, equals}` (a field of
the step's JSON answer, see `structured`, equals the value).
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple, Protocol

from aethr.schema import Step

PASS_LINE = "Review status: pass"
REVISE_LINE = "Review status: revise"
_STATUS = re.compile(r"^[\s>*_`#-]*review\s+status\s*:\s*[*_`]*\s*(pass|revise)\b", re.I | re.M)


class Verdict(NamedTuple):
    passed: bool
    reason: str


class Condition(Protocol):
    goal: str
    marker: str | None

    def check(self, output: str, passed: bool | None = None) -> Verdict: ...

    def instruction(self, back_to: str) -> str | None: ...


def review_status(text: str) -> str | None:
    """`pass` or `revise` from the last status line of a reply (markdown emphasis, case and
    whitespace tolerated), or None when the reply has no status line."""
    found = _STATUS.findall(text)
    return found[-1].lower() if found else None


def verdict_of(text: str) -> str | None:
    """A reply's verdict: the `verdict` field of a JSON answer (a step with an output
    schema, such as the findings schema) when it is pass or revise, else its status line."""
    from aethr.ci.findings import loads

    answer = loads(text) if text.lstrip()[:1] in ("{", "`") else None
    if isinstance(answer, dict) and answer.get("verdict") in ("pass", "revise"):
        return str(answer["verdict"])
    return review_status(text)


class ReviewPasses:
    goal = f"'{PASS_LINE}'"
    marker: str | None = PASS_LINE

    def check(self, output: str, passed: bool | None = None) -> Verdict:
        status = review_status(output)
        if status is None:
            return Verdict(False, "no 'Review status:' line in the reply; counted as revise")
        return Verdict(status == "pass", f"Review status: {status}")

    def instruction(self, back_to: str) -> str | None:
        return (
            "End your reply with exactly one of these lines:\n"
            f"{PASS_LINE}\n{REVISE_LINE}\n"
            f"Write `{PASS_LINE}` only when there are no high or medium findings; otherwise write "
            f"`{REVISE_LINE}` and the work will be sent back to step '{back_to}'."
        )


class Contains:
    def __init__(self, text: str) -> None:
        self.text = text
        self.goal = f"the text '{text}'"
        self.marker: str | None = text

    def check(self, output: str, passed: bool | None = None) -> Verdict:
        found = self.text in output
        return Verdict(found, ("found" if found else "not found") + f": '{self.text}'")

    def instruction(self, back_to: str) -> str | None:
        return (
            f"When the work is complete, include the text `{self.text}` in your reply. "
            f"Leave it out if step '{back_to}' should run again."
        )


class CommandPasses:
    goal = "the command passing"
    marker: str | None = None

    def check(self, output: str, passed: bool | None = None) -> Verdict:
        return Verdict(bool(passed), "the command passed" if passed else "the command failed")

    def instruction(self, back_to: str) -> str | None:
        return None  # a command is not told anything


class FieldIs:
    """A top-level field of the step's JSON answer equals a value (JSON equality: 1 is not true)."""

    marker: str | None = None  # the mock's minimal answer decides

    def __init__(self, field: str, equals: object) -> None:
        self.field, self.equals = field, equals
        self.goal = f"'{field}' equal to {json.dumps(equals)}"

    def check(self, output: str, passed: bool | None = None) -> Verdict:
        from aethr.ci.findings import loads

        answer = loads(output)
        if not isinstance(answer, dict) or self.field not in answer:
            return Verdict(False, f"the answer has no field '{self.field}'; counted as not met")
        value = answer[self.field]
        met = value == self.equals and type(value) is type(self.equals)
        return Verdict(met, f"{self.field}: {json.dumps(value)}")

    def instruction(self, back_to: str) -> str | None:
        return (
            f"Set `{self.field}` to {json.dumps(self.equals)} only when the work is complete; any other "
            f"value sends the work back to step '{back_to}'."
        )


def for_step(step: Step) -> Condition | None:
    """The condition of the loop `step` controls, or None when it controls none."""
    if step.repeat is None:
        return None
    if step.repeat.until_command_passes:
        return CommandPasses()
    if step.repeat.until_contains is not None:
        return Contains(step.repeat.until_contains)
    if step.repeat.until is not None:
        return FieldIs(step.repeat.until.field, step.repeat.until.equals)
    return ReviewPasses()
