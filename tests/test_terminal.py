"""What a person at a terminal sees: Rich output on a TTY, plain with NO_COLOR, the numbered init menu.

These run the CLI on a real pseudo-terminal, so `isatty()` is true as it is for a user.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import aethr, ceiling


def run_on_tty(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, typed: str = "", after: str = ""
) -> tuple[int, str]:
    """Run the CLI on a real pty; type `typed` once the output shows `after`."""
    controller, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aethr", *args],
        cwd=cwd,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", **(env or {})},
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    output = b""
    deadline = time.monotonic() + ceiling(300)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if ready:
            try:
                data = os.read(controller, 65536)
            except OSError:
                break
            if not data:
                break
            output += data
            if typed and after.encode() in output:
                os.write(controller, typed.encode())
                typed = ""
        elif proc.poll() is not None:
            break
    proc.wait(timeout=ceiling(60))
    os.close(controller)
    return proc.returncode, output.decode(errors="replace")


def test_terminal_output_is_rich(repo: Path) -> None:
    aethr("init", "plan-implement-review", cwd=repo)
    code, out = run_on_tty(["run", "add a flag"], repo)
    assert code == 0, out
    assert "\x1b[" in out, "colour on a terminal"
    assert "Plan for: add a flag" in out
    assert "run finished" in out
    for column in ("step", "role", "model", "status", "time", "tokens", "cost"):
        assert column in out


def test_no_color_on_a_terminal_is_plain(repo: Path) -> None:
    aethr("init", "custom", cwd=repo)
    code, out = run_on_tty(["run", "a task"], repo, env={"NO_COLOR": "1"})
    assert code == 0, out
    assert "\x1b[" not in out
    assert "run finished" in out


def test_init_without_a_preset_offers_a_numbered_choice(tmp_path: Path) -> None:
    code, out = run_on_tty(["init"], tmp_path, typed="6\n", after="Preset number")
    assert code == 0, out
    assert "1. add-tests" in out and "5. plan-implement-review" in out
    assert "Wrote .aethr.yaml from preset 'review-existing-diff'" in out
    assert "workflow: review-existing-diff" in (tmp_path / ".aethr.yaml").read_text()
