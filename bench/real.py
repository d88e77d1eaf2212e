"""The `real` benchmark group: `--show-prompt` on a real repository of 30,000+ files.

The repository is not generated: clone one into bench/.cache/real-repo once (or
point AETHR_BENCH_REPO at a clone), for example

    git clone https://github.com/tldr-pages/tldr bench/.cache/real-repo

After that nothing here needs the network. Each run resets the clone's working
tree and applies the same few hundred changes (fixed seed): 300 pages edited,
50 deleted, 50 new untracked pages. The floor is git itself doing the listing
work a `git_diff` needs: `git diff HEAD` and `git ls-files --others
--exclude-standard`, back to back.
"""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

WORKFLOW = """\
workflow: bench
roles: {reviewer: Review.}
models: {reviewer: openai:gpt-4o-mini}
steps:
  - id: review
    role: reviewer
    context: [git_diff, 'glob:*.md', 'glob:**/*.json']
"""
FLOOR = "git diff HEAD > /dev/null; git ls-files --others --exclude-standard > /dev/null"


def find(cache: Path) -> Path | None:
    given = os.environ.get("AETHR_BENCH_REPO")
    path = Path(given) if given else cache / "real-repo"
    return path if (path / ".git").exists() else None


def prepare(repo: Path) -> int:
    """Reset the clone, then apply the fixed changes. Returns the number of tracked files."""
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=repo, check=True)
    subprocess.run(["git", "clean", "-fdq"], cwd=repo, check=True)
    files = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    texts = [f for f in files if f.endswith((".md", ".py", ".txt", ".c", ".go", ".js"))]
    rng = random.Random(7)
    for rel in rng.sample(texts, min(300, len(texts))):
        path = repo / rel
        path.write_text(path.read_text(errors="replace") + "\nA benchmark change.\n")
    for rel in rng.sample(texts, min(50, len(texts))):
        (repo / rel).unlink(missing_ok=True)
    folder = repo / "bench-new"
    folder.mkdir(exist_ok=True)
    for i in range(50):
        (folder / f"page-{i}.md").write_text(f"# page {i}\n\nA new page.\n")
    (repo / ".aethr.yaml").write_text(WORKFLOW)
    return len(files)


def run(cache: Path, median: Callable[..., Any], record: Callable[..., None], aethr: list[str]) -> None:
    repo = find(cache)
    if repo is None:
        record("real repo", "skipped: no clone in bench/.cache/real-repo (see bench/real.py)", 0.0, None, None)
        return
    tracked = prepare(repo)
    floor = median(["sh", "-c", FLOOR], repo, runs=5)
    preview = median([*aethr, "run", "review", "--show-prompt"], repo, runs=5)
    name = f"{repo.name}, {tracked:,} files, 400 changes"
    # CPU (user + system of the child and the git processes it waited for) is the figure: on a
    # shared machine wall time mostly measures the other jobs. Wall is shown beside it.
    record("real repo", f"git diff HEAD + ls-files --others ({name}), CPU", floor.cpu, None, None)
    record("real repo", "--show-prompt git_diff + 2 globs, CPU", preview.cpu, floor.cpu, 2.5, floor_name="git")
    record("real repo", "  same, wall", preview.wall, floor.wall, None, floor_name="git")
    big = repo / "bench-new" / "huge.log"
    with big.open("wb") as handle:  # in chunks: a child forked from a 50 MB parent would count it
        for _ in range(50):
            handle.write(b"0123456789abcdef\n" * (1024 * 1024 // 17))
    try:
        heavy = median([*aethr, "run", "review", "--show-prompt"], repo, runs=3)
    finally:
        big.unlink()
    record("real repo", "--show-prompt peak memory, 50 MB untracked file", heavy.rss_mib, None, 60, unit="MiB")
