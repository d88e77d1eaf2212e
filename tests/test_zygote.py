"""The suite's forked CLI calls (tests/zygote.py) give what a fresh `python -m aethr` gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import conftest
from tests.conftest import MOCK_TWO_STEPS, aethr, write_workflow


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["validate"],
        ["run", "the task", "--show-prompt"],
        ["run", "--no-such-option"],
        ["init", "no-such-preset"],
    ],
    ids=lambda a: " ".join(a),
)
def test_a_forked_call_prints_and_exits_as_a_fresh_interpreter(repo: Path, args: list[str]) -> None:
    if conftest.FRESH:
        pytest.skip("AETHR_TEST_FRESH=1: every call is a fresh interpreter")
    write_workflow(repo, MOCK_TWO_STEPS)
    forked = aethr(*args, cwd=repo, env={"COLUMNS": "100"})
    fresh = subprocess.run(
        [sys.executable, "-m", "aethr", *args],
        cwd=repo,
        env={**os.environ, "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=conftest.ceiling(300),
    )
    assert (forked.code, forked.out, forked.err) == (fresh.returncode, fresh.stdout, fresh.stderr)


HANGS = """\
workflow: hangs
steps:
  - id: wait
    run: sleep 600
"""


def test_a_hung_call_is_killed_at_its_ceiling_and_leaves_nothing(repo: Path) -> None:
    write_workflow(repo, HANGS)
    with pytest.raises(subprocess.TimeoutExpired):
        aethr("run", "task", "--exec-commands", cwd=repo, timeout=2)
    # aethr was SIGKILLed: its reaper ends the command it ran.
    conftest.wait_until(lambda: not conftest.processes_in(repo), "the command ended with aethr", 60)


def test_a_large_task_and_environment_reach_the_child(repo: Path) -> None:
    """Each below the kernel's 128 KiB for one argument or variable, together above what one
    socket message can carry."""
    write_workflow(repo, MOCK_TWO_STEPS)
    task = "é" * 60_000
    result = aethr("run", task, "--show-prompt", cwd=repo, env={"AETHR_BIG": "x" * 120_000})
    assert result.code == 0, result.both
    assert task in result.out
