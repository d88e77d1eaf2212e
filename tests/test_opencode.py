"""The OpenCode backend with the real `opencode` binary against the loopback model server.

`make test` installs the pinned binary into .tools/ and passes its path in
AETHR_TEST_OPENCODE. Without it these tests are skipped locally, but in CI
(CI=true) a missing binary is a failure, never a silent skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import aethr, ceiling, git, make_repo, shell_script, write_workflow
from tests.fake_openai import FakeOpenAI

BINARY = os.environ.get("AETHR_TEST_OPENCODE", "")
needs_opencode = pytest.mark.skipif(
    not Path(BINARY).is_file() and os.environ.get("CI") != "true",
    reason="set AETHR_TEST_OPENCODE to the opencode binary (`make test` installs it)",
)

WORKFLOW = """\
workflow: build
roles:
  implementer: Build it.
  reviewer: Review it.
models:
  implementer: fake:test-model
  reviewer: openai:gpt-4o-mini
steps:
  - id: implement
    role: implementer
    backend: opencode
    unsafe_permissions: {unsafe}
    timeout: {timeout}
  - id: review
    role: reviewer
    context: [latest_diff]
"""


def opencode_env(
    tmp: Path, server: FakeOpenAI, permission: object = None, cost: dict[str, float] | None = None
) -> dict[str, str]:
    """An offline OpenCode: its own XDG folders, a stub plugin folder, our fake provider."""
    assert Path(BINARY).is_file(), f"the opencode binary is missing: {BINARY!r}"
    xdg = tmp / "xdg"
    config = xdg / "config" / "opencode"
    (config / "node_modules").mkdir(parents=True, exist_ok=True)
    (config / "package.json").write_text('{"name": "stub", "version": "0.0.0"}')
    (config / "package-lock.json").write_text(
        '{"name": "stub", "version": "0.0.0", "lockfileVersion": 3, "packages": {}}'
    )
    provider = {
        "npm": "@ai-sdk/openai-compatible",
        "name": "Fake",
        "options": {"baseURL": server.base_url, "apiKey": "test"},
        "models": {"test-model": {"name": "test", **({"cost": cost} if cost else {})}},
    }
    content: dict[str, object] = {"provider": {"fake": provider}, "enabled_providers": ["fake"]}
    if permission is not None:
        content["permission"] = permission
    return {
        "AETHR_LIVE": "1",
        "AETHR_OPENCODE_BIN": BINARY,
        "OPENAI_API_KEY": "sk-test-0123456789",
        "OPENAI_API_BASE": server.base_url,
        "XDG_CONFIG_HOME": str(xdg / "config"),
        "XDG_DATA_HOME": str(xdg / "data"),
        "XDG_CACHE_HOME": str(xdg / "cache"),
        "XDG_STATE_HOME": str(xdg / "state"),
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_CONFIG_CONTENT": json.dumps(content),
    }


def write_call(path: Path, text: str) -> dict[str, object]:
    return {"kind": "tool", "name": "write", "arguments": {"filePath": str(path), "content": text}}


@needs_opencode
def test_opencode_edits_and_the_reviewer_sees_exactly_that_diff(tmp_path: Path, server: FakeOpenAI) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "# project\n"})
    (repo / "README.md").write_text("# project\nPRE-EXISTING CHANGE\n")
    write_workflow(repo, WORKFLOW.format(unsafe="true", timeout=round(ceiling(120))))
    server.script = [
        write_call(repo / "hello.py", "print('written by opencode')\n"),
        {"kind": "stream", "text": "I wrote hello.py."},
        {"kind": "stream", "text": "Looks right."},
    ]
    result = aethr("run", "create hello.py", cwd=repo, env=opencode_env(tmp_path, server))
    assert result.code == 0, result.both
    assert (repo / "hello.py").read_text() == "print('written by opencode')\n"
    assert "· write hello.py: completed" in result.out
    assert "I wrote hello.py." in result.out
    assert "[aethr] step 'implement' changed 1 file(s): hello.py" in result.out
    assert "tokens 22+14" in result.out, "tokens of both OpenCode model calls are recorded"
    implement = [line for line in result.out.splitlines() if line.strip().startswith("implement ")][-1]
    assert implement.split()[-1] == "unknown", "OpenCode's $0 for an unpriced model is unknown, not free"
    assert len(server.requests) == 3
    review_prompt = server.prompts()[2]
    assert "+print('written by opencode')" in review_prompt
    assert "PRE-EXISTING CHANGE" not in review_prompt, "changes from before the step are not attributed to it"
    assert "create hello.py" in server.prompts()[0], "OpenCode got the step's prompt on stdin"


@needs_opencode
def test_a_step_that_changes_nothing_says_so(tmp_path: Path, server: FakeOpenAI) -> None:
    repo = make_repo(tmp_path / "repo")
    write_workflow(repo, WORKFLOW.format(unsafe="true", timeout=round(ceiling(120))))
    server.script = [{"kind": "stream", "text": "Nothing to do."}, {"kind": "stream", "text": "ok"}]
    result = aethr("run", "task", cwd=repo, env=opencode_env(tmp_path, server))
    assert result.code == 0, result.both
    assert "[aethr] step 'implement' changed no files" in result.out
    assert "step 'implement' changed no files" in server.prompts()[1]


@needs_opencode
def test_an_endpoint_error_fails_the_step_with_a_resume_command(tmp_path: Path, server: FakeOpenAI) -> None:
    repo = make_repo(tmp_path / "repo")
    write_workflow(repo, WORKFLOW.format(unsafe="true", timeout=round(ceiling(120))))
    server.script = [{"kind": "status", "code": 400, "message": "scripted bad request"}]
    result = aethr("run", "task", cwd=repo, env=opencode_env(tmp_path, server))
    assert result.code == 1, result.both
    assert "OpenCode reported an error: scripted bad request" in result.err
    assert "resume: aethr run --resume-checkpoint" in result.err


def unique_marker() -> str:
    """A sleep length unique to one test, so a process another run left behind is never taken for ours."""
    return f"4242.{uuid.uuid4().int % 10**12}"


def sleeper_then_runaway(marker: str) -> list[dict[str, object]]:
    """OpenCode's bash tool starts a shell in a session of its own, then the model never stops."""
    command = f"setsid sleep {marker} > /dev/null 2>&1 &"
    return [
        {"kind": "tool", "name": "bash", "arguments": {"command": command, "description": "start a sleeper"}},
        {"kind": "runaway"},
    ]


def _processes_running(argv0: str, *args: str) -> list[str]:
    """Processes whose argv starts with `argv0` (and then `args`), by /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if argv and Path(argv[0]).name == Path(argv0).name and argv[1 : 1 + len(args)] == list(args):
            found.append(f"{entry.name}: {' '.join(argv)}")
    return found


def _none_left(*patterns: tuple[str, ...], limit: float = 30) -> list[str]:
    """Poll until no process matches any pattern (argv0, args…), or the limit passes; what is left."""
    deadline = time.monotonic() + ceiling(limit)
    while True:
        left = [p for pattern in patterns for p in _processes_running(*pattern)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _start_run(repo: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aethr", "run", "task"],
        cwd=repo,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@needs_opencode
@pytest.mark.waits
def test_a_runaway_step_is_stopped_by_its_timeout_with_nothing_left(tmp_path: Path, server: FakeOpenAI) -> None:
    repo = make_repo(tmp_path / "repo")
    timeout = round(ceiling(60))  # long enough for OpenCode to start its sleeper on a loaded machine
    write_workflow(repo, WORKFLOW.format(unsafe="true", timeout=timeout))
    marker = unique_marker()
    server.script = sleeper_then_runaway(marker)
    proc = _start_run(repo, opencode_env(tmp_path, server))
    # The step's clock started before OpenCode did, so it ends within the timeout (plus the grace
    # of TERM before KILL): a step that outlived it would reach this ceiling.
    out, err = proc.communicate(timeout=timeout + ceiling(120))
    assert proc.returncode == 1, out + err
    assert "· bash" in out and ": completed" in out, out
    assert f"did not finish within {timeout}s and was stopped" in err
    assert _none_left((BINARY, "run", "--format", "json", "--dir", str(repo)), ("sleep", marker)) == [], (
        "no opencode process or shell is left"
    )


@needs_opencode
def test_a_permission_rejection_is_a_failure(tmp_path: Path, server: FakeOpenAI) -> None:
    repo = make_repo(tmp_path / "repo")
    write_workflow(repo, WORKFLOW.format(unsafe="false", timeout=round(ceiling(120))))
    server.script = [write_call(repo / "blocked.txt", "nope\n"), {"kind": "stream", "text": "Could not write."}]
    env = opencode_env(tmp_path, server, permission={"edit": "ask"})
    result = aethr("run", "task", cwd=repo, env=env)
    assert result.code == 1, result.both
    # OpenCode may ask for `write` before `edit` (it did under load): the refusal names what it asked.
    assert "OpenCode was refused permission for: " in result.err and "edit (" in result.err
    assert "unsafe_permissions: true" in result.err
    assert not (repo / "blocked.txt").exists()


def test_missing_binary_exits_4(repo: Path) -> None:
    write_workflow(repo, WORKFLOW.format(unsafe="false", timeout=60))
    env = {"AETHR_LIVE": "1", "OPENAI_API_KEY": "sk-x-0123456789", "AETHR_OPENCODE_BIN": "/nonexistent/opencode"}
    result = aethr("run", "task", cwd=repo, env=env)
    assert result.code == 4, result.both
    assert "npm install -g opencode-ai" in result.err


def test_outside_git_exits_4(tmp_path: Path) -> None:
    fake_bin = shell_script(tmp_path / "opencode", "exit 0")
    project = tmp_path / "project"
    project.mkdir()
    write_workflow(project, WORKFLOW.format(unsafe="false", timeout=60))
    env = {"AETHR_LIVE": "1", "OPENAI_API_KEY": "sk-x-0123456789", "AETHR_OPENCODE_BIN": str(fake_bin)}
    result = aethr("run", "task", cwd=project, env=env)
    assert result.code == 4, result.both
    assert "needs a git repository" in result.err


def test_mock_mode_never_starts_opencode(repo: Path, tmp_path: Path) -> None:
    tripwire = tmp_path / "started"
    fake_bin = shell_script(tmp_path / "opencode", f"touch {tripwire}\necho changed > README.md")
    write_workflow(repo, WORKFLOW.format(unsafe="true", timeout=60))
    before = git(repo, "status", "--porcelain")
    result = aethr("run", "task", cwd=repo, env={"AETHR_OPENCODE_BIN": str(fake_bin)})
    assert result.code == 0, result.both
    assert "Simulated: opencode was not started" in result.out
    assert not tripwire.exists()
    assert git(repo, "status", "--porcelain") == before


@needs_opencode
def test_ctrl_c_during_opencode_ends_its_tree_and_can_resume(tmp_path: Path, server: FakeOpenAI) -> None:
    repo = make_repo(tmp_path / "repo")
    write_workflow(repo, WORKFLOW.format(unsafe="true", timeout=round(ceiling(300))))
    marker = unique_marker()
    server.script = sleeper_then_runaway(marker)
    env = {**os.environ, **opencode_env(tmp_path, server)}
    proc = _start_run(repo, env)
    deadline = time.monotonic() + ceiling(300)  # OpenCode's start-up alone is slow on a loaded machine
    while len(server.requests) < 2 or not _processes_running("sleep", marker):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "OpenCode never reached the runaway stream"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=ceiling(120))
    assert proc.returncode == 130, out + err
    assert "interrupted during step 'implement'" in err
    assert "resume: aethr run --resume-checkpoint" in err
    assert _none_left((BINARY, "run", "--format", "json", "--dir", str(repo)), ("sleep", marker)) == [], (
        "no opencode process or shell is left"
    )
