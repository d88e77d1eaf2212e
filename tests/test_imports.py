"""Commands that call no model never import litellm (it costs seconds), nor jsonschema."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_repo


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
    # -X importtime makes the interpreter itself list every module it imports, on stderr.
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "aethr", *args], cwd=project, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "aethr.cli" in imported, "the probe sees aethr's own imports"
    assert not [name for name in imported if name.split(".")[0] == "litellm"]
    # Only a step with an output schema, or a findings answer, pays for the JSON Schema library.
    assert not [name for name in imported if name.split(".")[0] == "jsonschema"]


def test_a_live_run_does_import_litellm(tmp_path: Path) -> None:
    """The probe above can tell: a live run's import list has litellm in it."""
    project = make_repo(tmp_path / "p")
    subprocess.run([sys.executable, "-m", "aethr", "init", "custom"], cwd=project, check=True, capture_output=True)
    env = {**os.environ, "AETHR_LIVE": "1"}  # no key: stops at the key check, after importing litellm
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "aethr", "run", "task"],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 4
    assert "import time:" in proc.stderr and "| litellm" in proc.stderr
