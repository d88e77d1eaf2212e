"""The edges of the run, through the CLI: a bug exits 70 and keeps the checkpoint, git
missing is an answer rather than a crash, an agent's odd events are read, and no
agent outlives a SIGKILLed aethr.

Agent-shaped behaviour here uses a small script in place of the `opencode`
binary (AETHR_OPENCODE_BIN): it is the supervisor and the event reader under
test, not OpenCode; test_opencode.py runs the real binary.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import MOCK_TWO_STEPS, aethr, ceiling, make_repo, shell_script, write_workflow
from tests.test_opencode import _none_left, _processes_running

AGENT = """\
workflow: agent
roles: {implementer: Build.}
models: {implementer: openai:gpt-4o-mini}
steps:
  - id: implement
    role: implementer
    backend: opencode
    timeout: 60
"""
TWO_STEPS = MOCK_TWO_STEPS


def fake_agent(folder: Path, body: str) -> Path:
    return shell_script(folder / "fake-opencode", f"cat > /dev/null\n{body}")


def agent_env(binary: Path) -> dict[str, str]:
    return {"AETHR_LIVE": "1", "AETHR_OPENCODE_BIN": str(binary), "OPENAI_API_KEY": "sk-test-0123456789"}


def test_a_bug_exits_70_with_the_checkpoint_and_a_resume_command(tmp_path: Path) -> None:
    """A fault is injected at start-up (sitecustomize on PYTHONPATH) into step 'review': no real
    input makes aethr crash, and that is the point of the boundary being tested."""
    repo = make_repo(tmp_path / "repo")
    write_workflow(repo, TWO_STEPS)
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "from aethr.backends import mock\n"
        "_real = mock.MockBackend.complete\n"
        "def _complete(self, request, emit):\n"
        "    if request.step_id == 'review':\n"
        "        raise RuntimeError('injected fault')\n"
        "    return _real(self, request, emit)\n"
        "mock.MockBackend.complete = _complete\n"
    )
    result = aethr("run", "task", cwd=repo, env={"PYTHONPATH": f"{inject}{os.pathsep}{os.getcwd()}"})
    assert result.code == 70, result.both
    assert "internal error (this is a bug in aethr" in result.err and "injected fault" in result.err
    assert "Traceback" not in result.err
    resume = next(line for line in result.err.splitlines() if "resume: aethr run --resume-checkpoint" in line)
    saved = json.loads(Path(resume.split()[-1]).read_text())
    assert [r["step_id"] for r in saved["results"]] == ["plan"], "the finished step is kept"
    again = aethr("run", "--resume-checkpoint", resume.split()[-1], cwd=repo)
    assert again.code == 0, again.both
    assert "── plan ·" not in again.out


def test_auth_status_without_git_is_an_answer(tmp_path: Path) -> None:
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    result = aethr("auth", "status", cwd=tmp_path, env={"PATH": str(empty_path)})
    assert result.code == 0, result.both
    assert "OPENAI_API_KEY" in result.out and "missing" in result.out


def test_a_run_without_git_installed_says_so(tmp_path: Path) -> None:
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    write_workflow(tmp_path, TWO_STEPS.replace("    role: planner\n", "    role: planner\n    context: [git_diff]\n"))
    result = aethr("run", "task", "--show-prompt", cwd=tmp_path, env={"PATH": str(empty_path)})
    assert result.code == 0, result.both
    assert "[no diff: git is not installed]" in result.out


def test_an_error_event_whose_data_is_a_string_fails_the_step_cleanly(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    write_workflow(repo, AGENT)
    events = [
        {"type": "step_finish", "part": {"tokens": {"input": 30, "output": 4}, "cost": 0.002}},
        {"type": "error", "error": {"name": "UnknownError", "data": "the provider said no"}},
    ]
    lines = "\n".join(f"echo '{json.dumps(e)}'" for e in events)
    result = aethr("run", "task", "--json", cwd=repo, env=agent_env(fake_agent(tmp_path, lines)))
    assert result.code == 1, result.both
    assert "OpenCode reported an error: the provider said no" in result.err
    failed, final = (json.loads(line) for line in result.out.splitlines()[-2:])
    assert (failed["event"], final["event"], final["exit_code"]) == ("run_failed", "run_finished", 1)
    assert final["usage"]["cost_usd"] == 0.002, "what the agent spent before failing is counted"


def test_an_error_event_that_is_a_bare_string(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    write_workflow(repo, AGENT)
    body = 'echo \'{"type": "error", "error": "bare message"}\''
    result = aethr("run", "task", cwd=repo, env=agent_env(fake_agent(tmp_path, body)))
    assert result.code == 1, result.both
    assert "OpenCode reported an error: bare message" in result.err


def test_an_agent_does_not_outlive_a_sigkilled_aethr(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    write_workflow(repo, AGENT)
    marker = "4711.5"
    binary = fake_agent(tmp_path, f"exec sleep {marker}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aethr", "run", "task"],
        cwd=repo,
        env={**os.environ, **agent_env(binary)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + ceiling(300)
    while not _processes_running("sleep", marker):
        assert time.monotonic() < deadline and proc.poll() is None, "the agent never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=ceiling(60))
    assert _none_left(("sleep", marker)) == [], "the agent died with aethr (PR_SET_PDEATHSIG)"
