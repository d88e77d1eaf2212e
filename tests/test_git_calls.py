"""A run's git processes, counted through a `git` on PATH that logs each call, then runs the
real one: on a busy machine each process waits for a core, so a run asks git only what it
needs, and what it gets stays what it was."""

from __future__ import annotations

import io
import os
import shlex
import shutil
from pathlib import Path

import pytest

from aethr import diffstream, listing
from tests.conftest import MOCK_TWO_STEPS, aethr, git, make_repo, write_workflow
from tests.test_resume import resume_path

ONE_STEP = """\
workflow: one
roles: {reviewer: Review.}
steps:
  - id: review
    role: reviewer
    context: [git_diff, 'glob:*.md', 'glob:**/*.py']
"""


def counted(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose `git` logs its subcommand to the returned file, then runs git."""
    real = shutil.which("git")
    assert real is not None
    folder, log = tmp_path / "shim", tmp_path / "git.log"
    folder.mkdir()
    shim = folder / "git"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {shlex.quote(str(log))}\nexec {shlex.quote(real)} "$@"\n')
    shim.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}, log


def verbs(log: Path) -> list[str]:
    """Each call's git subcommand, in order (past the `-c name=value` aethr puts first)."""
    found = []
    for line in log.read_text().splitlines():
        words = line.split()
        while words and words[0] == "-c":
            words = words[2:]
        found.append(words[0])
    log.unlink()
    return found


def project(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo", {"README.md": "# p\n", "src/app.py": "print(1)\n", ".gitignore": "*.flag\n"})
    (repo / "src" / "app.py").write_text("print(2)\n")
    (repo / "NOTES.md").write_text("new notes\n")
    return repo


def test_a_one_step_mock_run_calls_git_three_times(tmp_path: Path) -> None:
    repo = project(tmp_path)
    write_workflow(repo, ONE_STEP)
    env, log = counted(tmp_path)
    shown = aethr("run", "task", "--show-prompt", cwd=repo, env=env)
    assert shown.code == 0, shown.both
    assert "+print(2)" in shown.out and "+new notes" in shown.out, "the diff, its untracked file"
    assert "--- README.md ---" in shown.out and "--- src/app.py ---" in shown.out, "both globs"
    # Where the repository is and its HEAD; its files; the diff with its names.
    assert verbs(log) == ["rev-parse", "ls-files", "diff"]
    ran = aethr("run", "task", cwd=repo, env=env)
    assert ran.code == 0, ran.both
    # No later step, no resume: the run takes no fingerprint (add, rm, write-tree).
    assert verbs(log) == ["rev-parse", "ls-files", "diff"]


def test_a_two_step_run_fingerprints_once(tmp_path: Path) -> None:
    repo = project(tmp_path)
    write_workflow(repo, MOCK_TWO_STEPS)
    env, log = counted(tmp_path)
    ran = aethr("run", "task", cwd=repo, env=env)
    assert ran.code == 0, ran.both
    calls = verbs(log)
    assert calls.count("write-tree") == 1 and calls.count("rev-parse") == 1, calls


CHANGES_THEN_FAILS = """\
workflow: commits
roles: {reviewer: Review.}
steps:
  - id: commit
    run: 'echo more >> README.md && git commit -qam "a step commits"'
  - id: check
    run: 'test -f ok.flag'
  - id: review
    role: reviewer
"""


def test_a_step_that_commits_leaves_a_fingerprint_of_its_new_head(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "# p\n", ".gitignore": "*.flag\n"})
    write_workflow(repo, CHANGES_THEN_FAILS)
    failed = aethr("run", "task", "--exec-commands", cwd=repo)
    assert failed.code == 1, failed.both
    assert "a step commits" in git(repo, "log", "-1", "--format=%s")
    (repo / "ok.flag").write_text("")  # ignored: the tree the checkpoint saw is unchanged
    # HEAD read before the step would make this resume refuse: "HEAD moved".
    resumed = aethr("run", "--resume-checkpoint", resume_path(failed.err), "--exec-commands", cwd=repo)
    assert resumed.code == 0, resumed.both


def test_a_diff_over_its_budget_names_the_rest_from_the_same_git_call(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    for i in range(40):
        (repo / f"gen {i}.txt").write_text(f"line {i}\n" * 30_000)
    git(repo, "add", "-A")
    git(repo, "mv", "README.md", "READ ME.md")
    write_workflow(repo, ONE_STEP.replace("[git_diff, 'glob:*.md', 'glob:**/*.py']", "[git_diff]"))
    env, log = counted(tmp_path)
    shown = aethr("run", "task", "--show-prompt", cwd=repo, env=env)
    assert shown.code == 0, shown.both
    left_out = next(line for line in shown.out.splitlines() if line.startswith("[left out for the budget: "))
    assert " changed file(s): " in left_out and "gen 11.txt" in left_out, left_out
    assert "+line 0\n" in shown.out and "READ ME.md" in shown.out
    assert "README.md" not in left_out, "a rename that is shown is not left out by its old name"
    assert verbs(log).count("diff") == 1


class Trickle(io.RawIOBase):
    """A stream that gives at most `step` bytes a read, as a pipe may."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        taken, self.data = self.data[: min(self.step, len(buffer))], self.data[min(self.step, len(buffer)) :]
        buffer[: len(taken)] = taken
        return len(taken)


RAW = (
    b":100644 100644 aaa bbb M\0a file.txt\0"
    b":100644 100644 ccc ddd R087\0old\nname\0new name\0"
    b":000000 100644 000 eee A\0caf\xc3\xa9.md\0\0"
)
PATCH = b"diff --git a/a file.txt b/a file.txt\n--- a/a file.txt\n+++ b/a file.txt\n@@ -1 +1 @@\n-x\n+y\n"


@pytest.mark.parametrize("step", [1, 3, 7, 64, 65536])
def test_raw_names_then_the_patch_whatever_the_reads(step: int) -> None:
    stream = io.BufferedReader(Trickle(RAW + PATCH, step), buffer_size=max(step, 8))
    names, head = diffstream.read_names(stream)
    assert names == ["a file.txt", "old\nname", "new name", "café.md"]
    assert list(diffstream.lines(head, stream)) == PATCH.splitlines(keepends=True)


def test_no_change_is_no_name_and_no_patch() -> None:
    stream = io.BufferedReader(Trickle(b"", 5))
    assert diffstream.read_names(stream) == ([], b"")


FILES = ("README.md", "docs/a.md", "docs/deep/b.md", "src/app.py", "src/x.pyc", "a.md/inner.txt", "setup.py")


@pytest.mark.parametrize(
    "patterns",
    [
        ["*.md"],
        ["*.md", "**/*.md"],
        ["**/*.py", "src/**", "*.md"],
        ["docs/", "nothing/*"],
        ["*.md", "!*.md"],
        ["a?b[cd].py", "**/*.md", "**/*.md"],
    ],
)
def test_globs_in_one_pass_match_as_each_alone(patterns: list[str]) -> None:
    together = listing.match_globs(patterns, FILES)
    assert together == {p: [f for f in FILES if listing.glob_matcher(p)(f)] for p in patterns}
