"""Pure text assembly: one step's prompt from the task, history, artifact and context.

`build` does no I/O; the same text is what `--show-prompt` prints and what the
model receives as its single user message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from aethr import conditions
from aethr.context import CHARS_PER_TOKEN
from aethr.names import ContextSource
from aethr.results import Artifact, StepResult
from aethr.schema import Step, Workflow
from aethr.structured import OutputSpec, instruction

HISTORY_TOKENS_PER_STEP = 4_000
HISTORY_TOKENS = 12_000

ROLE_INSTRUCTIONS: dict[str, str] = {
    "planner": "You are the planner. Produce a short, numbered plan that another engineer can "
    "follow. Name the files to change and how to verify the result. Do not write the code.",
    "implementer": "You are the implementer. Make the change the plan describes, completely and "
    "minimally. Show the code you change as unified diffs or whole files.",
    "reviewer": "You are the reviewer. Check the change against the task. List findings as "
    "high / medium / low with file and line; say plainly when there are none.",
    "debugger": "You are the debugger. Find the root cause from the evidence. Say what you "
    "checked, what you ruled out, and the most likely cause.",
    "writer": "You are the technical writer. Change the documentation so that it matches the "
    "code exactly; keep the existing voice.",
    "test-planner": "You are the test planner. List the behaviours and edge cases worth "
    "testing, one line each, most important first.",
    "test-writer": "You are the test writer. Write focused tests that can fail, need no network, "
    "and follow the project's test style.",
}
GENERIC_INSTRUCTIONS = "You are the {role}. Do your part of the task carefully and concisely."


def preview_placeholder(step_id: str) -> str:
    return f"[the output of step '{step_id}' will appear here when the workflow runs]"


def select_history(results: Sequence[StepResult], visibility: str) -> list[StepResult]:
    """The earlier results a step sees: the latest pass of each step, in the order they ran."""
    latest: dict[str, StepResult] = {}
    for result in results:
        latest.pop(result.step_id, None)
        latest[result.step_id] = result
    ordered = list(latest.values())
    if visibility == "none" or not ordered:
        return []
    if visibility == "latest":
        return ordered[-1:]
    return ordered


def _cap(text: str, tokens: int) -> str:
    limit = tokens * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[truncated: {len(text) - limit} more characters of this output]"


def _history(results: list[StepResult], visibility: str) -> str:
    if visibility == "summary":
        lines = []
        for r in results:
            first = next((ln.strip() for ln in r.output.splitlines() if ln.strip()), "(no output)")
            lines.append(f"- {r.step_id} ({r.role}, pass {r.iteration}): {first[:200]}")
        return "\n".join(lines)
    budget = HISTORY_TOKENS
    parts = []
    # Newest first when cutting, so the most recent output survives the overall cap.
    for r in reversed(results):
        body = _cap(r.output, min(HISTORY_TOKENS_PER_STEP, max(budget, 0)))
        budget -= len(body) // CHARS_PER_TOKEN
        parts.append(f"## {r.step_id} ({r.role}, pass {r.iteration})\n{body.rstrip()}")
    return "\n\n".join(reversed(parts))


class Prompt(NamedTuple):
    """A step's prompt, and how much of it leads every pass unchanged: `text[:stable]` is the
    part a provider's prompt cache can serve again (see `build`)."""

    text: str
    stable: int


def changing(source: ContextSource) -> bool:
    """Whether a source's text changes as the run goes (an agent's edits, earlier outputs), so it
    follows the stable part: `git_diff` of the working tree, the index or one revision does;
    `file:`, `glob:` and a `git_diff:A..B` range between commits read what a run does not
    change (an agent may edit a file: that costs a cache miss, never a wrong prompt)."""
    return source.kind in ("latest_diff", "step") or (source.kind == "git_diff" and ".." not in source.arg)


def build(
    workflow: Workflow,
    step: Step,
    task: str,
    history: Sequence[StepResult],
    latest: Artifact | None,
    context: Sequence[tuple[ContextSource, str]],
    output: OutputSpec | None = None,
) -> Prompt:
    """The full prompt for `step`, from the most stable part to the most volatile, so that a
    loop's later passes (and other runs) repeat its longest possible prefix, which providers
    bill as cached: the role, its guidance, the task, the step's instruction and the declared
    context that the run does not change lead; the context that the run changes (`latest_diff`,
    `step:`, the working tree's `git_diff`), earlier outputs (loop feedback among them) and the
    latest implementation follow. The reply and answer formats close the prompt, where models
    heed them best (a few dozen tokens outside the cached part). `context` pairs each declared
    source with its block; `history` is every earlier result of the run, in order."""
    role_text = ROLE_INSTRUCTIONS.get(step.role, GENERIC_INSTRUCTIONS.format(role=step.role))
    stable = [f"# Role: {step.role}\n{role_text}"]
    guidance = workflow.roles.get(step.role, "").strip()
    if guidance:
        stable.append(f"# Guidance from the workflow '{workflow.workflow}'\n{guidance}")
    stable.append(f"# Task\n{task.strip()}")
    if step.prompt:
        stable.append(f"# Instruction for this step\n{step.prompt.strip()}")
    fixed = [block for source, block in context if not changing(source)]
    if fixed:
        stable.append("# Context\n" + "\n\n".join(fixed))
    later = [block for source, block in context if changing(source)]
    volatile = ["# Context from this run\n" + "\n\n".join(later)] if later else []
    visible = select_history(history, step.history_visibility)
    if visible:
        volatile.append(f"# Earlier steps\n{_history(visible, step.history_visibility)}")
    if latest is not None:
        files = ", ".join(latest.changed_files) if latest.changed_files else "none"
        volatile.append(f"# Latest implementation\n{latest.describe()}. Changed files: {files}.")
    condition = conditions.for_step(step)
    reply = condition.instruction(step.repeat.back_to) if condition and step.repeat else None
    if reply:
        volatile.append(f"# Reply format\n{reply}")
    if output is not None:
        volatile.append(f"# Answer format\n{instruction(output)}")
    # The stable part ends at the same byte whether anything follows it or not (a loop's first
    # pass may have no history yet): its last line's newline, never the blank line after it.
    head = "\n\n".join(stable) + "\n"
    return Prompt(head + ("\n" + "\n\n".join(volatile) + "\n" if volatile else ""), len(head))
