"""Context that is faithful to git and bounded, on real repositories.

Each case gathers a step's context in-process (exactly what its prompt is built
from) and checks three things every time: no secret, the budget held, and a
report that agrees with the text. One CLI run covers a workflow in a subfolder.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from aethr import context
from aethr.context import CHARS_PER_TOKEN, STEP_TOKENS, Gathered
from aethr.names import parse_context_source
from tests.conftest import WORKFLOW_ONE_STEP, aethr, git, make_repo, write_workflow

SECRET = "SECRET-MARKER-FAITHFUL"


def gather(root: Path, *sources: str, step_tokens: int = STEP_TOKENS) -> Gathered:
    found = context.gather([parse_context_source(s) for s in sources], root, None, step_tokens=step_tokens)
    text = "\n".join(found.blocks)
    assert SECRET not in text, "no secret reaches the prompt"
    assert len(text) <= step_tokens * CHARS_PER_TOKEN + 200, f"the budget held: {len(text)} characters"
    for block, item in zip(found.blocks, found.report, strict=True):
        assert item.status in ("included", "truncated", "empty", "refused", "skipped")
        assert (item.status == "truncated") == ("[truncated" in block or "[cut " in block or "left out for" in block)
        for note in filter(None, item.note.split("; ")):
            if note.startswith(("left out", "cut ")):
                assert note in block, f"the report's note is in the prompt: {note}"
    return found


def _sections(diff: str) -> dict[str, str]:
    """git's patches by path, without `index` lines (aethr hashes nothing)."""
    parts = re.split(r"(?m)^(?=diff --git )", diff)
    found = {}
    for part in parts:
        if part.startswith("diff --git"):
            path = part.split(" b/", 1)[1].split("\n", 1)[0]
            found[path] = "".join(line for line in part.splitlines(keepends=True) if not line.startswith("index "))
    return found


def test_untracked_files_render_as_git_renders_them(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
    (repo / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (repo / "run.sh").chmod(0o755)
    (repo / "empty.txt").write_text("")
    (repo / "nonl.txt").write_text("no newline")
    (repo / "page.txt").write_text("one\fstill line one\x0bvertical\n")
    os.symlink("README.md", repo / "link")
    block = gather(repo, "git_diff").blocks[0]
    ours = _sections(block.split("\n", 1)[1].rsplit("<<< end:", 1)[0])
    git(repo, "add", "-N", ".")
    theirs = _sections(subprocess.run(["git", "diff"], cwd=repo, capture_output=True).stdout.decode())
    assert set(ours) == set(theirs) == {"crlf.txt", "run.sh", "empty.txt", "nonl.txt", "page.txt", "link"}
    for path in theirs:
        assert ours[path] == theirs[path], path


def test_a_large_untracked_file_does_not_starve_the_next(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "a-big.txt").write_text("x" * 200_000 + "\n")
    (repo / "b-small.txt").write_text("small and whole\n")
    found = gather(repo, "git_diff")
    assert "+small and whole" in found.blocks[0]
    assert "[cut a-big.txt: the file is longer than its share]" in found.blocks[0]
    assert found.report[0].status == "truncated"


def test_a_glob_over_thousands_of_deleted_files_is_one_counted_line(tmp_path: Path) -> None:
    files = {"README.md": "# project\n", **{f"old/f{i:04}.txt": "gone\n" for i in range(3_000)}}
    repo = make_repo(tmp_path / "repo", files)
    subprocess.run(["rm", "-rf", str(repo / "old")], check=True)
    (repo / "old").mkdir()
    (repo / "old" / "kept.txt").write_text("still here\n")
    git(repo, "add", "old/kept.txt")
    found = gather(repo, "glob:old/**", "file:README.md")
    assert "--- old/kept.txt ---" in found.blocks[0]
    assert "[3000 matching file(s) are deleted in the working tree: old/f0000.txt" in found.blocks[0]
    assert found.blocks[0].count("\n") < 10
    assert found.report[1].status == "included", "the budget was not eaten by notes"


def test_deletions_do_not_starve_new_work(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {f"gen/f{i:03}.txt": "line\n" * 400 for i in range(200)})
    subprocess.run(["rm", "-rf", str(repo / "gen")], check=True)
    (repo / "new_feature.py").write_text("def feature():\n    return 42\n")
    found = gather(repo, "git_diff")
    assert "+def feature():" in found.blocks[0]
    assert "[left out for the budget: " in found.blocks[0] and "changed file(s): gen/f" in found.blocks[0]


def test_a_latin_1_change_gets_a_note_not_replacement_characters(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"legacy.txt": "plain\n"})
    (repo / "legacy.txt").write_bytes("plain\ncaf\u00e9 cr\u00e8me\n".encode("latin-1"))
    block = gather(repo, "git_diff").blocks[0]
    assert "\ufffd" not in block
    assert "[left out legacy.txt: its change is not UTF-8 text" in block


def test_a_tracked_env_example_change_gets_a_note(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {".env.example": "KEY=\n"})
    (repo / ".env.example").write_text(f"KEY=\nTOKEN={SECRET}\n")
    block = gather(repo, "git_diff").blocks[0]
    assert "[left out .env.example: it may hold secrets" in block


@pytest.mark.parametrize("source", ["file:innocent", "glob:innocent", "git_diff"])
def test_a_symlink_to_a_fifo_never_blocks(tmp_path: Path, source: str) -> None:
    repo = make_repo(tmp_path / "repo")
    os.mkfifo(repo / "pipe")
    os.symlink("pipe", repo / "innocent")
    block = gather(repo, source).blocks[0]
    assert "innocent" in block


def test_a_workflow_in_a_subfolder_sees_its_own_folder_with_one_base(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"top.txt": "top\n", "sub/tracked.txt": "old\n"})
    sub = repo / "sub"
    (repo / "top.txt").write_text("top changed\n")
    (sub / "tracked.txt").write_text("new\n")
    (sub / "untracked.txt").write_text("brand new\n")
    write_workflow(sub, WORKFLOW_ONE_STEP.format(context="git_diff"))
    out = aethr("run", "look", "--show-prompt", cwd=sub).out
    assert "diff --git a/tracked.txt b/tracked.txt" in out
    assert "diff --git a/untracked.txt b/untracked.txt" in out
    assert "top changed" not in out, "nothing above the project root"
