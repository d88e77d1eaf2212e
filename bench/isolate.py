"""The `isolate` benchmark group: what making an isolated run's worktree costs on a big tree.

On the real repository (bench/real.py's clone, with its 400 changes: 300 files edited, 50
deleted, 50 new untracked ones) when there is one, else on the generated 20,000-file one.

- aethr: `isolation.enter`, the set-up an isolated run does before its first step (the
  snapshot of the checkout as tree objects through temporary index files, `git worktree
  add --no-checkout`, the files read in from the snapshot, the index of the staged
  changes). It is timed inside a fresh interpreter, so Python's and aethr's start-up (the
  same with or without --isolate) are left out; a fresh process each time, so no git lookup
  is cached from the sample before.
- The floor: what a user would type for the same worktree, timed as one shell command:
  `git worktree add --detach` of HEAD, then the uncommitted changes copied in (`git diff
  HEAD --binary | git apply`, and the untracked files through tar).
- The end to end figure: a one-step `run:` workflow with --isolate, minus the same run in
  the checkout: the set-up, the patch of the run's own change, and removing the worktree.

Each worktree is removed after its sample, outside the timing. Nothing here asserts a time.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WORKFLOW = """\
workflow: bench-isolate
steps:
  - id: touch
    run: 'echo benchmark >> bench-isolate.txt'
"""
CONFIG = ".aethr-isolate.yaml"
RUNS = 5

# aethr's own set-up, timed in the child from just before `enter` to just after it.
ENTER = """
import sys, time
from pathlib import Path
from aethr import config, isolation
root, checkpoint = Path(sys.argv[1]), Path(sys.argv[2])
workflow = config.load(root / sys.argv[3])
start = time.perf_counter()
isolation.enter(root, checkpoint, workflow, None)
print(time.perf_counter() - start)
"""
FLOOR = (
    'git worktree add --quiet --detach "$1" HEAD'
    ' && git diff HEAD --binary | git -C "$1" apply --allow-empty'
    ' && git ls-files -z --others --exclude-standard | tar -c --null -T - | tar -x -C "$1"'
)


def _remove(repo: Path, where: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=repo, capture_output=True)
    subprocess.run(["git", "worktree", "prune"], cwd=repo, check=True)


def _floor(repo: Path, where: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["sh", "-c", FLOOR, "floor", str(where)], cwd=repo, check=True, capture_output=True)
    return time.perf_counter() - start


def _aethr(repo: Path, where: Path) -> float:
    checkpoint = where.with_suffix(".json")  # enter makes `<checkpoint>.tree`: `where` itself
    done = subprocess.run(
        [sys.executable, "-c", ENTER, str(repo), str(checkpoint), CONFIG],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"isolation.enter failed: {done.stderr}")
    return float(done.stdout.strip())


def _same(repo: Path) -> None:
    """The floor's worktree holds the same files as aethr's: the floor does the same work, not less."""
    from aethr import git

    trees = []
    with tempfile.TemporaryDirectory(prefix="aethr-bench-wt-") as tmp:
        for name, make in (("floor", _floor), ("aethr", _aethr)):
            where = Path(tmp) / f"{name}.tree"
            make(repo, where)
            trees.append(git.snapshot(where))
            _remove(repo, where)
    if trees[0] != trees[1]:
        raise RuntimeError(f"the floor's worktree differs from aethr's: {trees}")


def _paired(repo: Path) -> tuple[float, float, float]:
    """The floor's and aethr's median set-up times, and the median ratio of the pairs: the two
    alternate, so a load that comes and goes (a shared machine) weighs on both alike."""
    floors, aethrs = [], []
    with tempfile.TemporaryDirectory(prefix="aethr-bench-wt-") as tmp:
        for i in range(RUNS + 1):  # the first pair warms the page cache
            for make, times in ((_floor, floors), (_aethr, aethrs)):
                where = Path(tmp) / f"{i}-{make.__name__}.tree"
                times.append(make(repo, where))
                _remove(repo, where)
    ratios = [a / f for f, a in zip(floors[1:], aethrs[1:], strict=True)]
    return statistics.median(floors[1:]), statistics.median(aethrs[1:]), statistics.median(ratios)


def run(repo: Path, label: str, median: Callable[..., Any], record: Callable[..., None], aethr: list[str]) -> None:
    (repo / CONFIG).write_text(WORKFLOW)
    try:
        _same(repo)
        floor, made, ratio = _paired(repo)
        args = [*aethr, "run", "task", "-c", CONFIG, "--exec-commands"]
        with tempfile.TemporaryDirectory(prefix="aethr-bench-tmp-") as tmp:  # the runs' patches go with it
            plain = median([*args, "--allow-shared-tree"], repo, runs=3, env={"TMPDIR": tmp})
            (repo / "bench-isolate.txt").unlink(missing_ok=True)
            isolated = median([*args, "--isolate"], repo, runs=3, env={"TMPDIR": tmp})
    finally:
        (repo / CONFIG).unlink(missing_ok=True)
        (repo / "bench-isolate.txt").unlink(missing_ok=True)
    record("isolate", f"git worktree add + copy the uncommitted changes ({label})", floor, None, None)
    record("isolate", "aethr's worktree set-up (isolation.enter)", made, floor, 1.5, floor_name="git")
    record("isolate", "  same, the median ratio of alternating pairs", ratio, None, 1.5, unit="×")
    end_to_end = isolated.wall - plain.wall
    record("isolate", "run --isolate, minus the same run in the checkout", end_to_end, floor, 2.0, floor_name="git")
