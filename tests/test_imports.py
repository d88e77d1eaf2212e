"""Commands that call no model never import litellm (it costs seconds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_repo

PROBE = """
import runpy, sys
sys.argv = ["aethr", *sys.argv[1:]]
try:
    runpy.run_module("aethr", run_name="__main__")
except SystemExit as exc:
    code = exc.code
sys.stderr.write("LITELLM_IMPORTED=%s EXIT=%s\\n" % ("litellm" in sys.modules, code))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["version"],
        ["init", "plan-implement-review"],
        ["validate"],
        ["run", "a task", "--show-prompt"],
        ["run", "a task"],
        ["run", "a task", "--json"],
    ],
    ids=lambda a: " ".join(a),
)
def test_no_litellm_import(tmp_path: Path, args: list[str]) -> None:
    project = make_repo(tmp_path / "p")
    if args[0] != "init":
        subprocess.run(
            [sys.executable, "-m", "aethr", "init", "plan-implement-review"],
            cwd=project,
            check=True,
            capture_output=True,
        )
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=project, capture_output=True, text=True)
    assert "LITELLM_IMPORTED=False EXIT=0" in proc.stderr, proc.stderr
