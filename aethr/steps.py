"""What the executor decides about a `run:` step's result: whether a failure stops the run,
and whether a failing loop is making progress at all.
"""

from __future__ import annotations

import hashlib
import re

from aethr.backends import Completion
from aethr.errors import StepFailed
from aethr.schema import Step

# Numbers change between identical failures (durations, ports, addresses, counts of seconds).
_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\d+(?:\.\d+)?")


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


class Progress:
    """Remembers each failing command's output (numbers masked) and the tree after it, so a
    loop that fails the same way on an unchanged tree stops at once instead of spending passes."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[str, str | None]] = {}

    def stuck(self, step_id: str, output: str, tree: str | None) -> str | None:
        lines = output.split("\n", 2)
        body = lines[2] if len(lines) > 2 else output  # past the command and its status line
        seen = (hashlib.sha256(_NUMBERS.sub("N", body).encode()).hexdigest(), tree)
        before, self._last[step_id] = self._last.get(step_id), seen
        if before == seen and tree is not None:
            return "the command failed with the same output as the pass before, and no file changed"
        return None
