"""Checkpoints and resume, with real processes and signals against the loopback server."""

from __future__ import annotations

import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import LIVE_LOOP, aethr, ceiling, git, write_workflow
from tests.fake_openai import FakeOpenAI

KEY = "sk-test-resume-0123456789"

THREE = """\
workflow: three
roles:
  a: First.
  b: Second.
  c: Third.
models:
  a: openai:gpt-4o-mini
  b: openai:gpt-4o-mini
  c: openai:gpt-4o-mini
steps:
  - id: one
    role: a
  - id: two
    role: b
  - id: three
    role: c
"""


REVISE = {"kind": "stream", "text": "Review status: revise"}
FAIL = {"kind": "status", "code": 400, "message": "scripted failure"}


def env(server: FakeOpenAI) -> dict[str, str]:
    return {"AETHR_LIVE": "1", "OPENAI_API_KEY": KEY, "OPENAI_API_BASE": server.base_url}


def resume_path(stderr: str) -> str:
    """The checkpoint the printed resume command names (the word after --resume-checkpoint)."""
    line = next(ln for ln in stderr.splitlines() if "resume: aethr run --resume-checkpoint" in ln)
    words = shlex.split(line.split("resume:", 1)[1])
    return words[words.index("--resume-checkpoint") + 1]


def checkpoints(tmp: Path) -> list[Path]:
    return sorted((tmp / "aethr").glob("*/*.json"))


def test_failure_at_step_two_then_resume_runs_only_the_rest(repo: Path, server: FakeOpenAI, clean_env: Path) -> None:
    write_workflow(repo, THREE)
    server.script = [{"kind": "stream", "text": "STEP ONE OUTPUT"}, FAIL]
    first = aethr("run", "the task", cwd=repo, env=env(server))
    assert first.code == 1, first.both
    path = resume_path(first.err)
    assert len(server.requests) == 2

    saved = Path(path)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    text = saved.read_text()
    assert KEY not in text and "OPENAI_API_BASE" not in text
    data = json.loads(text)
    assert data["task"] == "the task" and [r["step_id"] for r in data["results"]] == ["one"]

    server.script = [{"kind": "stream", "text": "two done"}, {"kind": "stream", "text": "three done"}]
    server.requests.clear()
    second = aethr("run", "--resume-checkpoint", path, cwd=repo, env=env(server))
    assert second.code == 0, second.both
    assert len(server.requests) == 2, "only steps two and three are called"
    assert "# Task\nthe task" in server.prompts()[0]
    assert "STEP ONE OUTPUT" in server.prompts()[0], "step two sees step one's restored output"
    assert "── one ·" not in second.out
    assert not saved.exists(), "a successful run deletes its checkpoint"
    assert checkpoints(clean_env) == []


def _start(repo: Path, server: FakeOpenAI) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aethr", "run", "the task"],
        cwd=repo,
        env={**os.environ, **env(server)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_requests(server: FakeOpenAI, count: int, limit: float = 300) -> None:
    deadline = time.monotonic() + ceiling(limit)
    while len(server.requests) < count:
        assert time.monotonic() < deadline, "the run never reached the expected request"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_during_step_two(repo: Path, server: FakeOpenAI, sig: signal.Signals) -> None:
    write_workflow(repo, THREE)
    server.script = [{"kind": "stream", "text": "STEP ONE OUTPUT"}, {"kind": "hang"}]
    proc = _start(repo, server)
    _wait_for_requests(server, 2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=ceiling(120))
    assert proc.returncode == 130, out + err
    assert "interrupted during step 'two'" in err
    assert "Traceback" not in err
    path = resume_path(err)

    server.script = [{"kind": "stream", "text": "two"}, {"kind": "stream", "text": "three"}]
    server.requests.clear()
    result = aethr("run", "--resume-checkpoint", path, cwd=repo, env=env(server))
    assert result.code == 0, result.both
    assert len(server.requests) == 2
    assert "STEP ONE OUTPUT" in server.prompts()[0]


def test_sigkill_during_step_two_then_resume_last(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, THREE)
    server.script = [{"kind": "stream", "text": "STEP ONE OUTPUT"}, {"kind": "hang"}]
    proc = _start(repo, server)
    _wait_for_requests(server, 2)
    proc.kill()
    proc.communicate(timeout=ceiling(120))

    server.script = [{"kind": "stream", "text": "two"}, {"kind": "stream", "text": "three"}]
    server.requests.clear()
    result = aethr("run", "--resume-checkpoint", "last", cwd=repo, env=env(server))
    assert result.code == 0, result.both
    assert len(server.requests) == 2, "resumes after step one: two requests, not three"
    assert "STEP ONE OUTPUT" in server.prompts()[0]


def test_resume_inside_a_loop_keeps_its_count(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, LIVE_LOOP.format(max=3))
    server.script = [{"kind": "stream", "text": "v1"}, REVISE, {"kind": "stream", "text": "v2"}, FAIL]
    first = aethr("run", "task", cwd=repo, env=env(server))
    assert first.code == 1, first.both
    assert "pass 1/3" in first.err
    path = resume_path(first.err)

    server.script = [REVISE]
    server.requests.clear()
    second = aethr("run", "--resume-checkpoint", path, cwd=repo, env=env(server))
    assert second.code == 5, second.both
    # review pass 2 (the failed one, re-run), then implement + review for pass 3: 3 requests
    assert len(server.requests) == 3
    assert "pass 2/3" in second.err and "pass 3/3" in second.err
    assert "ran 3 pass(es)" in second.err


def test_a_resume_refuses_another_task_an_edited_workflow_and_a_changed_tree_unless_forced(
    repo: Path, server: FakeOpenAI
) -> None:
    """One failed live run, resumed against each refusal in turn, then forced by `@path`."""
    write_workflow(repo, THREE)
    server.script = [{"kind": "stream", "text": "one"}, FAIL]
    path = resume_path(aethr("run", "task", cwd=repo, env=env(server)).err)
    other = aethr("run", "another task", "--resume-checkpoint", path, cwd=repo, env=env(server))
    assert other.code == 2 and "differs from the checkpoint's task" in other.err

    write_workflow(repo, THREE.replace("Second.", "Second, edited."))
    result = aethr("run", "--resume-checkpoint", path, cwd=repo, env=env(server))
    assert result.code == 3
    assert "was edited since the checkpoint" in result.err
    write_workflow(repo, THREE.replace("workflow: three", "workflow: other"))
    result = aethr("run", "--resume-checkpoint", path, cwd=repo, env=env(server))
    assert result.code == 3 and "is of workflow 'three'" in result.err
    write_workflow(repo, THREE)  # as it was: the workflow file is no part of the fingerprint

    (repo / "README.md").write_text("changed after the checkpoint\n")
    refused = aethr("run", "--resume-checkpoint", path, cwd=repo, env=env(server))
    assert refused.code == 4, refused.both
    assert "the repository changed since the checkpoint: files changed: README.md" in refused.err
    assert "--force-resume" in refused.err

    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "moved on")
    refused = aethr("run", "--resume-checkpoint", path, cwd=repo, env=env(server))
    assert refused.code == 4 and "HEAD moved from" in refused.err

    server.script = [{"kind": "stream", "text": "ok"}]
    forced = aethr("run", "task", "--resume-checkpoint", f"@{path}", "--force-resume", cwd=repo, env=env(server))
    assert forced.code == 0, forced.both


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"format": 1, "task": "t", "resul', "not valid JSON"),
        ("\x00\x01garbage", "not valid JSON"),
        ("[1, 2, 3]", "wrong shape"),
        (
            '{"format": 1, "task": 7, "workflow": "three", "workflow_digest": "x", "results": [], '
            '"next_index": 0, "passes": {}, "fingerprint": null, "latest_step": null}',
            "wrong shape",
        ),
        ('{"format": 99}', "wrong shape"),
        (
            '{"format": 1, "task": "t", "workflow": "three", "workflow_digest": "x", "results": [], '
            '"next_index": 0, "passes": {}, "fingerprint": "edited by hand", "latest_step": null}',
            "wrong shape",
        ),
    ],
    ids=["truncated", "garbled", "not an object", "wrong type", "unknown format", "bad fingerprint"],
)
def test_bad_checkpoints_exit_3(repo: Path, tmp_path: Path, content: str, message: str) -> None:
    write_workflow(repo, THREE)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = aethr("run", "--resume-checkpoint", str(bad), cwd=repo)
    assert result.code == 3, result.both
    assert message in result.err and str(bad) in result.err
    assert "Traceback" not in result.both


def test_missing_checkpoint_and_no_last(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, THREE)
    result = aethr("run", "--resume-checkpoint", str(tmp_path / "nope.json"), cwd=repo)
    assert result.code == 3 and "does not exist" in result.err
    result = aethr("run", "--resume-checkpoint", "last", cwd=repo)
    assert result.code == 3 and "no checkpoint of this project" in result.err


def test_verbose_prints_the_checkpoint_json(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, THREE)
    server.script = [{"kind": "stream", "text": "one"}, FAIL]
    result = aethr("run", "task", "--verbose", cwd=repo, env=env(server))
    assert result.code == 1
    assert '"workflow": "three"' in result.err
    assert KEY not in result.both
