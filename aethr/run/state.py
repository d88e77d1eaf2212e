"""Where a run stands, as one frozen value.

A `RunState` is never changed in place: the transition (`loops.advance`) returns a
new one, and the executor commits it in one assignment before it saves and emits.
So there is no moment at which the position has moved but the results have not, or
the other way round, for Ctrl-C to land in. The checkpoint (`checkpoint`) is this
value written out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from aethr.fingerprint import Fingerprint
from aethr.results import Artifact, StepResult
from aethr.usage import Usage


def _empty() -> Mapping[str, object]:
    return MappingProxyType({})


@dataclass(frozen=True)
class RunState:
    """What finished, what runs next, how far each loop has got, and what the run spent.

    `passes`: finished passes of each loop, by its controller step, in the current round.
    `progress`: for a failing command loop, what its last failure looked like (a digest of
    its output and of the tree), so the same failure on the same tree stops the loop.
    """

    task: str
    workflow: str
    workflow_digest: str
    mode: str = "mock"  # the mode it ran in; a resume continues in it
    model_override: str | None = None  # AETHR_MODEL, when it was set
    results: tuple[StepResult, ...] = ()
    next_index: int = 0
    passes: Mapping[str, int] = field(default_factory=_empty)  # type: ignore[arg-type]
    progress: Mapping[str, str] = field(default_factory=_empty)  # type: ignore[arg-type]
    latest: Artifact | None = None
    fingerprint: Fingerprint | None = None
    spent: Usage = field(default_factory=Usage)  # every step's usage, failed ones included
    params: Mapping[str, str] = field(default_factory=_empty)  # type: ignore[arg-type]
    # The tree before an editing step that failed part-way (a git tree id): the resume retries
    # it on top of its edits, and measures the retry's change from here, both attempts in it.
    retry_from: str | None = None
    worktree: Mapping[str, str] | None = None  # an isolated run's worktree and start trees (`isolation.Tree`)

    def __post_init__(self) -> None:
        # Callers may pass plain dicts and lists; the value keeps read-only copies.
        object.__setattr__(self, "results", tuple(self.results))
        for name in ("passes", "progress", "params"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def replace(self, **changes: object) -> RunState:
        """This state with `changes`: the one way a run moves on."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def iteration_of(self, step_id: str) -> int:
        """Which pass of `step_id` runs next (1 for its first)."""
        return 1 + sum(1 for r in self.results if r.step_id == step_id)

    def outputs(self) -> dict[str, str]:
        """Each step's latest output, for `step:` context."""
        return {r.step_id: r.output for r in self.results}
