"""`aethr run` in mock mode: the pipeline, loops, history, output formats, the task editor."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.conftest import aethr, ceiling, shell_script, write_workflow

LOOP = """\
workflow: loop
roles:
  planner: Plan.
  implementer: Build.
  reviewer: Review.
steps:
  - id: plan
    role: planner
  - id: implement
    role: implementer
  - id: review
    role: reviewer
    repeat: {{back_to: implement, until_review_pass: true, max_iterations: {max}}}
"""


def script(tmp_path: Path, replies: list[str]) -> dict[str, str]:
    path = tmp_path / "replies.json"
    path.write_text(json.dumps(replies))
    return {"AETHR_MOCK_RESPONSES": str(path)}


def test_fresh_init_then_mock_run(repo: Path) -> None:
    assert aethr("init", "plan-implement-review", cwd=repo).code == 0
    result = aethr("run", "add a --shout flag", cwd=repo)
    assert result.code == 0, result.both
    out = result.out
    assert "mock mode" in out
    for role, step in (("planner", "plan"), ("implementer", "implement"), ("reviewer", "review")):
        assert f"[mock {role} · step {step}]" in out
    assert "Plan for: add a --shout flag" in out
    assert "Simulated: opencode was not started" in out
    assert "Review status: pass" in out
    assert "run finished" in out
    assert "\x1b[" not in out + result.err, "piped output has no escape codes"
    assert not any(p.name != ".aethr.yaml" and p.name not in ("README.md", ".git") for p in repo.iterdir()), (
        "a run creates no project files"
    )


def test_show_prompt_calls_nothing_and_shows_placeholders(repo: Path) -> None:
    aethr("init", "plan-implement-review", cwd=repo)
    result = aethr("run", "add a --shout flag", "--show-prompt", cwd=repo)
    assert result.code == 0, result.both
    out = result.out
    assert out.count("# Task\nadd a --shout flag") == 3
    assert "[the output of step 'plan' will appear here when the workflow runs]" in out
    assert "[the changes made by step 'implement' will appear here when the workflow runs]" in out
    assert "Review status: revise" in out, "the controller step is told its status line"
    assert "context report for plan:" in out
    assert "[mock" not in out, "no model (not even the mock) is called"


def test_json_output_is_only_json_lines(repo: Path) -> None:
    aethr("init", "plan-implement-review", cwd=repo)
    result = aethr("run", "task", "--json", cwd=repo)
    assert result.code == 0
    events = [json.loads(line) for line in result.out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("step_started") == 4 and kinds.count("step_finished") == 4  # plan, implement, test, review
    assert "text" in kinds and "loop_iteration" in kinds
    assert events[-1]["usage"]["prompt_tokens"] > 0
    # nested records are objects with named fields, not positional arrays
    assert events[0]["steps"][0] == {"id": "plan", "role": "planner", "backend": "model", "model": "openai/gpt-4o-mini"}
    built = next(e for e in events if e["event"] == "prompt_built")
    assert all(set(item) == {"source", "status", "tokens", "note"} for item in built["context"])
    assert [s["step_id"] for s in events[-1]["steps"]][:1] == ["plan"]
    assert events[-1]["steps"][0]["usage"]["completion_tokens"] > 0


def test_loop_revises_then_passes(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, LOOP.format(max=3))
    replies = [
        "the plan",
        "first try",
        "**Review status: revise**",
        "second try",
        "looks good\n**Review Status:  PASS**",
    ]
    result = aethr("run", "task", cwd=repo, env=script(tmp_path, replies))
    assert result.code == 0, result.both
    assert "loop implement..review pass 1/3: Review status: revise → again" in result.err
    assert "loop implement..review pass 2/3: Review status: pass → done" in result.err
    assert "implement · implementer · mock, for no model · pass 2" in result.out


def test_loop_exhaustion_exits_5(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, LOOP.format(max=2))
    replies = ["plan", "try 1", "Review status: revise", "try 2", "no status line at all"]
    result = aethr("run", "task", cwd=repo, env=script(tmp_path, replies))
    assert result.code == 5, result.both
    assert "no 'Review status:' line in the reply; counted as revise" in result.err
    assert "the loop from 'implement' to 'review' ran 2 pass(es) without 'Review status: pass'" in result.err
    assert "resume: aethr run --resume-checkpoint" in result.err
    assert "Traceback" not in result.err


def test_until_contains_loop(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, LOOP.format(max=3).replace("until_review_pass: true", "until_contains: SHIP IT"))
    replies = ["plan", "v1", "not yet", "v2", "ok, SHIP IT"]
    result = aethr("run", "task", cwd=repo, env=script(tmp_path, replies))
    assert result.code == 0, result.both
    assert "found: 'SHIP IT' → done" in result.err


def test_scripted_mock_running_out_is_an_error(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, LOOP.format(max=3))
    result = aethr("run", "task", cwd=repo, env=script(tmp_path, ["only one"]))
    assert result.code == 1
    assert "has only 1 replies and all were used" in result.err


HISTORY = """\
workflow: history
roles: {{a: A., b: B., c: C.}}
steps:
  - id: first
    role: a
  - id: second
    role: b
  - id: third
    role: c
    history_visibility: {mode}
"""


def third_prompt(repo: Path, tmp_path: Path, mode: str) -> str:
    write_workflow(repo, HISTORY.format(mode=mode))
    replies = ["FIRST OUTPUT line one\nmore of first", "SECOND OUTPUT", "third"]
    result = aethr("run", "task", "--json", cwd=repo, env=script(tmp_path, replies))
    assert result.code == 0, result.both
    prompts = [json.loads(x) for x in result.out.splitlines() if '"prompt_built"' in x]
    return str(prompts[2]["prompt"])


def test_history_all(repo: Path, tmp_path: Path) -> None:
    prompt = third_prompt(repo, tmp_path, "all")
    assert "## first (a, pass 1)\nFIRST OUTPUT line one\nmore of first" in prompt
    assert "## second (b, pass 1)\nSECOND OUTPUT" in prompt


def test_history_latest(repo: Path, tmp_path: Path) -> None:
    prompt = third_prompt(repo, tmp_path, "latest")
    assert "SECOND OUTPUT" in prompt and "FIRST OUTPUT" not in prompt


def test_history_summary(repo: Path, tmp_path: Path) -> None:
    prompt = third_prompt(repo, tmp_path, "summary")
    assert "- first (a, pass 1): FIRST OUTPUT line one" in prompt
    assert "more of first" not in prompt


def test_history_none(repo: Path, tmp_path: Path) -> None:
    prompt = third_prompt(repo, tmp_path, "none")
    assert "FIRST OUTPUT" not in prompt and "SECOND OUTPUT" not in prompt
    assert "# Earlier steps" not in prompt


def test_long_earlier_output_is_bounded(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, HISTORY.format(mode="all"))
    replies = ["x" * 100_000, "y" * 100_000, "z"]
    result = aethr("run", "task", "--json", cwd=repo, env=script(tmp_path, replies))
    prompt = [json.loads(x) for x in result.out.splitlines() if '"prompt_built"' in x][2]["prompt"]
    assert len(prompt) < 60_000
    assert "[truncated:" in prompt


def test_no_task_without_terminal_exits_2(repo: Path) -> None:
    aethr("init", "custom", cwd=repo)
    result = aethr("run", cwd=repo)
    assert result.code == 2
    assert "no task given" in result.err
    assert aethr("run", "   ", cwd=repo).code == 2


def _run_in_pty(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI with a real terminal on stdin, as a person at a shell would."""
    controller, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aethr", *args],
        cwd=cwd,
        env={**os.environ, **env},
        stdin=child,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    os.close(child)
    out, _ = proc.communicate(timeout=ceiling(120))
    os.close(controller)
    return proc.returncode, out.decode()


def _editor(folder: Path, script: str) -> dict[str, str]:
    """An AETHR_EDITOR that runs `script` (a sh body; "$1" is the task file)."""
    return {"AETHR_EDITOR": str(shell_script(folder / "editor.sh", script))}


def test_task_from_the_editor(repo: Path, tmp_path: Path) -> None:
    aethr("init", "custom", cwd=repo)
    env = _editor(tmp_path, 'printf "rename the helper\\n# a comment\\n" > "$1"')
    code, out = _run_in_pty(["run"], repo, env)
    assert code == 0, out
    assert "Output of the assistant for: rename the helper" in out


def test_empty_task_from_the_editor_aborts(repo: Path, tmp_path: Path) -> None:
    aethr("init", "custom", cwd=repo)
    code, out = _run_in_pty(["run"], repo, _editor(tmp_path, ': > "$1"'))
    assert code == 2
    assert "the task is empty" in out
