"""`run:` steps through the CLI, with real commands on real repositories: failures, loops
until the tests pass, no progress, timeouts, big output, modes, durability and keys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import aethr, ceiling, make_repo, write_workflow
from tests.fake_openai import FakeOpenAI
from tests.test_opencode import _none_left, _processes_running, needs_opencode, opencode_env, write_call
from tests.test_resume import checkpoints, resume_path

REVIEW_AFTER = """\
workflow: checked
roles: {{reviewer: Review.}}
steps:
  - id: test
    run: {run}
    allow_failure: {allow}
  - id: review
    role: reviewer
    context: ['step:test']
"""


@pytest.mark.parametrize("allow", [False, True])
def test_a_failing_command(repo: Path, clean_env: Path, allow: bool) -> None:
    run = '\'echo collecting; echo "E   assert 41 == 42"; echo "1 failed in 0.02s"; exit 1\''
    write_workflow(repo, REVIEW_AFTER.format(run=run, allow=str(allow).lower()))
    result = aethr("run", "task", "--exec-commands", cwd=repo)
    if not allow:
        assert result.code == 1, result.both
        assert "`echo collecting;" in result.err and "[exit 1 · failed" in result.err
        assert "| 1 failed in 0.02s" in result.err, "the last output lines are shown"
        assert "resume:" in result.err and len(checkpoints(clean_env)) == 1
        return
    assert result.code == 0, result.both
    prompt = next(
        json.loads(line)
        for line in aethr("run", "task", "--exec-commands", "--json", cwd=repo).out.splitlines()
        if '"prompt_built"' in line and '"review"' in line
    )["prompt"]
    assert "[exit 1 · failed" in prompt and "E   assert 41 == 42" in prompt


LOOP_WITH_OPENCODE = """\
workflow: fix-until-green
roles: {implementer: Fix it.}
models: {implementer: fake:test-model}
steps:
  - id: fix
    role: implementer
    backend: opencode
    unsafe_permissions: true
  - id: test
    run: [python3, check.py]
    repeat: {back_to: fix, until_command_passes: true, max_iterations: 3}
"""


@needs_opencode
def test_a_loop_fixes_the_code_until_the_real_test_passes(tmp_path: Path, server: FakeOpenAI) -> None:
    repo = make_repo(tmp_path / "repo", {"answer.py": "ANSWER = 41\n", "check.py": CHECK})
    write_workflow(repo, LOOP_WITH_OPENCODE)
    server.script = [
        {"kind": "stream", "text": "Let me look first."},
        write_call(repo / "answer.py", "ANSWER = 42\n"),
        {"kind": "stream", "text": "Fixed the answer."},
    ]
    result = aethr("run", "make the test pass", cwd=repo, env=opencode_env(tmp_path, server))
    assert result.code == 0, result.both
    assert (repo / "answer.py").read_text() == "ANSWER = 42\n"
    assert "loop fix..test pass 1/3: the command failed → again" in result.err
    assert "pass 2/3: the command passed → done" in result.err
    second_fix = server.prompts()[1]
    assert "FAILED: expected 42, got 41" in second_fix, "the second fix saw the first test's failing output"


CHECK = """\
from answer import ANSWER
if ANSWER != 42:
    raise SystemExit(f'FAILED: expected 42, got {ANSWER}')
print('ok')
"""
STUCK = """\
workflow: stuck
roles: {{implementer: Fix it.}}
steps:
  - id: fix
    role: implementer
  - id: test
    run: {run}
    repeat: {{back_to: fix, until_command_passes: true, max_iterations: 5}}
"""


def test_a_loop_that_makes_no_progress_stops_at_pass_2(repo: Path) -> None:
    write_workflow(repo, STUCK.format(run="'echo \"1 failed in 0.$RANDOM s at 0x7f$RANDOM\"; exit 1'"))
    result = aethr("run", "task", "--exec-commands", cwd=repo)
    assert result.code == 5, result.both
    assert "made no progress at pass 2" in result.err
    assert "pass 3/5" not in result.err


def test_a_command_that_cannot_run_exits_4_after_one_attempt(repo: Path) -> None:
    write_workflow(repo, STUCK.format(run="no-such-command-aethr-xyz"))
    result = aethr("run", "task", "--exec-commands", cwd=repo)
    assert result.code == 4, result.both
    assert "cannot run `no-such-command-aethr-xyz`: the command was not found" in result.err
    assert "aethr: loop" not in result.err, "never looped"


def test_commands_outside_a_git_repository_stop_before_the_first_step(tmp_path: Path, clean_env: Path) -> None:
    """A run records each step's changes with git: outside a repository it says so before
    anything runs, and leaves no checkpoint (it was not a run that failed mid-way)."""
    folder = tmp_path / "plain"
    folder.mkdir()
    write_workflow(folder, "workflow: w\nroles: {r: x}\nsteps:\n  - {id: a, run: 'touch ran-a'}\n")
    result = aethr("run", "task", "--exec-commands", cwd=folder)
    assert result.code == 4, result.both
    assert "step 'a' runs a command, which may change files" in result.err
    assert f"{folder} is not a git repository" in result.err and "git init" in result.err
    assert not (folder / "ran-a").exists() and checkpoints(clean_env) == []
    assert "resume" not in result.err
    mock = aethr("run", "task", cwd=folder)  # in mock mode no command runs: nothing to record
    assert mock.code == 0, mock.both


def test_a_hanging_command_and_its_grandchild_end_at_the_timeout(repo: Path) -> None:
    marker = "4848.5"
    run = f"'(sleep {marker}) & echo started; sleep 600'"
    write_workflow(repo, f"workflow: h\nroles: {{}}\nsteps:\n  - id: hang\n    run: {run}\n    timeout: 2\n")
    result = aethr("run", "task", "--exec-commands", cwd=repo)
    assert result.code == 1, result.both
    assert "timed out after 2s" in result.err
    assert _none_left(("sleep", marker), ("sleep", "600")) == [], "no process of the command is left"


def test_200000_lines_of_output_keep_the_head_and_the_tail(repo: Path) -> None:
    run = "'for i in $(seq 1 200000); do echo \"line $i of the test output\"; done'"
    write_workflow(repo, REVIEW_AFTER.format(run=run, allow="false"))
    result = aethr("run", "task", "--exec-commands", "--json", cwd=repo)
    assert result.code == 0, result.both
    events = [json.loads(line) for line in result.out.splitlines()]
    prompt = next(e for e in events if e["event"] == "prompt_built" and e["step_id"] == "review")["prompt"]
    assert "line 1 of the test output" in prompt and "line 200000 of the test output" in prompt
    assert "line(s) of output cut here" in prompt
    assert len(prompt) < 40_000, "within the step's output cap"


def test_show_prompt_and_mock_mode_run_nothing_and_exec_commands_does(repo: Path) -> None:
    write_workflow(repo, REVIEW_AFTER.format(run="'touch ran.txt'", allow="false"))
    preview = aethr("run", "task", "--show-prompt", cwd=repo)
    assert "$ touch ran.txt\n(cwd: ., timeout: 600s, env added: none)" in preview.out
    assert aethr("run", "task", cwd=repo).code == 0
    assert not (repo / "ran.txt").exists(), "neither the preview nor a mock run ran it"
    assert aethr("run", "task", "--exec-commands", cwd=repo).code == 0
    assert (repo / "ran.txt").exists()


def test_a_finished_command_is_not_run_again_after_sigkill(repo: Path, clean_env: Path) -> None:
    marker = f"61.{os.getpid()}"  # this test's own sleeper, never another test's
    text = (
        "workflow: once\nroles: {}\nsteps:\n"
        "  - id: count\n    run: 'echo ran >> count.log'\n"
        "  - id: wait\n    run: 'sleep ${WAIT_SECONDS}'\n"
    )
    write_workflow(repo, text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aethr", "run", "task", "--exec-commands"],
        cwd=repo,
        env={**os.environ, "WAIT_SECONDS": marker},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + ceiling(300)
    while not _processes_running("sleep", marker):
        assert time.monotonic() < deadline, "the second step never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=ceiling(60))
    for left in _processes_running("sleep", marker):  # the shell's child outlives a SIGKILLed aethr
        os.kill(int(left.split(":")[0]), signal.SIGKILL)
    write_workflow(repo, text)  # unchanged: the digest matches
    resumed = subprocess.run(
        [sys.executable, "-m", "aethr", "run", "--resume-checkpoint", "last", "--exec-commands"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=ceiling(120),
        input="",
        env={**os.environ, "WAIT_SECONDS": "0"},  # the unfinished step runs again, quickly
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "── count ·" not in resumed.stdout
    assert (repo / "count.log").read_text() == "ran\n", "the finished command step did not run again"


def test_keys_from_dotenv_stay_out_of_commands_and_echoed_keys_are_masked(repo: Path, clean_env: Path) -> None:
    (repo / ".env").write_text("OPENAI_API_KEY=sk-from-dotenv-0123456789\n")
    run = '\'echo "dotenv=[$OPENAI_API_KEY]"; echo "env=[$MY_TOKEN]"; exit 1\''
    write_workflow(repo, REVIEW_AFTER.format(run=run, allow="false"))
    result = aethr("run", "task", "--exec-commands", cwd=repo, env={"MY_TOKEN": "tok-secret-0123456789"})
    assert result.code == 1
    assert "dotenv=[]" in result.out, "a key aethr loaded from .env is not passed on"
    assert "env=[****]" in result.out and "tok-secret-0123456789" not in result.both
    saved = Path(resume_path(result.err))
    assert "tok-secret-0123456789" not in saved.read_text()


@pytest.mark.parametrize(
    ("step", "where", "message"),
    [
        ("  - {id: t, run: pytest, role: r}\n", ":5:26", "runs a command: `role` does not go with `run:`"),
        (
            "  - {id: t, role: r, repeat: {back_to: t, until_command_passes: true}}\n",
            ":5:65",
            "until_command_passes needs a `run:` step",
        ),
        ("  - {id: t, role: r, context: ['step:later']}\n  - {id: later, run: pytest}\n", ":5:32", "is a later step"),
    ],
)
def test_command_step_validation(tmp_path: Path, step: str, where: str, message: str) -> None:
    write_workflow(tmp_path, f"workflow: v\nroles: {{r: go}}\nsteps:\n{step}".replace("steps:\n", "\nsteps:\n"))
    result = aethr("validate", cwd=tmp_path)
    assert result.code == 3, result.both
    assert f".aethr.yaml{where}" in result.err and message in result.err, result.err


def test_a_live_run_of_commands_only_never_imports_litellm(repo: Path) -> None:
    write_workflow(repo, "workflow: c\nroles: {}\nsteps:\n  - {id: a, run: 'echo hi'}\n")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "aethr", "run", "task"],
        cwd=repo,
        env={**os.environ, "AETHR_LIVE": "1"},
        capture_output=True,
        text=True,
        timeout=ceiling(120),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| litellm" not in proc.stderr and "aethr.backends.command" in proc.stderr
