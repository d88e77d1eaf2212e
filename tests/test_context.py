"""Explicit context on real git repositories: complete, confined to the root, bounded.

Each test runs `aethr run --show-prompt`, which prints the exact prompt and a context
report, so what is asserted is what a model would receive.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import WORKFLOW_ONE_STEP, aethr, git, make_repo, write_workflow


def preview(root: Path, *sources: str) -> str:
    write_workflow(root, WORKFLOW_ONE_STEP.format(context=", ".join(f"'{s}'" for s in sources)))
    result = aethr("run", "look", "--show-prompt", cwd=root)
    assert result.code == 0, result.both
    return result.out


def test_git_diff_has_staged_unstaged_and_untracked_changes(repo: Path) -> None:
    (repo / "staged.txt").write_text("staged line\n")
    git(repo, "add", "staged.txt")
    (repo / "README.md").write_text("# project\nunstaged line\n")
    (repo / "new.txt").write_text("untracked line\n")
    out = preview(repo, "git_diff")
    assert "+staged line" in out
    assert "+unstaged line" in out
    assert "+++ b/new.txt" in out and "+untracked line" in out


def test_git_diff_in_a_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "--quiet")
    (tmp_path / "a.txt").write_text("first\n")
    git(tmp_path, "add", "a.txt")
    (tmp_path / "b.txt").write_text("second\n")
    out = preview(tmp_path, "git_diff")
    assert "+first" in out and "+second" in out


def test_git_diff_outside_git_is_a_placeholder(tmp_path: Path) -> None:
    out = preview(tmp_path, "git_diff")
    assert "[no diff: not a git repository]" in out


def test_git_diff_with_no_changes_says_so(repo: Path) -> None:
    git(repo, "add", "-A")
    write_workflow(repo, WORKFLOW_ONE_STEP.format(context="git_diff"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "wf")
    result = aethr("run", "look", "--show-prompt", cwd=repo)
    assert "[no uncommitted changes]" in result.out


def test_git_diff_range_reviews_a_branch(repo: Path) -> None:
    git(repo, "checkout", "-qb", "feature")
    (repo / "feature.py").write_text("print('feature')\n")
    git(repo, "add", "feature.py")
    git(repo, "commit", "-qm", "feature")
    (repo / "README.md").write_text("uncommitted, not on the branch diff\n")
    out = preview(repo, "git_diff:main...HEAD")
    assert "+print('feature')" in out
    assert "uncommitted, not on the branch diff" not in out


def test_git_diff_never_shows_env_files(repo: Path) -> None:
    (repo / ".env").write_text("OPENAI_API_KEY=sk-secret-value\n")
    (repo / "config").mkdir()
    (repo / "config" / ".env.local").write_text("TOKEN=sk-another-secret\n")
    out = preview(repo, "git_diff")
    assert "sk-secret-value" not in out and "sk-another-secret" not in out
    assert "may hold secrets" in out


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("file:../outside.txt", "'..' would leave the project root"),
        ("file:/etc/hostname", "absolute paths are not allowed"),
        ("file:.git/config", "git internals are never included"),
        ("file:.env", "may hold secrets"),
        ("file:link-to-outside.txt", "symlink that leads outside the project root"),
        ("file:linked-dir/secret.txt", "symlink that leads outside the project root"),
        ("file:missing.txt", "missing: no such file"),
        ("glob:../*.txt", "globs must stay inside the project root"),
    ],
)
def test_refusals_are_visible_placeholders(tmp_path: Path, source: str, why: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET\n")
    (tmp_path / "outside.txt").write_text("TOP SECRET\n")
    root = make_repo(tmp_path / "repo")
    (root / ".env").write_text("KEY=TOP SECRET\n")
    os.symlink(outside / "secret.txt", root / "link-to-outside.txt")
    os.symlink(outside, root / "linked-dir")
    out = preview(root, source)
    assert why in out
    assert "TOP SECRET" not in out


def test_glob_leaves_out_git_env_ignored_and_escaping_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("TOP_SECRET = 1\n")
    root = make_repo(tmp_path / "repo", {"src/app.py": "APP = 1\n", ".gitignore": "build/\n"})
    (root / "src" / "new.py").write_text("NEW = 1\n")
    (root / "build").mkdir()
    (root / "build" / "gen.py").write_text("GENERATED = 1\n")
    (root / ".env").write_text("KEY=sk-live\n")
    (root / ".env.production").write_text("KEY=sk-prod\n")
    (root / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    (root / "notes.txt").write_text("-----BEGIN RSA PRIVATE KEY-----\nabc\n")
    os.symlink(outside / "secret.py", root / "src" / "escape.py")
    out = preview(root, "glob:**/*")
    assert "APP = 1" in out and "NEW = 1" in out
    assert "GENERATED" not in out, "ignored files are left out"
    assert "[core]" not in out and "--- .git/" not in out, ".git internals are left out"
    assert "sk-live" not in out and "sk-prod" not in out
    assert "abc" not in out, "private keys are left out, by name and by content"
    assert "TOP_SECRET" not in out
    assert "refused src/escape.py: it is a symlink that leads outside the project root" in out


def test_glob_star_star_matches_nested_and_top_level(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", {"a.py": "A\n", "pkg/b.py": "B\n", "pkg/deep/c.py": "C\n", "x.txt": "X\n"})
    out = preview(root, "glob:**/*.py")
    assert "--- a.py ---" in out and "--- pkg/b.py ---" in out and "--- pkg/deep/c.py ---" in out
    assert "--- x.txt ---" not in out
    assert out.index("--- a.py ---") < out.index("--- pkg/b.py ---") < out.index("--- pkg/deep/c.py ---")


def test_glob_outside_git_walks_and_honours_gitignore(tmp_path: Path) -> None:
    (tmp_path / "keep.md").write_text("KEEP\n")
    (tmp_path / "skip").mkdir()
    (tmp_path / "skip" / "x.md").write_text("SKIPPED\n")
    (tmp_path / ".gitignore").write_text("skip/\n")
    out = preview(tmp_path, "glob:**/*.md")
    assert "KEEP" in out and "SKIPPED" not in out


def test_binary_and_non_utf8_files_are_skipped(repo: Path) -> None:
    (repo / "image.bin").write_bytes(b"\x89PNG\x00\x00data")
    (repo / "latin1.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    out = preview(repo, "file:image.bin", "file:latin1.txt")
    assert "image.bin: skipped: binary file" in out
    assert "latin1.txt: skipped: not UTF-8 text" in out


def test_a_50_mb_file_is_capped_and_says_so(repo: Path) -> None:
    with (repo / "huge.log").open("w") as handle:
        line = "x" * 99 + "\n"
        for _ in range(500_000):
            handle.write(line)
    out = preview(repo, "file:huge.log")
    assert "[truncated: huge.log is longer than the per-file cap of 8,000 tokens]" in out
    assert "file:huge.log: truncated" in out
    assert len(out) < 200_000


def test_a_multi_megabyte_diff_is_capped(repo: Path) -> None:
    for i in range(40):
        (repo / f"gen{i}.txt").write_text(f"line {i}\n" * 30_000)
    git(repo, "add", "-A")
    out = preview(repo, "git_diff", "file:README.md")
    assert "[cut gen0.txt: its patch is longer than its share]" in out, "each file obeys the per-file cap"
    assert "+line 1\n" in out and "+line 10\n" in out, "later files still get their turn"
    assert "[left out for the budget: " in out and " changed file(s): gen" in out
    assert "git_diff: truncated" in out
    assert "file:README.md: skipped" in out and "budget is used up" in out
    assert len(out) < 200_000


def test_context_report_lists_each_source(repo: Path) -> None:
    out = preview(repo, "file:README.md", "latest_diff")
    assert "file:README.md: included · ~" in out
    assert "latest_diff: empty · ~0 tokens · no implementation step has run yet" in out
