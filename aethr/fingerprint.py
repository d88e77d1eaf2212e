"""The repository's fingerprint: HEAD plus a tree object of the whole working tree.

Taken at the start of a run and after every step that may edit files, stored in
the checkpoint, and compared on resume: skipping finished steps is safe only if
nothing changed in between.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

from aethr import git

_SHA = re.compile(r"[0-9a-f]{40,64}")


class Fingerprint(NamedTuple):
    head: str | None  # None before the first commit
    tree: str  # the working tree, untracked files included, the workflow file left out

    def to_dict(self) -> dict[str, str | None]:
        return {"head": self.head, "tree": self.tree}

    @classmethod
    def from_dict(cls, value: Any) -> Fingerprint | None:
        """Rebuild from `to_dict`. Raises ValueError for any other shape."""
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) != {"head", "tree"}:
            raise ValueError("fingerprint must be an object with 'head' and 'tree'")
        head, tree = value["head"], value["tree"]
        if head is not None and not (isinstance(head, str) and _SHA.fullmatch(head)):
            raise ValueError(f"fingerprint head {head!r} is not a commit id")
        if not (isinstance(tree, str) and _SHA.fullmatch(tree)):
            raise ValueError(f"fingerprint tree {tree!r} is not a tree id")
        return cls(head, tree)


def take(root: Path, config_path: Path) -> Fingerprint | None:
    """The fingerprint of the repository holding `root` now; None outside git."""
    try:
        if git.toplevel(root) is None:
            return None
        rel = config_path.resolve().relative_to(root.resolve()).as_posix()
        return Fingerprint(git.head(root), git.snapshot(root, exclude=[rel]))
    except (git.GitError, ValueError):
        return None


def describe_change(root: Path, old: Fingerprint, new: Fingerprint) -> str:
    """What changed between two fingerprints, in one line."""
    what = []
    if old.head != new.head:
        what.append(f"HEAD moved from {(old.head or 'none')[:10]} to {(new.head or 'none')[:10]}")
    if old.tree != new.tree:
        try:
            files = git.changed_files(root, old.tree, new.tree)
            shown = ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
            what.append(f"files changed: {shown}" if files else "the working tree changed")
        except git.GitError:
            what.append("the working tree changed")
    return "; ".join(what)
