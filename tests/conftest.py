"""Shared fixtures: an isolated environment, real git repositories, and the CLI as a subprocess.

Every test runs `python -m aethr` in a real process, so what is tested is what a
user runs: argument parsing, the error boundary, exit codes, stdout and stderr.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import forked
from tests.fake_openai import FakeOpenAI

# A suite started in the background by a shell without job control (`make test &`, nohup)
# inherits SIGINT ignored, and so would every aethr it starts: an ignored disposition
# survives exec, and Python then installs no Ctrl-C handler. The interrupt tests need SIGINT
# as a terminal delivers it, so the workers take it back (a handled signal resets on exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Every wait in the suite is a poll on an event, bounded by a ceiling that only a real hang
# reaches. A machine slower than the ceilings allow (an emulator, a CI runner shared by many
# jobs) sets AETHR_TEST_SLOWDOWN=3, say, and every ceiling grows by that one factor. Read
# here, before the autouse fixture clears the environment.
SLOWDOWN = float(os.environ.get("AETHR_TEST_SLOWDOWN") or "1")


def ceiling(seconds: float) -> float:
    """A wait's ceiling, scaled by AETHR_TEST_SLOWDOWN: never a measure of speed."""
    return seconds * SLOWDOWN


def wait_until(check: Callable[[], object], what: str, seconds: float = 300) -> None:
    """Poll `check` until it holds; fail naming `what` if the ceiling passes first (a hang)."""
    deadline = time.monotonic() + ceiling(seconds)
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {ceiling(seconds):.0f}s"
        time.sleep(0.02)


def handles_signals(pid: int) -> bool:
    """Whether the process has installed its own SIGINT and SIGTERM handlers (aethr does it
    first thing): a signal sent earlier would find the interpreter still starting."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
    wanted = (1 << (2 - 1)) | (1 << (15 - 1))
    return caught & wanted == wanted


def processes_in(root: Path) -> list[str]:
    """The command lines of processes working inside `root` (their cwd is in it)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")).is_relative_to(root):
                found.append((entry / "cmdline").read_bytes().decode().replace("\0", " ").strip())
        except OSError:
            continue
    return found


_KEEP = {"PATH", "LANG", "LC_ALL", "SYSTEMROOT", "PYTHONPATH", "VIRTUAL_ENV"}


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def both(self) -> str:
        return self.out + self.err


@pytest.fixture(autouse=True)
def clean_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No AETHR_*, no provider keys or base URLs, HOME and TMPDIR in a temp folder."""
    home = tmp_path_factory.mktemp("home")
    tmp = tmp_path_factory.mktemp("tmp")
    for name in list(os.environ):
        if name not in _KEEP:
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "t")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "t@example.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "t")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "t@example.invalid")
    yield tmp


@pytest.fixture(autouse=True)
def no_process_left(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every process a test starts is ended and its pipes closed when the test ends, even when
    it failed half-way: a leaked one would fail a later test with a ResourceWarning instead."""
    started: list[subprocess.Popen[Any]] = []

    class Tracked(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(subprocess, "Popen", Tracked)
    yield
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait()


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    """The loopback OpenAI-compatible server; tests set `server.script` and read `server.requests`."""
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


LIVE_LOOP = """\
workflow: loop
roles:
  implementer: Build.
  reviewer: Review.
models:
  implementer: openai:gpt-4o-mini
  reviewer: openai:gpt-4o-mini
steps:
  - id: implement
    role: implementer
  - id: review
    role: reviewer
    repeat: {{back_to: implement, until_review_pass: true, max_iterations: {max}}}
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    for name, text in (files or {"README.md": "# project\n"}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "-m", "initial")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


# A call runs in a child forked from a warm interpreter (tests/zygote.py) unless the test
# asks for a fresh one, or sets what only an interpreter's start-up reads: a PYTHON* or locale
# variable, or a LITELLM_* one (LiteLLM reads its settings on import). AETHR_TEST_FRESH=1
# makes every call fresh. The session's first process starts the server; its workers find
# it in AETHR_TEST_ZYGOTE.
FRESH = os.environ.get("AETHR_TEST_FRESH") == "1"
_server: forked.Server | None = None
_ZYGOTE = os.environ.get("AETHR_TEST_ZYGOTE", "")  # read before the autouse fixture clears it


def pytest_configure(config: pytest.Config) -> None:
    global _server, _ZYGOTE
    if not FRESH and not hasattr(config, "workerinput"):
        _server = forked.Server(_KEEP)
        _ZYGOTE = os.environ["AETHR_TEST_ZYGOTE"] = _server.path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that sit out a real timeout (marked `waits`) start first, one to a worker: their
    waits then overlap the rest of the suite instead of ending it. xdist hands each worker
    two consecutive tests to start with (`--maxschedchunk 2` in the Makefile), so they are
    interleaved with other tests."""
    waits = [item for item in items if item.get_closest_marker("waits")]
    rest = [item for item in items if not item.get_closest_marker("waits")]
    paired = [item for pair in zip(waits, rest, strict=False) for item in pair]
    items[:] = paired + waits[len(rest) :] + rest[len(waits) :]


def pytest_unconfigure(config: pytest.Config) -> None:
    if _server is not None:
        _server.stop()


_START_UP = ("PYTHON", "LANG", "LC_", "LITELLM_")


def aethr(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300, stdin: str = "", fresh: bool = False
) -> Result:
    """Run the CLI as `python -m aethr` would, as a user would; `timeout` is a hang's ceiling (scaled)."""
    full = {**os.environ, **(env or {})}
    if _ZYGOTE and not fresh and not any(name.startswith(_START_UP) for name in env or {}):
        return Result(*forked.run(_ZYGOTE, list(args), str(cwd), full, ceiling(timeout), stdin))
    proc = subprocess.run(
        [sys.executable, "-m", "aethr", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=ceiling(timeout),
        input=stdin,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


WORKFLOW_ONE_STEP = """\
workflow: one
roles:
  reviewer: Review it.
models:
  reviewer: openai:gpt-4o-mini
steps:
  - id: review
    role: reviewer
    context: [{context}]
"""


REVIEW_LOOP = """\
workflow: w
roles: {implementer: Build., reviewer: Review.}
steps:
  - id: implement
    role: implementer
  - id: review
    role: reviewer
    repeat: {back_to: implement, until_review_pass: true, max_iterations: 2}
"""


MOCK_TWO_STEPS = """\
workflow: two
roles: {planner: Plan., reviewer: Review.}
steps:
  - id: plan
    role: planner
  - id: review
    role: reviewer
"""


def shell_script(path: Path, body: str) -> Path:
    """An executable `/bin/sh` script at `path` (an editor, an agent or tool stand-in)."""
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def write_workflow(root: Path, text: str) -> Path:
    path = root / ".aethr.yaml"
    path.write_text(text)
    return path


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections while the block runs: bound but never
    listening, so no other test's server can take it meanwhile (a port closed at once could
    be handed to the next server that asks for one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
