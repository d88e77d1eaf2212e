"""The resume command a failed run prints works when followed as printed, by a shell.

Each run here fails part-way and leaves a checkpoint; the test then runs the printed
`resume:` line literally (`sh -c LINE`, with `aethr` on PATH) and checks that it
finished the same run: with `-c FILE`, `--preset`, `--context`, `--exec-commands`, and
after an agent step that failed having edited files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MOCK_TWO_STEPS, Result, aethr, git, make_repo, shell_script, write_workflow
from tests.fake_openai import FakeOpenAI


def printed_resume(result: Result) -> str:
    lines = [ln for ln in result.err.splitlines() if ln.startswith("  resume: ")]
    assert len(lines) == 1, result.both
    return lines[0].removeprefix("  resume: ")


def follow(line: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """Run the printed line as a user pasting it would: one shell command, `aethr` on PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    proc = subprocess.run(
        ["/bin/sh", "-c", line],
        cwd=cwd,
        env={**os.environ, **(env or {}), "PATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def one_reply(tmp_path: Path, count: int = 1) -> dict[str, str]:
    """The mock's replies run out after `count` steps: the run fails at the next one."""
    path = tmp_path / "replies.json"
    path.write_text(json.dumps(["a reply"] * count))
    return {"AETHR_MOCK_RESPONSES": str(path)}


def test_with_c_file(repo: Path, tmp_path: Path) -> None:
    (repo / "flows").mkdir()
    (repo / "flows" / "two.yaml").write_text(MOCK_TWO_STEPS)
    env = one_reply(tmp_path)
    failed = aethr("run", "task", "-c", "flows/two.yaml", cwd=repo, env=env)
    assert failed.code == 1 and "all were used" in failed.err, failed.both
    line = printed_resume(failed)
    assert f"-c {repo / 'flows' / 'two.yaml'}" in line
    done = follow(line, repo, env)
    assert done.code == 0, done.both
    assert "── review" in done.out and "── plan" not in done.out, "only the failed step runs again"


def test_with_a_preset(repo: Path, tmp_path: Path) -> None:
    env = one_reply(tmp_path, 2)
    failed = aethr("run", "task", "--preset", "add-tests", cwd=repo, env=env)
    assert failed.code == 1, failed.both
    line = printed_resume(failed)
    assert "--preset add-tests" in line
    done = follow(line, repo, env)
    assert done.code == 0, done.both
    assert "── review-tests" in done.out and "── write-tests" not in done.out


def test_with_context(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, MOCK_TWO_STEPS)
    env = one_reply(tmp_path)
    failed = aethr("run", "task", "--context", "file:README.md", "--context", "glob:*.md", cwd=repo, env=env)
    assert failed.code == 1, failed.both
    line = printed_resume(failed)
    assert "--context file:README.md --context 'glob:*.md'" in line, "quoted so that the shell leaves the glob alone"
    done = follow(line, repo, env)
    assert done.code == 0, done.both


COMMAND = """\
workflow: checked
roles: {{reviewer: Review.}}
steps:
  - id: test
    run: 'if [ -f {first} ]; then touch {second}; else touch {first}; exit 1; fi'
  - id: review
    role: reviewer
"""


def test_with_exec_commands(repo: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "ran-once", tmp_path / "ran-twice"
    write_workflow(repo, COMMAND.format(first=first, second=second))
    failed = aethr("run", "task", "--exec-commands", "--max-cost", "0.5", cwd=repo)
    assert failed.code == 1 and first.exists(), failed.both
    line = printed_resume(failed)
    assert "--exec-commands" in line and "--max-cost 0.5" in line
    done = follow(line, repo)
    assert done.code == 0, done.both
    assert second.exists(), "the failed command ran again, for real: it was not passed unrun"


# Claude Code's stand-in: the first run edits a.txt and dies before its final result; the
# second adds to b.txt and finishes. Its prompt arrives on stdin.
AGENT = """\
cat >/dev/null
if [ -f {marker} ]; then
  echo "second attempt" >> b.txt
  echo '{{"type": "result", "subtype": "success", "result": "done"}}'
  exit 0
fi
touch {marker}
echo "first attempt" >> a.txt
exit 3
"""

AGENT_FLOW = """\
workflow: agent
roles: {implementer: Implement it., reviewer: Review it.}
models: {implementer: 'anthropic:claude-sonnet-4-5', reviewer: 'openai:gpt-4o-mini'}
steps:
  - id: plan
    role: reviewer
  - id: implement
    role: implementer
    backend: claude
  - id: review
    role: reviewer
    context: [latest_diff]
"""


def test_after_an_agent_step_that_failed_mid_edit(tmp_path: Path, server: FakeOpenAI) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n", "b.txt": "b\n"})
    write_workflow(repo, AGENT_FLOW)
    agent = shell_script(tmp_path / "claude", AGENT.format(marker=tmp_path / "attempted"))
    env = {
        "AETHR_LIVE": "1",
        "AETHR_CLAUDE_BIN": str(agent),
        "ANTHROPIC_API_KEY": "sk-ant-test-0123456789",
        "OPENAI_API_KEY": "sk-test-0123456789",
        "OPENAI_API_BASE": server.base_url,
    }
    server.script = [{"kind": "stream", "text": "the plan"}]
    failed = aethr("run", "task", cwd=repo, env=env)
    assert failed.code == 1, failed.both
    assert "its edits so far stay in the working tree: a.txt" in failed.err, "the edits are named"
    line = printed_resume(failed)
    server.requests.clear()
    server.script = [{"kind": "stream", "text": "Looks right.\nReview status: pass"}]
    done = follow(line, repo, env)
    assert done.code == 0, done.both
    assert "repository changed" not in done.err
    assert (repo / "a.txt").read_text() == "a\nfirst attempt\n" and "second attempt" in (repo / "b.txt").read_text()
    review = server.requests[-1]["messages"][0]["content"]
    assert "+first attempt" in review and "+second attempt" in review, "latest_diff holds both attempts"


ISOLATED = """\
workflow: iso
roles: {{reviewer: Review.}}
steps:
  - id: make
    run: 'if [ -f {first} ]; then echo made > out.txt; else touch {first}; exit 1; fi'
"""


@pytest.mark.parametrize("handback", [("--apply",), ("--branch", "res/b")], ids=["apply", "branch"])
def test_an_isolated_run_hands_back_as_asked_after_the_resume(
    repo: Path, tmp_path: Path, handback: tuple[str, ...]
) -> None:
    write_workflow(repo, ISOLATED.format(first=tmp_path / "failed-once"))
    failed = aethr("run", "task", "--isolate", "--exec-commands", *handback, cwd=repo)
    assert failed.code == 1, failed.both
    line = printed_resume(failed)
    assert " ".join(handback) in line, line
    done = follow(line, repo)
    assert done.code == 0, done.both
    if handback == ("--apply",):
        assert (repo / "out.txt").read_text() == "made\n", "the resumed run's result was applied"
    else:
        assert git(repo, "show", "res/b:out.txt") == "made\n", "and committed on the branch asked for"
        assert not (repo / "out.txt").exists()
