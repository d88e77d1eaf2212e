"""What the executor decides about a `run:` step's result: whether a failure stops the run.
(Whether a failing command loop makes progress at all is the transition's: `run.loops`.)
"""

from __future__ import annotations

from aethr.backends import Completion
from aethr.errors import StepFailed
from aethr.schema import Step


def check_command(step: Step, completion: Completion, follows_loops: bool) -> None:
    """Raise StepFailed for a failed command, unless the step allows failure or its loop
    will send the run back (`until_command_passes`)."""
    if step.allow_failure or (step.repeat is not None and step.repeat.until_command_passes and follows_loops):
        return
    shown = step.run if isinstance(step.run, str) else " ".join(step.run or [])
    lines = completion.text.split("\n")
    at = shown.count("\n") + 1  # the status line follows the command, however many lines it has
    status = lines[at] if len(lines) > at else ""  # "[exit 1 · failed · 0.2s]"
    timed_out = status.startswith("[timed out")
    said = f"{status[1:].split(' · ')[0]} and was stopped" if timed_out else f"failed {status}".strip()
    first, *more = shown.strip().splitlines() or [""]
    tail = "\n".join(f"  | {line}" for line in completion.last_lines)
    fix = "raise the step's `timeout` or fix what hangs" if timed_out else "fix what it reports"
    raise StepFailed(
        f"step '{step.id}': `{first}{' …' if more else ''}` {said}" + (f"; its last lines:\n{tail}" if tail else ""),
        hint=f"{fix} and resume (the command runs again), or set `allow_failure: true` on the step",
    )
