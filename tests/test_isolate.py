"""Isolated runs (`--isolate`, `isolate:`) on real repositories: the worktree starts from the
user's uncommitted work, the checkout is never touched, the result comes back as a patch (or
is applied, or committed on a branch), several runs go at once, and nothing is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import aethr, ceiling, git, make_repo, shell_script, wait_until, write_workflow
from tests.fake_openai import FakeOpenAI

ONE_STEP = """\
workflow: iso
roles: {{reviewer: Review.}}
{extra}steps:
  - id: edit
    run: {run}
"""

EDIT_THEN_REVIEW = """\
workflow: iso-{name}
roles: {{reviewer: Review.}}
steps:
  - id: edit
    run: 'echo {name} > {name}.txt; touch {out}/{name}-ready; while [ ! -e {out}/go ]; do sleep 0.05; done'
  - id: review
    role: reviewer
    context: [latest_diff]
"""


def project(tmp_path: Path) -> Path:
    files = {"a.txt": "a\n", "b.txt": "b\n", "gone.txt": "g\n", ".gitignore": ".venv/\nnode_modules/\n"}
    return make_repo(tmp_path / "repo", files)


def user_changes(repo: Path) -> None:
    """Staged, unstaged and untracked changes, and an unstaged deletion."""
    (repo / "a.txt").write_text("a\nstaged\n")
    git(repo, "add", "a.txt")
    (repo / "a.txt").write_text("a\nstaged\nunstaged\n")
    (repo / "u.txt").write_text("untracked\n")
    (repo / "gone.txt").unlink()


def checkout_state(repo: Path) -> dict[str, object]:
    """Everything of the checkout a run must leave alone: files, index, HEAD, branches, worktrees."""
    files = {
        p.relative_to(repo).as_posix(): p.read_bytes()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }
    return {
        "files": files,
        "index": git(repo, "ls-files", "--stage"),
        "head": git(repo, "rev-parse", "HEAD"),
        "branches": git(repo, "branch", "--list"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
    }


def only_the_checkout(repo: Path, branches: tuple[str, ...] = ("main",)) -> None:
    """What a run leaves: `git worktree list` holds the checkout alone, `git branch` these."""
    listed = git(repo, "worktree", "list", "--porcelain")
    assert listed.count("worktree ") == 1 and f"worktree {repo}\n" in listed, listed
    assert git(repo, "branch", "--list", "--format=%(refname:short)").split() == list(branches)


def finished(out: str) -> dict[str, object]:
    last: dict[str, object] = json.loads(out.splitlines()[-1])
    assert last["event"] == "run_finished", out
    return last


def _context(stdout: str, source: str) -> str:
    """One context block of the last step's prompt (from --json)."""
    prompt = [json.loads(ln)["prompt"] for ln in stdout.splitlines() if '"prompt_built"' in ln][-1]
    return prompt.split(f"<<< context: {source} >>>", 1)[1].split(f"<<< end: {source} >>>", 1)[0]


def test_the_worktree_starts_from_the_uncommitted_work_and_the_patch_holds_only_the_runs(tmp_path: Path) -> None:
    repo, out = project(tmp_path), tmp_path / "seen"
    out.mkdir()
    run = f"'pwd > {out}/pwd; git status --porcelain > {out}/status; cat a.txt > {out}/a; echo run >> b.txt'"
    write_workflow(repo, ONE_STEP.format(extra="", run=run))
    git(repo, "add", ".aethr.yaml")
    git(repo, "commit", "-qm", "workflow")
    user_changes(repo)
    before = checkout_state(repo)
    result = aethr("run", "task", "--isolate", "--exec-commands", "--json", cwd=repo)
    assert result.code == 0, result.both
    assert checkout_state(repo) == before, "the checkout, its index, HEAD and branches are untouched"
    assert Path((out / "pwd").read_text().strip()) != repo
    assert (out / "status").read_text().splitlines() == ["MM a.txt", " D gone.txt", "?? u.txt"]
    assert (out / "a").read_text() == "a\nstaged\nunstaged\n"
    patch = Path(str(finished(result.out)["patch"]))
    text = patch.read_text()
    assert "+run" in text and "b.txt" in text
    assert "a.txt" not in text and "u.txt" not in text and "gone.txt" not in text, text
    git(repo, "apply", str(patch))
    assert (repo / "b.txt").read_text() == "b\nrun\n" and (repo / "a.txt").read_text() == "a\nstaged\nunstaged\n"
    only_the_checkout(repo)
    assert not list(patch.parent.glob("*.tree")) and not list(patch.parent.glob("*.json"))


DIFF_THEN_REVIEW = """\
workflow: iso
roles: {{reviewer: Review.}}
isolate: true
env_passthrough: [PASSED_TOKEN]
steps:
  - id: edit
    run: 'echo run >> b.txt; test ! -e .env; echo "${{PASSED_TOKEN:-none}} ${{HELD_TOKEN:-none}}" > {out}/env'
  - id: review
    role: reviewer
    context: [git_diff]
"""


def test_git_diff_shows_the_carried_over_changes_and_the_runs_and_env_keys_follow_the_plain_rules(
    tmp_path: Path,
) -> None:
    repo, out = project(tmp_path), tmp_path / "seen"
    out.mkdir()
    write_workflow(repo, DIFF_THEN_REVIEW.format(out=out))
    (repo / ".gitignore").write_text(".venv/\nnode_modules/\n.env\n")
    git(repo, "commit", "-qam", "ignore .env")
    (repo / ".env").write_text("PASSED_TOKEN=passed-0123456789\nHELD_TOKEN=held-0123456789\n")
    user_changes(repo)
    result = aethr("run", "task", "--exec-commands", "--json", cwd=repo)
    assert result.code == 0, result.both
    git_diff = _context(result.out, "git_diff")
    for carried in ("+staged", "+unstaged", "gone.txt", "u.txt", "+run"):
        assert carried in git_diff, f"git_diff holds {carried!r} as in a plain run: {git_diff}"
    assert (out / "env").read_text() == "passed-0123456789 none\n", "a .env key reaches a step only if passed"
    only_the_checkout(repo)


AGENT = """\
workflow: agent
roles: {implementer: Implement it.}
models: {implementer: anthropic:claude-sonnet-4-5}
isolate: true
steps:
  - id: implement
    role: implementer
    backend: claude
"""
# Read before the autouse fixture clears the environment (`make test` sets it; see test_agents).
CLAUDE = os.environ.get("AETHR_TEST_CLAUDE", "")


Script = list[dict[str, Any]]


class Claudes(FakeOpenAI):
    """The loopback fake for Claude Code runs in worktrees. Every call waits until `go` is set
    (the agents are running meanwhile, and the test acts). A Messages call then gets the next
    turn of the script for the worktree the request names (Claude Code's prompt gives its
    working directory); any other call (a reviewer's) gets the default answer."""

    def __init__(self, trees: Callable[[], list[Path]], script: Callable[[Path, str], Script]) -> None:
        super().__init__([{"kind": "stream", "text": "Looks right."}])
        self.trees, self.script_for = trees, script
        self.turns: dict[Path, int] = {}
        self.waiting = 0
        self.go = threading.Event()

    def next_behaviour(self, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self.waiting += 1
        self.go.wait(ceiling(120))
        answer = super().next_behaviour(body, headers)
        text = json.dumps(body)
        named = [t for t in self.trees() if str(t) in text]
        if not headers["path"].startswith("/v1/messages") or not named:
            return answer
        with self._lock:
            turn = self.turns[named[0]] = self.turns.get(named[0], -1) + 1
        script = self.script_for(named[0], text)
        return script[min(turn, len(script) - 1)]


def _edit(where: Path, old: str, new: str) -> Script:
    """Claude Code's turns that change `old` to `new` in `where` (a file of a worktree)."""
    return [
        {"kind": "tool", "name": "Read", "arguments": {"file_path": str(where)}},
        {"kind": "tool", "name": "Edit", "arguments": {"file_path": str(where), "old_string": old, "new_string": new}},
        {"kind": "stream", "text": f"I changed {where.name}."},
    ]


def _claude_env(server: FakeOpenAI) -> dict[str, str]:
    if not Path(CLAUDE).is_file() and os.environ.get("CI") != "true":
        pytest.skip("set AETHR_TEST_CLAUDE to the claude binary (`make test` installs it)")
    return {
        "AETHR_LIVE": "1",
        "AETHR_CLAUDE_BIN": CLAUDE,
        "ANTHROPIC_API_KEY": "sk-test-agent-0123456789",
        "ANTHROPIC_BASE_URL": server.base_url.removesuffix("/v1"),
        "OPENAI_API_KEY": "sk-test-0123456789",
        "OPENAI_API_BASE": server.base_url,  # a reviewer's model step
    }


def test_claude_code_works_in_the_worktree_while_the_user_edits_the_checkout(tmp_path: Path, clean_env: Path) -> None:
    repo = project(tmp_path)
    write_workflow(repo, AGENT)
    git(repo, "add", ".aethr.yaml")
    git(repo, "commit", "-qm", "workflow")
    server = Claudes(lambda: sorted(clean_env.glob("aethr/*/*.tree")), lambda tree, _: _edit(tree / "b.txt", "b", "x"))
    server.start()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aethr", "run", "change b to x", "--json"],
            cwd=repo,
            env={**os.environ, **_claude_env(server)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: server.waiting or proc.poll() is not None, "Claude Code calls the model")
        (repo / "a.txt").write_text("the user's edit while the agent runs\n")
        (repo / "mine.txt").write_text("new\n")
        made = checkout_state(repo)
        made.pop("worktrees")  # the run's worktree is listed while it runs
        server.go.set()
        stdout, stderr = proc.communicate(timeout=ceiling(180))
    finally:
        server.go.set()
        server.stop()
    assert proc.returncode == 0, stdout + stderr
    now = checkout_state(repo)
    now.pop("worktrees")
    assert now == made, "byte-identical to what the test made it"
    patch = Path(str(finished(stdout)["patch"]))
    assert "-b\n+x" in patch.read_text() and "a.txt" not in patch.read_text(), patch.read_text()
    git(repo, "apply", str(patch))
    assert (repo / "b.txt").read_text() == "x\n", "the patch reproduces the agent's edit"
    assert (repo / "a.txt").read_text() == "the user's edit while the agent runs\n"
    only_the_checkout(repo)


def _start(repo: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aethr", "run", "task", "--exec-commands", "--json", *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


TWO_AGENTS = """\
workflow: agent
roles: {implementer: Implement it., reviewer: Review it.}
models: {implementer: anthropic:claude-sonnet-4-5, reviewer: openai:gpt-4o-mini}
isolate: true
steps:
  - id: implement
    role: implementer
    backend: claude
  - id: review
    role: reviewer
    context: [latest_diff]
"""


def test_two_isolated_runs_at_once_each_see_and_hand_back_only_their_own(tmp_path: Path, clean_env: Path) -> None:
    repo = project(tmp_path)
    write_workflow(repo, TWO_AGENTS)
    edits = {"one": ("a.txt", "a", "one"), "two": ("b.txt", "b", "two")}

    def script(tree: Path, request: str) -> Script:
        name, old, new = edits["one" if "task one" in request else "two"]
        return _edit(tree / name, old, new)

    server = Claudes(lambda: sorted(clean_env.glob("aethr/*/*.tree")), script)
    server.start()
    try:
        runs = {
            name: subprocess.Popen(
                [sys.executable, "-m", "aethr", "run", f"task {name}", "--json"],
                cwd=repo,
                env={**os.environ, **_claude_env(server)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in edits
        }
        live = lambda: server.waiting >= 2 or any(p.poll() is not None for p in runs.values())  # noqa: E731
        wait_until(live, "both agents are running, each in its worktree")
        assert len(list(clean_env.glob("aethr/*/*.tree"))) == 2
        server.go.set()
        ended = {name: proc.communicate(timeout=ceiling(240)) for name, proc in runs.items()}
    finally:
        server.go.set()
        server.stop()
    for name, (stdout, stderr) in ended.items():
        assert runs[name].returncode == 0, stdout + stderr
        mine, other = edits[name][0], edits["two" if name == "one" else "one"][0]
        latest = _context(stdout, "latest_diff")
        assert f"+{name}" in latest and mine in latest and other not in latest, latest
        patch = Path(str(finished(stdout)["patch"])).read_text()
        assert f"+{name}" in patch and other not in patch, patch
    assert (repo / "a.txt").read_text() == "a\n" and (repo / "b.txt").read_text() == "b\n"
    only_the_checkout(repo)


def test_a_run_in_the_checkout_beside_a_live_one_is_refused(tmp_path: Path) -> None:
    repo, out = project(tmp_path), tmp_path / "marks"
    out.mkdir()
    (repo / "one.yaml").write_text(EDIT_THEN_REVIEW.format(name="one", out=out))
    (repo / "quick.yaml").write_text(ONE_STEP.format(extra="", run="'echo quick > quick.txt'"))
    first = _start(repo, "-c", "one.yaml")
    wait_until(lambda: (out / "one-ready").exists() or first.poll() is not None, "the first run has edited")
    refused = aethr("run", "task", "--exec-commands", "-c", "quick.yaml", cwd=repo)
    assert refused.code == 4, refused.both
    assert "another run is working in this checkout" in refused.err and "--isolate" in refused.err
    assert not (repo / "quick.txt").exists()
    isolated = aethr("run", "task", "--exec-commands", "--isolate", "-c", "quick.yaml", cwd=repo)
    assert isolated.code == 0, isolated.both
    shared = aethr("run", "task", "--exec-commands", "--allow-shared-tree", "-c", "quick.yaml", cwd=repo)
    assert shared.code == 0 and (repo / "quick.txt").exists(), shared.both
    (out / "go").touch()
    stdout, stderr = first.communicate(timeout=ceiling(120))
    assert first.returncode == 0, stdout + stderr
    only_the_checkout(repo)


TWO_STEPS = """\
workflow: iso
roles: {{reviewer: Review.}}
isolate: true
steps:
  - id: first
    run: 'echo first >> b.txt'
  - id: second
    run: 'test -e {out}/pass || exit 3; echo second > c.txt'
"""


def _kept_tree(clean_env: Path) -> Path:
    trees = list((clean_env / "aethr").glob("*/*.tree"))
    assert len(trees) == 1, trees
    return trees[0]


def test_a_failure_keeps_the_worktree_the_resume_goes_on_there_and_prune_removes_it(
    tmp_path: Path, clean_env: Path
) -> None:
    repo, out = project(tmp_path), tmp_path / "marks"
    out.mkdir()
    write_workflow(repo, TWO_STEPS.format(out=out))
    failed = aethr("run", "task", "--exec-commands", cwd=repo)
    assert failed.code == 1, failed.both
    tree = _kept_tree(clean_env)
    assert f"worktree is kept at {tree}" in failed.err
    saved = json.loads(tree.with_suffix(".json").read_text())
    assert saved["worktree"]["path"] == str(tree)
    assert (tree / "b.txt").read_text() == "b\nfirst\n" and (repo / "b.txt").read_text() == "b\n"
    (out / "pass").touch()
    resumed = aethr("run", "--resume-checkpoint", "last", "--exec-commands", "--json", cwd=repo)
    assert resumed.code == 0, resumed.both
    patch = Path(str(finished(resumed.out)["patch"])).read_text()
    assert patch.count("+first") == 1 and "+second" in patch, "the first step ran once, in the kept worktree"
    assert not tree.exists()
    only_the_checkout(repo)
    (out / "pass").unlink()
    assert aethr("run", "task", "--exec-commands", cwd=repo).code == 1
    tree = _kept_tree(clean_env)
    listed = aethr("checkpoints", cwd=repo)
    assert f"{tree.with_suffix('.json')}\n          worktree {tree}\n" in listed.out, listed.both
    pruned = aethr("checkpoints", "--prune", cwd=repo)
    assert pruned.code == 0 and "1 worktree(s)" in pruned.out, pruned.both
    assert not tree.exists()
    only_the_checkout(repo)


@pytest.mark.parametrize("checkpointed", [True, False], ids=["named-by-its-checkpoint", "before-its-checkpoint"])
def test_after_a_sigkill_prune_clears_the_worktree(tmp_path: Path, clean_env: Path, checkpointed: bool) -> None:
    repo, out = project(tmp_path), tmp_path / "marks"
    out.mkdir()
    (repo / "one.yaml").write_text(EDIT_THEN_REVIEW.format(name="one", out=out))
    proc = _start(repo, "--isolate", "-c", "one.yaml")
    wait_until(lambda: (out / "one-ready").exists() or proc.poll() is not None, "the run has edited")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=ceiling(60))
    tree = _kept_tree(clean_env)
    assert str(tree) in git(repo, "worktree", "list"), "the SIGKILLed run's worktree is still there"
    if checkpointed:
        shown = f"{tree.with_suffix('.json')}\n          worktree {tree}\n"
    else:  # what a kill between making the worktree and the first checkpoint write leaves
        tree.with_suffix(".json").unlink()
        shown = f"before its first checkpoint\n          {tree}\n"
    listed = aethr("checkpoints", cwd=repo)
    assert shown in listed.out, listed.both
    pruned = aethr("checkpoints", "--prune", cwd=repo)
    assert pruned.code == 0 and "1 worktree(s)" in pruned.out, pruned.both
    assert not tree.exists() and not list(tree.parent.glob("*.json"))
    assert "No checkpoints" in aethr("checkpoints", cwd=repo).out
    only_the_checkout(repo)


def test_link_lets_a_step_use_the_projects_virtualenv_and_secrets_are_neither_linked_nor_copied(
    tmp_path: Path, clean_env: Path
) -> None:
    repo = project(tmp_path)
    (repo / ".venv" / "bin").mkdir(parents=True)
    shell_script(repo / ".venv" / "bin" / "tool", "echo from-the-venv")
    (repo / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")  # untracked, not ignored
    run = "'.venv/bin/tool > out.txt; test ! -e id_rsa'"
    # node_modules/ is missing: skipped (git cannot say whether a missing path is an ignored folder)
    write_workflow(repo, ONE_STEP.format(extra="isolate: {link: [.venv, node_modules]}\n", run=run))
    result = aethr("run", "task", "--exec-commands", "--json", cwd=repo)
    assert result.code == 0, result.both
    patch = Path(str(finished(result.out)["patch"])).read_text()
    assert "+from-the-venv" in patch and ".venv" not in patch and "id_rsa" not in patch, patch
    write_workflow(repo, ONE_STEP.format(extra="isolate: {link: [.env]}\n", run="'true'"))
    (repo / ".env").write_text("OPENAI_API_KEY=sk-test-secret\n")
    refused = aethr("run", "task", "--exec-commands", cwd=repo)
    assert refused.code == 2 and "link: .env: not linked" in refused.err, refused.both
    left = [p.name for p in clean_env.glob("aethr/*/*") if p.suffix != ".patch"]
    assert left == [], "a refused run leaves no lock, worktree or checkpoint"
    only_the_checkout(repo)


def test_apply_a_clean_patch_and_a_conflicting_one(tmp_path: Path) -> None:
    repo = project(tmp_path)
    write_workflow(repo, ONE_STEP.format(extra="", run="'echo run >> b.txt'"))
    applied = aethr("run", "task", "--isolate", "--apply", "--exec-commands", cwd=repo)
    assert applied.code == 0, applied.both
    assert (repo / "b.txt").read_text() == "b\nrun\n" and "applied to the checkout" in applied.err
    # The step also edits the checkout itself, as a user would meanwhile: the patch no longer applies.
    write_workflow(repo, ONE_STEP.format(extra="", run=f"'echo run >> b.txt; echo mine > {repo}/b.txt'"))
    conflict = aethr("run", "task", "--isolate", "--apply", "--exec-commands", "--json", cwd=repo)
    assert conflict.code == 4, conflict.both
    assert "does not apply" in conflict.err and "b.txt" in conflict.err
    assert (repo / "b.txt").read_text() == "mine\n", "nothing was applied"
    patch = Path(str(finished(conflict.out)["patch"]))
    assert patch.is_file() and "+run" in patch.read_text()
    only_the_checkout(repo)


def test_branch_commits_the_result_and_leaves_head(tmp_path: Path) -> None:
    repo = project(tmp_path)
    write_workflow(repo, ONE_STEP.format(extra="", run="'echo run >> b.txt'"))
    user_changes(repo)
    before = checkout_state(repo)
    result = aethr("run", "task", "--isolate", "--branch", "aethr/result", "--exec-commands", "--json", cwd=repo)
    assert result.code == 0, result.both
    assert finished(result.out)["branch"] == "aethr/result"
    after = checkout_state(repo)
    assert after.pop("branches") != before.pop("branches")
    assert after == before, "HEAD, the index and the files are as they were"
    assert git(repo, "branch", "--show-current").strip() == "main"
    assert git(repo, "show", "aethr/result:b.txt") == "b\nrun\n"
    own = git(repo, "diff", "--name-only", "aethr/result~1", "aethr/result").split()
    assert own == ["b.txt"], "the last commit holds the run's own changes"
    again = aethr("run", "task", "--isolate", "--branch", "aethr/result", "--exec-commands", cwd=repo)
    assert again.code == 2 and "exists already" in again.err
    only_the_checkout(repo, ("aethr/result", "main"))


def test_a_preview_and_a_mock_run_describe_the_isolation_and_make_nothing(tmp_path: Path, clean_env: Path) -> None:
    repo = project(tmp_path)
    write_workflow(repo, ONE_STEP.format(extra="isolate: true\n", run="'echo run >> b.txt'"))
    shown = aethr("run", "task", "--show-prompt", cwd=repo)
    assert shown.code == 0 and "worktree of its own" in shown.out, shown.both
    mock = aethr("run", "task", cwd=repo)
    assert mock.code == 0 and "makes none" in mock.err, mock.both
    assert not list(clean_env.glob("aethr/*/*.tree"))
    only_the_checkout(repo)
    plain = aethr("run", "task", "--apply", "--no-isolate", cwd=repo)
    assert plain.code == 2 and "--isolate" in plain.err


def test_an_interrupt_keeps_the_worktree_for_the_resume(tmp_path: Path, clean_env: Path) -> None:
    repo, out = project(tmp_path), tmp_path / "marks"
    out.mkdir()
    (repo / "one.yaml").write_text(EDIT_THEN_REVIEW.format(name="one", out=out))
    proc = _start(repo, "--isolate", "-c", "one.yaml")
    wait_until(lambda: (out / "one-ready").exists() or proc.poll() is not None, "the run has edited")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=ceiling(60))
    assert proc.returncode == 130, stderr
    tree = _kept_tree(clean_env)
    assert f"worktree is kept at {tree}" in stderr and (tree / "one.txt").exists()
    assert not (repo / "one.txt").exists()
    (out / "go").touch()
    resumed = aethr("run", "--resume-checkpoint", "last", "--exec-commands", "-c", "one.yaml", cwd=repo)
    assert resumed.code == 0, resumed.both
    assert not tree.exists()
    only_the_checkout(repo)


def test_isolation_needs_a_repository_with_a_commit(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    write_workflow(plain, ONE_STEP.format(extra="", run="'true'"))
    outside = aethr("run", "task", "--isolate", "--exec-commands", cwd=plain)
    assert outside.code == 4 and "is not a git repository" in outside.err, outside.both
    git(plain, "init", "-q")
    empty = aethr("run", "task", "--isolate", "--exec-commands", cwd=plain)
    assert empty.code == 4 and "no commit yet" in empty.err, empty.both
    assert "Traceback" not in outside.err + empty.err


def test_an_edit_made_in_the_second_of_the_last_commit_is_carried_over(tmp_path: Path) -> None:
    """Git rehashes an entry whose file changed in the second its index was written ("racily
    clean"): the index aethr copies must keep that second, or the edit is taken as HEAD's."""
    repo = project(tmp_path)
    write_workflow(repo, ONE_STEP.format(extra="", run=f"'cat a.txt > {tmp_path}/seen; echo run >> b.txt'"))
    index = repo / ".git" / "index"
    while True:  # the commit and the same-size edit within one second (a second may tick between)
        git(repo, "commit", "-qam", "again", "--allow-empty")
        (repo / "a.txt").write_text("A\n")
        if int(index.stat().st_mtime) == int((repo / "a.txt").stat().st_mtime):
            break
        git(repo, "checkout", "-q", "a.txt")
    wait_until(lambda: time.time() >= int(index.stat().st_mtime) + 1.05, "the next second")
    result = aethr("run", "task", "--isolate", "--exec-commands", "--json", cwd=repo)
    assert result.code == 0, result.both
    assert (tmp_path / "seen").read_text() == "A\n", "the step saw the user's edit"
    patch = Path(str(finished(result.out)["patch"]))
    assert "a.txt" not in patch.read_text()
    git(repo, "apply", "--check", str(patch))
