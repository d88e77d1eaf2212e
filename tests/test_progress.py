"""Progress you can see: the status line on a terminal, heartbeats off one, `progress` in --json.

Each silent stretch here is held open by the test itself (a command or an agent stand-in
that waits for a file the test writes once it has seen what it waits for), so no test
depends on how fast the machine is; every wait polls under a scaled ceiling.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ceiling, shell_script, wait_until, write_workflow
from tests.fake_openai import FakeOpenAI

KEY = "sk-test-0123456789abcdef"
WAITING = """\
workflow: quiet
roles: {{}}
steps:
  - id: build
    run: "echo building the docs; while [ ! -f {go} ]; do sleep 0.1; done"
"""
ONE = """\
workflow: one
roles: {reviewer: Review it.}
models: {reviewer: openai:gpt-4o-mini}
steps:
  - id: review
    role: reviewer
"""
AGENT = """\
workflow: agent
roles: {implementer: Implement it.}
models: {implementer: anthropic:claude-sonnet-4-5}
steps:
  - id: implement
    role: implementer
    backend: claude
    idle_timeout: 600
"""
TOOL_CALL = {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "make test"}}
RESULT = {"type": "result", "subtype": "success", "result": "done", "usage": {"input_tokens": 1, "output_tokens": 1}}


def screen(raw: str) -> list[str]:
    """What a terminal shows after `raw`: `\\r`, `\\n` and erase-line applied, colours dropped."""
    lines, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]", raw):
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            lines += [""] * (row + 1 - len(lines))
        elif token in ("\x1b[2K", "\x1b[K"):
            lines[row] = lines[row][:col] if token == "\x1b[K" else ""
        elif not token.startswith("\x1b"):
            line = lines[row].ljust(col)
            lines[row] = line[:col] + token + line[col + 1 :]
            col += 1
    return lines


def on_tty(
    args: list[str], cwd: Path, env: dict[str, str], seen: Callable[[str], bool], then: Callable[[], None]
) -> str:
    """Run the CLI on a real pty; once its output makes `seen` true, call `then`; all it wrote."""
    controller, child = pty.openpty()
    # A real terminal's size (the status line is cut to its width): 40 rows of 160 columns.
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    full_env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aethr", *args], cwd=cwd, env=full_env, stdin=child, stdout=child, stderr=child
    )
    os.close(child)
    output, done = b"", False
    deadline = time.monotonic() + ceiling(120)
    while time.monotonic() < deadline:
        if select.select([controller], [], [], 0.2)[0]:
            try:
                data = os.read(controller, 65536)
            except OSError:
                break
            if not data:
                break
            output += data
            if not done and seen(output.decode(errors="replace")):
                then()
                done = True
        elif proc.poll() is not None:
            break
    proc.kill() if proc.poll() is None else None
    proc.wait(timeout=ceiling(60))
    os.close(controller)
    return output.decode(errors="replace")


def seconds_shown(raw: str, phase: str) -> list[int]:
    """The step's elapsed seconds in each status line drawn for `phase`."""
    return [int(s) for s in re.findall(re.escape(phase) + r"[^\r\n]*? · step (\d+)s", raw)]


def test_a_hang_at_the_first_byte_shows_a_growing_wait_and_leaves_no_status(repo: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "hang"}]
    write_workflow(repo, ONE)
    env = {"AETHR_LIVE": "1", "OPENAI_API_KEY": KEY, "OPENAI_API_BASE": server.base_url}
    raw = on_tty(["run", "task"], repo, {**env, "AETHR_FIRST_BYTE_TIMEOUT": "6"}, lambda _: False, lambda: None)
    shown = seconds_shown(raw, "waiting for the first token")
    assert len(set(shown)) >= 2 and shown == sorted(shown), raw  # the step's clock grows, through the retry
    assert "of its 6s limit" in raw
    # The retry line names the limit that ran out, the variable that raises it, the attempts left.
    assert "no first byte of an answer within 6s (the first-byte limit; raise AETHR_FIRST_BYTE_TIMEOUT)" in raw
    assert re.search(r"retry 1 in [\d.]+s \(1 attempt\(s\) left\)", raw), raw
    final = "\n".join(screen(raw))
    assert "waiting for the first token" not in final and "· step " not in final, final
    assert "run failed" in final


# Installed as `sitecustomize` in the run's interpreter: `import litellm` waits, before the
# package's code runs, until the file named in LITELLM_GATE exists; the test holds the import
# open while it looks. (Waiting in `find_spec` instead would hold Python's global import lock.)
IMPORT_GATE = """\
import importlib.machinery, os, sys, time


class Held(importlib.machinery.SourceFileLoader):
    def exec_module(self, module):
        while not os.path.exists(os.environ["LITELLM_GATE"]):
            time.sleep(0.05)
        super().exec_module(module)


class Gate:
    def find_spec(self, name, path=None, target=None):
        if name != "litellm":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        spec.loader = Held(spec.loader.name, spec.loader.path)
        return spec


sys.meta_path.insert(0, Gate())
"""


def test_the_header_comes_before_the_litellm_import_and_the_first_request(
    repo: Path, server: FakeOpenAI, tmp_path: Path
) -> None:
    gate, site = tmp_path / "import-may-finish", tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(IMPORT_GATE)
    write_workflow(repo, ONE)
    checkpoints = Path(os.environ["TMPDIR"]) / "aethr"
    held: list[str] = []

    def while_held() -> None:
        held.append(f"requests={len(server.requests)} checkpoints={sorted(checkpoints.rglob('*.json'))}")
        gate.touch()

    env = {
        "AETHR_LIVE": "1",
        "OPENAI_API_KEY": KEY,
        "OPENAI_API_BASE": server.base_url,
        "LITELLM_GATE": str(gate),
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    raw = on_tty(["run", "task"], repo, env, lambda out: "aethr · workflow one · 1 step(s) · live" in out, while_held)
    # Seen while the import was still held: no request, no tree listed (no checkpoint yet).
    assert held == ["requests=0 checkpoints=[]"], raw
    assert raw.index("workflow one") < raw.index("run finished"), raw
    assert len(server.requests) == 1, "the import, once let go, finished and the run went on"


@pytest.mark.parametrize("terminal", [{}, {"TERM": "dumb"}])
def test_a_silent_command_shows_its_last_output_line(repo: Path, tmp_path: Path, terminal: dict[str, str]) -> None:
    go = tmp_path / "go"
    write_workflow(repo, WAITING.format(go=go))
    raw = on_tty(
        ["run", "task", "--exec-commands", "--max-cost", "1"],
        repo,
        terminal,
        lambda out: "last output: building the docs" in out,
        go.touch,
    )
    assert "build · last output: building the docs · step " in raw
    assert re.search(r"run \d+s · \$0\.00\d* of a \$1\.00\d* cap", raw), "the spend against the cap"
    if terminal:
        assert "\x1b[2K" not in raw and "\x1b[2m" not in raw, "TERM=dumb: the plain status line"
    final = "\n".join(screen(raw))
    assert "last output:" not in final and "run finished" in final, final


def test_a_silent_agent_shows_its_last_tool_call(repo: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    tool = json.dumps({"type": "assistant", "message": {"id": "m1", "content": [TOOL_CALL]}})
    body = f"cat >/dev/null\necho '{tool}'\nwhile [ ! -f {go} ]; do sleep 0.1; done\necho '{json.dumps(RESULT)}'"
    agent = shell_script(tmp_path / "claude", body)
    write_workflow(repo, AGENT)
    env = {"AETHR_LIVE": "1", "AETHR_CLAUDE_BIN": str(agent), "ANTHROPIC_API_KEY": KEY, "NO_COLOR": "1"}
    raw = on_tty(["run", "task"], repo, env, lambda out: "last tool call: Bash make test" in out, go.touch)
    assert "implement · last tool call: Bash make test · step " in raw
    assert "\x1b[" not in raw, "NO_COLOR: the plain status line has no escape codes"
    final = "\n".join(screen(raw))
    assert "last tool call" not in final, final


def _piped(repo: Path, go: Path, *extra: str) -> tuple[str, str, int]:
    """Run with pipes; create `go` once stderr (or stdout, with --json) holds two heartbeats."""
    out_path, err_path = go.with_name("out"), go.with_name("err")
    with out_path.open("w") as out, err_path.open("w") as err:
        env = {**os.environ, "AETHR_HEARTBEAT": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "aethr", "run", "task", "--exec-commands", *extra],
            cwd=repo,
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
        watched = out_path if extra else err_path
        marker = '"event": "progress"' if extra else "aethr: still running: build"
        try:
            wait_until(lambda: watched.read_text().count(marker) >= 2, "two heartbeats")
        finally:
            go.touch()
            code = proc.wait(timeout=ceiling(60))
    return out_path.read_text(), err_path.read_text(), code


def test_off_a_terminal_heartbeat_lines_arrive_on_stderr(repo: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    write_workflow(repo, WAITING.format(go=go))
    out, err, code = _piped(repo, go)
    assert code == 0, out + err
    assert "aethr: still running: build · last output: building the docs · step " in err
    assert "still running" not in out and "\r" not in out + err


def test_json_gives_progress_events_and_stays_pure_json(repo: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    write_workflow(repo, WAITING.format(go=go))
    out, err, code = _piped(repo, go, "--json")
    assert code == 0, out + err
    events = [json.loads(line) for line in out.splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and all(e["step_id"] == "build" and e["phase"] == "output" for e in progress)
    assert "building the docs" in progress[-1]["detail"]
    assert "still running" not in err
