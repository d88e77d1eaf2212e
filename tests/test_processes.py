"""The child-process layer through the CLI: pipes that never block, deadlines that hold, a grace
for the whole tree, and nothing that outlives aethr, SIGKILL included.

Agents are stand-in scripts (AETHR_OPENCODE_BIN); the real Codex case is in test_agents.py.
Every process a test starts carries a marker in its command line, unique to the test, so the
checks see that test's processes only. Nothing here times anything: waits poll for an event
under a ceiling that only a real hang reaches.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import aethr, ceiling, git, make_repo, shell_script, write_workflow

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

CEILING = 60.0  # seconds, before AETHR_TEST_SLOWDOWN: only a hang reaches it
AGENT = """\
workflow: agent
roles: {{implementer: Build.}}
models: {{implementer: openai:gpt-4o-mini}}
steps:
  - id: implement
    role: implementer
    backend: opencode
    timeout: {timeout}
"""


def marker() -> str:
    """Digits unique to one test, usable as a sleep's fraction: `sleep 300.<marker>`."""
    return str(uuid.uuid4().int)[:12]


def running(mark: str) -> list[str]:
    """Processes whose command line holds `mark`, by /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if mark in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline}")
    return found


def sleeping(mark: str) -> int:
    """How many `sleep` processes carry `mark`."""
    return sum(1 for found in running(mark) if found.split(": ", 1)[1].startswith("sleep "))


def left_after(mark: str) -> list[str]:
    """Poll until no process holds `mark`, or the ceiling; what is left then."""
    deadline = time.monotonic() + ceiling(CEILING)
    while (left := running(mark)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def wait_for(what: str, ready: object, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `ready()` until it is true; fail if the ceiling passes or aethr ends first."""
    deadline = time.monotonic() + ceiling(CEILING)
    while not ready():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} never happened"
        assert proc is None or proc.poll() is None, f"aethr ended before {what}"
        time.sleep(0.05)


def start_aethr(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aethr", "run", "task", *args],
        cwd=repo,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def sigkill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=ceiling(CEILING))


def agent_env(binary: Path) -> dict[str, str]:
    return {"AETHR_LIVE": "1", "AETHR_OPENCODE_BIN": str(binary), "OPENAI_API_KEY": "sk-test-0123456789"}


def test_git_diff_of_1000_files_under_autocrlf_finishes(tmp_path: Path) -> None:
    """git writes a warning per file to stderr (about 97 KB) while aethr reads the diff."""
    repo = make_repo(tmp_path / "repo", {f"src/f{i:04}.txt": f"line {i}\n" for i in range(1000)})
    git(repo, "config", "core.autocrlf", "true")
    for i in range(1000):
        (repo / f"src/f{i:04}.txt").write_text(f"line {i}\nchanged {i}\n")
    workflow = "workflow: d\nroles: {r: Review.}\nsteps:\n  - {id: r, role: r, context: [git_diff]}\n"
    write_workflow(repo, workflow)
    result = aethr("run", "task", "--show-prompt", cwd=repo, timeout=CEILING * 2)
    assert result.code == 0, result.err[-2000:]
    assert "+changed 0" in result.out, "the diff reached the prompt"


def test_an_agent_that_reads_its_prompt_late_is_stopped_by_its_timeout(tmp_path: Path, repo: Path) -> None:
    """A 100 KB prompt fills the pipe; the agent reads it only after 10 s. The deadline is armed
    before the first byte is written, so `timeout: 3` stops it, with the process it started."""
    mark = marker()
    body = (
        f"setsid sleep 300.{mark} </dev/null >/dev/null 2>&1 &\n"
        f"sleep 10.{mark}\n"
        "cat > /dev/null\n"
        'echo \'{"type": "text", "part": {"text": "read it late"}}\'\n'
    )
    binary = shell_script(tmp_path / f"agent-{mark}", body)
    write_workflow(repo, AGENT.format(timeout=3))
    result = aethr("run", "x" * 100_000, cwd=repo, env=agent_env(binary), timeout=CEILING * 2)
    assert result.code == 1, result.both[-2000:]
    assert "did not finish within 3s and was stopped" in result.err, result.err[-2000:]
    assert left_after(mark) == [], "nothing the agent started is left"


def test_ctrl_c_while_the_prompt_is_still_being_written_ends_the_agents_tree(tmp_path: Path, repo: Path) -> None:
    """The caller holds the child before the first byte is written, so its clean-up covers the write."""
    mark = marker()
    body = f"setsid sleep 300.{mark} </dev/null >/dev/null 2>&1 &\nsleep 100.{mark}\ncat > /dev/null\n"
    binary = shell_script(tmp_path / f"agent-{mark}", body)
    write_workflow(repo, AGENT.format(timeout=600))
    proc = subprocess.Popen(
        [sys.executable, "-m", "aethr", "run", "x" * 100_000],
        cwd=repo,
        env={**os.environ, **agent_env(binary)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for("the agent's start", lambda: sleeping(mark) == 2, proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=ceiling(CEILING)) == 130
    assert left_after(mark) == [], "nothing the agent started is left"


def test_a_command_that_closes_its_output_and_runs_on_is_a_timeout(repo: Path) -> None:
    mark = marker()
    run = f"echo started; exec >/dev/null 2>&1; sleep 20.{mark}"
    write_workflow(repo, f'workflow: c\nroles: {{}}\nsteps:\n  - id: c\n    run: "{run}"\n    timeout: 2\n')
    result = aethr("run", "task", "--exec-commands", cwd=repo, timeout=CEILING)
    assert result.code == 1, result.both
    assert "started" in result.out
    assert "timed out after 2s and was stopped" in result.err, result.err
    assert left_after(mark) == []


def test_a_multi_line_command_that_times_out_says_so(repo: Path) -> None:
    mark = marker()
    run = f'    run: |\n      e=EARLY; echo "$e"\n      sleep 20.{mark}\n'
    write_workflow(repo, f"workflow: c\nroles: {{}}\nsteps:\n  - id: c\n{run}    timeout: 2\n")
    result = aethr("run", "task", "--exec-commands", cwd=repo, timeout=CEILING)
    assert result.code == 1, result.both
    assert "step 'c': `e=EARLY; echo \"$e\" …` timed out after 2s and was stopped" in result.err, result.err
    assert "failed" not in result.err.split("hint:")[0], "a timeout, not a failure with a line of the command"
    assert "raise the step's `timeout`" in result.err
    assert left_after(mark) == []


CLEAN_UP = """\
import pathlib, signal, sys, time
here = pathlib.Path(sys.argv[1])
def clean(*_):
    time.sleep(0.5)  # a test database shutting down
    (here / "cleaned").write_text("done")
    sys.exit(0)
signal.signal(signal.SIGTERM, clean)
(here / "ready").write_text("")
while True:
    time.sleep(1)
"""


def test_a_grandchild_under_sh_gets_its_grace_to_clean_up(repo: Path, tmp_path: Path) -> None:
    """TERM reaches the whole tree, and the grace lasts until all of it is gone: the shell ends
    at once, its child needs half a second."""
    mark = marker()
    (tmp_path / "clean_up.py").write_text(CLEAN_UP)
    run = f"{sys.executable} {tmp_path / 'clean_up.py'} {tmp_path} {mark}; echo after"
    write_workflow(repo, f"workflow: g\nroles: {{}}\nsteps:\n  - id: g\n    run: '{run}'\n")
    proc = start_aethr(repo, "--exec-commands")
    wait_for("the grandchild's start", (tmp_path / "ready").exists, proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=ceiling(CEILING)) == 130
    assert (tmp_path / "cleaned").read_text() == "done", "the grandchild finished cleaning up"
    assert left_after(mark) == []


def test_sigkill_of_aethr_leaves_no_process_of_a_command(repo: Path) -> None:
    """A background job, one in a session of its own (`setsid`), and the shell's own child."""
    mark = marker()
    run = f"sleep 300.{mark} & setsid sleep 301.{mark} & sleep 302.{mark}"
    write_workflow(repo, f'workflow: k\nroles: {{}}\nsteps:\n  - id: k\n    run: "{run}"\n')
    proc = start_aethr(repo, "--exec-commands")
    wait_for("all three sleeps", lambda: sleeping(mark) == 3, proc)
    sigkill(proc)
    assert left_after(mark) == [], "every process of the command ended with aethr"


def test_sigkill_of_aethr_leaves_no_process_of_a_launched_agent(tmp_path: Path, repo: Path) -> None:
    """A launcher script (as `codex` is a node launcher) that starts the real agent as its child,
    which starts a tool in a session of its own (as OpenCode does)."""
    mark = marker()
    real = shell_script(tmp_path / f"real-agent-{mark}", f"setsid sleep 301.{mark} &\nsleep 300.{mark}")
    launcher = shell_script(tmp_path / f"launcher-{mark}", f'"{real}" "$@"\necho launcher-done')
    write_workflow(repo, AGENT.format(timeout=600))
    proc = start_aethr(repo, env=agent_env(launcher))
    wait_for("the agent and its tool", lambda: sleeping(mark) == 2, proc)
    sigkill(proc)
    assert left_after(mark) == [], "the launcher, the agent and its tool ended with aethr"
