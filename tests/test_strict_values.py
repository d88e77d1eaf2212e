"""Parameter values are strict: finite ASCII numbers, no stray whitespace, each -p once; a
bool's message says what it takes; a choice asked on a terminal lists the choices and asks
again after a typo (on a real pty)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import aethr, ceiling, write_workflow
from tests.test_params import TYPED


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("ratio=nan", "is not a finite number"),
        ("ratio=inf", "is not a finite number"),
        ("ratio=-infinity", "is not a finite number"),
        ("ratio=1e999", "is not a finite number"),
        ("count=١٢", "is not an integer (ASCII digits)"),
        ("count=1_0", "is not an integer (ASCII digits)"),
        ("count= 4", "has leading or trailing whitespace"),
        ("tone=calm ", "has leading or trailing whitespace"),
        ("name= world", "has leading or trailing whitespace"),
        ("loud=maybe", "is not a bool: give true/false, yes/no, on/off or 1/0"),
    ],
)
def test_a_value_that_is_not_strictly_of_its_type_is_exit_2(repo: Path, value: str, said: str) -> None:
    write_workflow(repo, TYPED)
    result = aethr("run", "task", "-p", value, "--show-prompt", cwd=repo)
    assert result.code == 2, result.both
    assert said in result.err and "Traceback" not in result.err


def test_the_values_a_bool_takes_are_taken(repo: Path) -> None:
    write_workflow(repo, TYPED)
    for given, shown in (("yes", "true"), ("off", "false"), ("1", "true")):
        result = aethr("run", "task", "-p", f"loud={given}", "-p", "ratio=-0.25", "--show-prompt", cwd=repo)
        assert result.code == 0 and f"world 3 -0.25 {shown} calm" in result.out, result.both


def test_a_repeated_parameter_is_exit_2(repo: Path) -> None:
    write_workflow(repo, TYPED)
    result = aethr("run", "task", "-p", "count=2", "-p", "count=3", "--show-prompt", cwd=repo)
    assert result.code == 2, result.both
    assert "-p count is given twice ('2' and '3')" in result.err


def test_a_choice_asked_on_a_terminal_lists_the_choices_and_asks_again_after_a_typo(repo: Path) -> None:
    write_workflow(repo, TYPED.replace("default: calm", "required: true"))
    controller, child = pty.openpty()
    command = [sys.executable, "-m", "aethr", "run", "task", "--show-prompt"]
    with subprocess.Popen(
        command, cwd=repo, stdin=child, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        os.close(child)
        os.write(controller, b"crut\ncurt\n")  # a typo, then the right word
        out, err = proc.communicate(timeout=ceiling(120))
    os.close(controller)
    assert proc.returncode == 0, out + err
    question = "aethr: parameter tone (one of calm, curt: the tone): "
    assert err.count(question) == 2, err
    assert "aethr: tone: 'crut' is not one of calm, curt; try again" in err
    assert "tone='curt' (asked)" in out and "world 3 0.5 false curt README.md" in out
