"""aethr as git sees it: `git_diff:staged`, and the hooks under the real pre-commit framework.

The hooks are installed from a local clone of aethr (its `.pre-commit-hooks.yaml`, as a
user's `repo:` names it) into temporary repositories, with PRE_COMMIT_HOME inside the
test's folder. The clone's hooks say `language: python`, for which pre-commit builds a
virtualenv and pip-installs aethr and its dependencies from the package index; a test
must not reach the network, so each test's config overrides the language with
`unsupported` (pre-commit's name for `system`) and the hook's entry, `aethr-hook`, is
this venv's. Everything else (entry, stages, args, verbose, always_run) is the shipped
manifest's. Live reviews talk to the loopback model server, whose request log shows
what the reviewer saw.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import aethr, ceiling, git, make_repo, shell_script, write_workflow
from tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
STAGED_WORKFLOW = """\
workflow: staged
roles: {reviewer: Review.}
steps:
  - {id: review, role: reviewer, context: ["git_diff:staged"]}
"""
BLOCK = re.compile(r"<<< context: git_diff:staged >>>\n(.*?)\n?<<< end: git_diff:staged >>>", re.S)
REVISE = "The staged change breaks add().\nReview status: revise"


def staged_block(repo: Path) -> str:
    result = aethr("run", "task", "--show-prompt", cwd=repo)
    assert result.code == 0, result.both
    found = BLOCK.search(result.out)
    assert found, result.out
    return found.group(1)


# --- git_diff:staged ---------------------------------------------------------------------------


def test_staged_is_git_diff_cached_byte_for_byte(repo: Path) -> None:
    (repo / "app.py").write_text("one\n")
    (repo / "old.txt").write_text("moved\nunchanged\n")
    (repo / "gone.txt").write_text("deleted\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "files")
    write_workflow(repo, STAGED_WORKFLOW)
    (repo / "app.py").write_text("one\nSTAGED\n")
    git(repo, "add", "app.py")
    git(repo, "rm", "-q", "gone.txt")
    git(repo, "mv", "old.txt", "new.txt")
    (repo / "app.py").write_text("one\nSTAGED\nUNSTAGED\n")  # in the working tree only
    (repo / "untracked.py").write_text("UNTRACKED\n")
    expected = git(repo, "diff", "--cached")
    assert "deleted file mode" in expected and "rename from old.txt" in expected
    shown = staged_block(repo)
    assert shown == expected.rstrip("\n"), "the block holds `git diff --cached`, its last newline aside"
    from aethr import gitview

    notes: list[str] = []
    text, cut = gitview.tracked(repo, "staged", 1 << 20, 1 << 20, notes)
    assert (text, cut, notes) == (expected, False, [])


def test_staged_before_the_first_commit_is_against_the_empty_tree(tmp_path: Path) -> None:
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "first.py").write_text("print('first')\n")
    (repo / "later.py").write_text("not staged\n")
    git(repo, "add", "first.py")
    write_workflow(repo, STAGED_WORKFLOW)
    expected = git(repo, "diff", "--cached")
    assert "new file mode" in expected
    assert staged_block(repo) == expected.rstrip("\n")


def test_staged_keeps_the_secret_policy_and_says_when_nothing_is_staged(repo: Path) -> None:
    write_workflow(repo, STAGED_WORKFLOW)
    git(repo, "add", ".aethr.yaml")
    git(repo, "commit", "-qm", "workflow")
    (repo / "README.md").write_text("changed but not staged\n")
    assert staged_block(repo) == "[nothing staged]"
    (repo / ".env").write_text("OPENAI_API_KEY=sk-staged-secret-0123\n")
    (repo / "key.txt").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n")
    git(repo, "add", "-f", ".env", "key.txt")
    shown = staged_block(repo)
    assert "sk-staged-secret" not in shown and "abc" not in shown
    assert "[left out .env:" in shown and "[left out key.txt:" in shown


# --- the hooks under pre-commit ----------------------------------------------------------------


def aethr_clone(tmp_path: Path) -> tuple[Path, str]:
    """A local repository of aethr's files, as a `repo:` entry would name it; and its commit."""
    clone = tmp_path / "aethr-clone"
    clone.mkdir()
    for name in (".pre-commit-hooks.yaml", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, clone / name)
    for folder in ("aethr", "presets"):
        shutil.copytree(ROOT / folder, clone / folder, ignore=shutil.ignore_patterns("__pycache__"))
    git(clone, "init", "-q")
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "aethr")
    return clone, git(clone, "rev-parse", "HEAD").strip()


def hooked_repo(tmp_path: Path, hook_id: str, args: list[str] | None = None) -> tuple[Path, dict[str, str]]:
    """A project with aethr's hook installed by pre-commit, and the environment to commit in."""
    clone, rev = aethr_clone(tmp_path)
    repo = make_repo(tmp_path / "project", {"app.py": "def add(a, b):\n    return a + b\n"})
    args_line = f"\n        args: {args}" if args else ""
    config = (
        f"repos:\n  - repo: {clone}\n    rev: {rev}\n    hooks:\n"
        f"      - id: {hook_id}\n        language: unsupported{args_line}\n"
    )
    (repo / ".pre-commit-config.yaml").write_text(config)
    git(repo, "add", ".pre-commit-config.yaml")
    git(repo, "commit", "-qm", "hooks")
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    stage = "pre-push" if hook_id.endswith("push") else "pre-commit"
    installed = subprocess.run(
        [sys.executable, "-m", "pre_commit", "install", "--hook-type", stage],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=ceiling(120),
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return repo, env


def live(env: dict[str, str], server: FakeOpenAI) -> dict[str, str]:
    return {**env, "AETHR_LIVE": "1", "OPENAI_API_KEY": "sk-test-hook-0123456789", "OPENAI_API_BASE": server.base_url}


def run(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=ceiling(300))


def commits(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", "HEAD").strip())


def test_a_commit_is_reviewed_on_its_staged_change_only(tmp_path: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "stream", "text": REVISE}]
    repo, env = hooked_repo(tmp_path, "aethr-review")
    (repo / "app.py").write_text("def add(a, b):\n    return a - b  # STAGED-CHANGE\n")
    git(repo, "add", "app.py")
    (repo / "notes.py").write_text("UNSTAGED-NEW-FILE\n")
    (repo / "README.md").write_text("UNSTAGED-EDIT\n")
    done = run(repo, live(env, server), "git", "commit", "-m", "subtract")
    assert done.returncode == 0, "advisory by default: a revise lets the commit through\n" + done.stdout + done.stderr
    assert commits(repo) == 3
    assert "breaks add()" in done.stdout + done.stderr, "the findings are printed"
    assert len(server.requests) == 1
    prompt = server.prompts()[0]
    assert "STAGED-CHANGE" in prompt and "git_diff:staged" in prompt
    assert "UNSTAGED" not in prompt and "notes.py" not in prompt, "the review saw only what is committed"
    assert "UNSTAGED-EDIT" in (repo / "README.md").read_text(), "the unstaged edit is kept"


def test_fail_on_revise_blocks_the_commit(tmp_path: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "stream", "text": REVISE}]
    repo, env = hooked_repo(tmp_path, "aethr-review", ["--fail-on-revise"])
    (repo / "app.py").write_text("def add(a, b):\n    return a - b\n")
    git(repo, "add", "app.py")
    done = run(repo, live(env, server), "git", "commit", "-m", "subtract")
    assert done.returncode != 0 and commits(repo) == 2, done.stdout + done.stderr
    assert "breaks add()" in done.stdout + done.stderr
    server.script = [{"kind": "stream", "text": "Fine.\nReview status: pass"}]
    passed = run(repo, live(env, server), "git", "commit", "-m", "subtract")
    assert passed.returncode == 0 and commits(repo) == 3, passed.stdout + passed.stderr


def test_nothing_staged_is_a_fast_skip_without_a_call(tmp_path: Path, server: FakeOpenAI) -> None:
    repo, env = hooked_repo(tmp_path, "aethr-review", ["--fail-on-revise"])
    (repo / "app.py").write_text("UNSTAGED\n")
    done = run(repo, live(env, server), "git", "commit", "--allow-empty", "-m", "empty")
    assert done.returncode == 0 and commits(repo) == 3, done.stdout + done.stderr
    assert "nothing staged: nothing to review" in done.stdout + done.stderr
    assert server.requests == [], "no model was called"


def test_mock_mode_says_that_nothing_was_reviewed(tmp_path: Path) -> None:
    repo, env = hooked_repo(tmp_path, "aethr-review", ["--fail-on-revise"])
    (repo / "app.py").write_text("def add(a, b):\n    return a - b\n")
    git(repo, "add", "app.py")
    done = run(repo, env, "git", "commit", "-m", "subtract")
    printed = done.stdout + done.stderr
    assert done.returncode == 0 and commits(repo) == 3, printed
    assert "nothing was reviewed: aethr is in mock mode" in printed
    assert "Review status" not in printed and "[mock " not in printed, "no mock review is shown"


def test_a_push_is_reviewed_on_the_pushed_range(tmp_path: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "stream", "text": "Fine.\nReview status: pass"}]
    repo, env = hooked_repo(tmp_path, "aethr-review-push")
    git(tmp_path, "clone", "-q", "--bare", str(repo), "origin.git")
    git(repo, "remote", "add", "origin", str(tmp_path / "origin.git"))
    git(repo, "fetch", "-q", "origin")
    git(repo, "branch", "-q", "--set-upstream-to=origin/main")
    (repo / "app.py").write_text("def add(a, b):\n    return a + b  # PUSHED-ONE\n")
    git(repo, "commit", "-qam", "one")
    (repo / "extra.py").write_text("PUSHED-TWO\n")
    git(repo, "add", "extra.py")
    git(repo, "commit", "-qm", "two")
    (repo / "README.md").write_text("NOT-COMMITTED\n")
    done = run(repo, live(env, server), "git", "push", "-q", "origin", "main")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(server.requests) == 1, done.stdout + done.stderr
    prompt = server.prompts()[0]
    assert "PUSHED-ONE" in prompt and "PUSHED-TWO" in prompt
    assert "NOT-COMMITTED" not in prompt and "pre-commit-config" not in prompt, "only the pushed commits"
    assert re.search(r"git_diff:[0-9a-f]{40}\.\.[0-9a-f]{40}", prompt)


def test_the_plain_git_recipe_in_the_readme_reviews_the_staged_change(tmp_path: Path, server: FakeOpenAI) -> None:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"```sh\n(#!/bin/sh\n# \.git/hooks/pre-commit.*?)```", readme, re.S)
    assert found, "the README holds a plain .git/hooks/pre-commit script"
    repo = make_repo(tmp_path / "plain")
    shell_script(repo / ".git" / "hooks" / "pre-commit", found.group(1).removeprefix("#!/bin/sh\n"))
    server.script = [{"kind": "stream", "text": REVISE}]
    (repo / "README.md").write_text("# PLAIN-STAGED\n")
    git(repo, "add", "README.md")
    env = live({**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}, server)
    done = run(repo, env, "git", "commit", "-m", "plain")
    assert done.returncode == 0 and "PLAIN-STAGED" in server.prompts()[0], done.stdout + done.stderr


@pytest.mark.parametrize("argv", [[], ["post-merge"]])
def test_the_hook_script_names_its_stages(repo: Path, argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aethr.hook", *argv], cwd=repo, capture_output=True, text=True, timeout=ceiling(60)
    )
    assert done.returncode == 2 and "usage: aethr-hook pre-commit|pre-push" in done.stderr


def test_the_manifest_is_one_pre_commit_accepts(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")],
        env={**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=ceiling(60),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_first_push_has_no_range_and_a_failed_review_is_advisory(tmp_path: Path, server: FakeOpenAI) -> None:
    repo, env = hooked_repo(tmp_path, "aethr-review-push")
    git(tmp_path, "init", "-q", "--bare", "empty.git")
    first = run(repo, live(env, server), "git", "push", "-q", str(tmp_path / "empty.git"), "main")
    assert first.returncode == 0 and "no pushed range" in first.stdout + first.stderr, first.stdout + first.stderr
    assert server.requests == []
    server.script = [{"kind": "status", "code": 400, "message": "scripted bad request"}]
    (repo / "app.py").write_text("CHANGED\n")
    git(repo, "commit", "-qam", "change")
    failed = run(repo, live(env, server), "git", "push", "-q", str(tmp_path / "empty.git"), "main")
    printed = failed.stdout + failed.stderr
    assert failed.returncode == 0 and "scripted bad request" in printed, printed
    assert "the review ended with exit 1; the hook is advisory, so the push goes on" in printed
