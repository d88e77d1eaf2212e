"""Commands that call no model never import litellm (it costs seconds), nor jsonschema."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aethr import pricing
from tests.conftest import MOCK_TWO_STEPS, make_repo, write_workflow


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


# An audit hook sees every file the interpreter opens: the probe for what a run reads.
_OPENS = (
    "import runpy, sys\n"
    "sys.addaudithook(lambda event, args: event == 'open' and print('OPEN', args[0], file=sys.stderr))\n"
    "sys.argv = ['aethr', *sys.argv[1:]]\n"
    "runpy.run_module('aethr', run_name='__main__')\n"
)


def _opened(project: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _OPENS, *args],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [line.split(" ", 1)[1] for line in proc.stderr.splitlines() if line.startswith("OPEN ")]


def test_a_mock_run_never_reads_the_price_table_and_an_estimate_does(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "p")
    write_workflow(project, MOCK_TWO_STEPS.replace("steps:", "models: {planner: 'openai:gpt-4o-mini'}\nsteps:"))
    mock = _opened(project, "run", "task")
    assert any(path.endswith(".aethr.yaml") for path in mock), "the probe sees what aethr opens"
    assert not [path for path in mock if path.endswith(pricing.TABLE_NAME)]
    assert [path for path in _opened(project, "run", "task", "--estimate") if path.endswith(pricing.TABLE_NAME)]


def test_one_entry_read_alone_is_the_entry_the_whole_table_holds() -> None:
    path = pricing.table_path()
    assert path is not None
    text = path.read_text(encoding="utf-8")
    whole = json.loads(text)
    usual = set(re.findall(r'\n    "([^"\\]*)": \{', text))
    # A spread of the entries, and every one laid out unlike the rest (the scan must find it too).
    keys = list(whole)[:: max(1, len(whole) // 300)] + [key for key in whole if key not in usual]
    assert len(keys) > 300
    for key in keys:
        assert pricing._lookup(key) == whole[key], key
    assert pricing._lookup("no-such-model-anywhere") is None
    assert pricing.entry("openai/gpt-4o-mini") == whole["gpt-4o-mini"]


def test_a_mock_run_imports_only_what_it_uses(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "p")
    write_workflow(project, MOCK_TWO_STEPS)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "aethr", "run", "task"], cwd=project, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "aethr.executor" in imported, "the probe sees the run's imports"
    # The estimate, promotion (--save-workflow) and resuming are other commands' work; measuring
    # a change (changes) is an editing step's, and no model step edits.
    assert not imported & {"aethr.estimate", "aethr.promote", "aethr.resume", "aethr.changes"}


_FSYNCS = (
    "import os, runpy, sys\n"
    "real = os.fsync\n"
    "def counted(fd):\n"
    "    print('FSYNC', file=sys.stderr)\n"
    "    real(fd)\n"
    "os.fsync = counted\n"
    "sys.argv = ['aethr', *sys.argv[1:]]\n"
    "runpy.run_module('aethr', run_name='__main__')\n"
)


def _fsyncs(project: Path, *args: str) -> int:
    proc = subprocess.run([sys.executable, "-c", _FSYNCS, *args], cwd=project, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr.count("FSYNC\n")


def test_a_successful_mock_run_fsyncs_no_checkpoint(tmp_path: Path) -> None:
    project = make_repo(tmp_path / "p")
    assert _fsyncs(project, "init", "custom") > 0, "the probe sees a durable write"
    write_workflow(project, MOCK_TWO_STEPS)
    assert _fsyncs(project, "run", "task") == 0
