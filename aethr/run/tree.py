"""The tree a run works on, watched around each step that may edit it.

Before an editing step: a snapshot (a tree id). After it: the measured change (an
`Artifact`), the tree id after it (the no-progress digest of a command loop), and a
mark that the repository's fingerprint must be taken again before the next
checkpoint. Model steps never touch files, so they cost no git call here.
"""

from __future__ import annotations

from pathlib import Path

from aethr import git, listing
from aethr.results import Artifact


class TreeWatch:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = listing.Lister(root.resolve())  # the tree, listed once and shared by every step
        self.before: str | None = None  # the tree before the running editing step, until it is measured
        self.after: str | None = None  # the tree after the last step that may have edited it
        self.moved = False  # an editing step ran since the last fingerprint

    def begin(self, edits_tree: bool, retry_from: str | None = None) -> None:
        """A step starts; `edits_tree`: its backend may change files. `retry_from`: the tree
        before its failed attempt, which this one retries (its change is measured from there)."""
        self.before = None
        if edits_tree:
            from aethr import changes  # measuring a change is an editing step's work only

            self.before = retry_from or changes.snapshot(self.root)
            self.moved = True
            git.forget_head()  # the step may commit: HEAD is read again after it
            self.files.forget()  # the agent may add or remove files: list them again after it

    def measure(self, step_id: str, simulated: str | None) -> Artifact | None:
        """The running step's change: measured for an editing step, or the stand-in a simulated
        agent gave (`simulated`); None when neither."""
        if self.before is None:
            return None if simulated is None else Artifact(step_id, (), "", "", note=simulated)
        from aethr import changes

        git.forget_head()  # the step may have committed
        artifact, self.after = changes.artifact(self.root, step_id, self.before)
        self.before = None  # measured: nothing of this step is left behind unmeasured
        return artifact

    def left_behind(self) -> str:
        """For a step stopped part-way: the files it had changed, which stay in the tree."""
        from aethr import changes

        return changes.left_behind(self.root, self.before)

    def refingerprint(self) -> bool:
        """True once after an editing step ran: the fingerprint is to be taken again."""
        moved, self.moved = self.moved, False
        if moved:
            git.forget_head()  # the fingerprint reads HEAD as the step left it
        return moved
