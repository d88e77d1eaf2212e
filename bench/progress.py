"""The `progress` benchmark group: how soon a run says something, and what the status line costs.

- A live run against the loopback server: the time to its first line of output (the header),
  against the same run's time to its first model request (when the server sees it).
- A `run:` step printing 200,000 lines: piped with no ticker (`AETHR_HEARTBEAT=0`), piped with
  the heartbeat's ticker, and on a terminal (a pty) with the status line and without (`CI=1`).
"""

from __future__ import annotations

import os
import pty
import select
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.commands import WORKFLOW as LOUD
from tests.fake_openai import FakeOpenAI

ONE = """\
workflow: one
roles: {reviewer: Review.}
models: {reviewer: openai:gpt-4o-mini}
steps:
  - id: review
    role: reviewer
"""


class Timed(FakeOpenAI):
    """The loopback server, noting when each request arrived."""

    arrived: list[float]

    def next_behaviour(self, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        self.arrived.append(time.perf_counter())
        return super().next_behaviour(body, headers)


def first_line(cmd: list[str], cwd: Path, env: dict[str, str], server: Timed) -> tuple[float, float]:
    """One run: seconds to its first byte of stdout, and to the server's first request."""
    server.arrived = []
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    first = None
    while chunk := proc.stdout.read1(65536):
        if first is None and chunk:
            first = time.perf_counter() - start
    if proc.wait() != 0 or first is None or not server.arrived:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}")
    return first, server.arrived[0] - start


def on_pty(cmd: list[str], cwd: Path, extra: dict[str, str] | None = None) -> float:
    """Wall seconds of one run with stdout and stderr on a pty (read as fast as it writes)."""
    controller, child = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", **(extra or {})}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=child, stdout=child, stderr=child)
    os.close(child)
    while True:
        if select.select([controller], [], [], 0.2)[0]:
            try:
                if not os.read(controller, 65536):
                    break
            except OSError:
                break
        elif proc.poll() is not None:
            break
    code = proc.wait()
    os.close(controller)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}")
    return time.perf_counter() - start


def run(
    median: Callable[..., Any], record: Callable[..., None], aethr: list[str], tiny: Callable[[Path, str], Path]
) -> None:
    server = Timed([{"kind": "stream", "text": "an answer from the loopback server"}]).start()
    env = {"AETHR_LIVE": "1", "OPENAI_API_KEY": "sk-bench-0123456789", "OPENAI_API_BASE": server.base_url}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    try:
        with tempfile.TemporaryDirectory(prefix="aethr-bench-") as folder:
            repo = tiny(Path(folder) / "live", ONE)
            first_line([*aethr, "run", "task"], repo, env, server)  # warm the caches
            runs = [first_line([*aethr, "run", "task"], repo, env, server) for _ in range(5)]
            line, request = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            name = "live run: time to its first line of output"
            record("progress", name, line, request, None, floor_name="its first request")
            record("progress", "  same run: time to its first model request", request, None, None)
            loud = tiny(Path(folder) / "loud", LOUD.replace("LINES", "200000"))
            cmd = [*aethr, "run", "task", "--exec-commands"]
            piped = median(cmd, loud, runs=3).wall
            quiet = median(cmd, loud, runs=3, env={"AETHR_HEARTBEAT": "0"}).wall
            on_pty(cmd, loud)
            shown = statistics.median(on_pty(cmd, loud) for _ in range(3))
            # CI set: the same terminal with no status line (and no colour): what the line costs.
            plain = statistics.median(on_pty(cmd, loud, {"CI": "1"}) for _ in range(3))
            record("progress", "run: step printing 200,000 lines, AETHR_HEARTBEAT=0", quiet, None, None)
            record("progress", "  same, piped (heartbeat ticker on)", piped, quiet, None, floor_name="no ticker")
            record("progress", "  same, on a terminal (status line drawn)", shown, piped, None, floor_name="piped")
            record("progress", "  same terminal, CI=1 (no status line)", plain, None, None)
            record("progress", "  status line on, against off", shown, plain, None, floor_name="CI=1")
    finally:
        server.stop()
