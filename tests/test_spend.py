"""The run's spend and its output through the CLI, on real repositories: a spend that keeps
what it knows (a hang, an agent's `total_cost_usd`, a server without usage), and a step's
output that is only what its backend said.

Model steps make real LiteLLM calls to the loopback fake (gpt-4o-mini: priced by the
bundled table); agent steps run a stand-in script as the Claude Code binary, speaking its
stream-json events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import LIVE_LOOP, aethr, ceiling, shell_script, write_workflow
from tests.fake_openai import FakeOpenAI
from tests.test_resume import resume_path

BIG = {"kind": "stream", "text": "Review status: revise", "prompt_tokens": 100_000, "completion_tokens": 10_000}

AGENT_LOOP = """\
workflow: done
roles:
  implementer: Implement it.
models:
  implementer: anthropic:claude-sonnet-4-5
steps:
  - id: implement
    role: implementer
    backend: claude
{repeat}"""


def live(server: FakeOpenAI, **more: str) -> dict[str, str]:
    return {"AETHR_LIVE": "1", "OPENAI_API_KEY": "sk-test-0123456789", "OPENAI_API_BASE": server.base_url, **more}


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def claude_stand_in(folder: Path, reply: str, result: dict[str, Any], writes: str = "") -> dict[str, str]:
    """A Claude Code stand-in: reads its prompt, runs `writes` (shell), replies `reply` and ends
    with the `result` event given."""
    text = {"type": "assistant", "message": {"id": "m1", "content": [{"type": "text", "text": reply}]}}
    final = {"type": "result", "subtype": "success", "is_error": False, "result": reply, **result}
    lines = "\n".join(f"echo '{json.dumps(e)}'" for e in (text, final))
    agent = shell_script(folder / "claude", f"cat >/dev/null\n{writes}\n{lines}")
    return {"AETHR_LIVE": "1", "AETHR_CLAUDE_BIN": str(agent), "ANTHROPIC_API_KEY": "sk-test-agent-0123456789"}


def test_a_hang_then_successes_stop_at_the_cap_and_a_resume_counts_the_floor(repo: Path, server: FakeOpenAI) -> None:
    """A timed-out call's cost is unknown; it never erases the known cost of the calls after it."""
    write_workflow(repo, LIVE_LOOP.format(max=5))
    server.script = [{"kind": "hang"}, BIG]  # then BIG again and again: $0.021 a call
    first = aethr(
        "run",
        "task",
        "--max-cost",
        "0.05",
        "--json",
        cwd=repo,
        env=live(server, AETHR_FIRST_BYTE_TIMEOUT=str(round(ceiling(15)))),
    )
    assert first.code == 6, first.both
    assert len(server.requests) == 4, "the hang, its retry, review of pass 1, implement of pass 2; then the cap"
    seen = events(first.out)
    notice = next(e for e in seen if e["event"] == "notice" and "cap" in e["text"])
    assert "of its $0.0500 cap (84%)" in notice["text"], "the 80% notice, crossed at 84%, says 84%"
    failed = next(e for e in seen if e["event"] == "run_failed")
    finished = seen[-1]
    assert finished["event"] == "run_finished" and finished["cap_usd"] == 0.05 and finished["exit_code"] == 6
    spent = finished["usage"]["cost_usd"]
    assert spent >= 0.05 and finished["usage"]["at_least"] is True, "the known floor, marked as one"
    assert failed["usage"] == finished["usage"], "run_failed and run_finished give the same spent"
    assert f"(spent ≥${spent:.4f})" in failed["reason"], "so does the cap's message"
    path = resume_path(first.err)
    saved = json.loads(Path(path).read_text())
    assert saved["spent"]["cost_usd"] == spent and saved["spent"]["at_least"] is True
    low = aethr("run", "--resume-checkpoint", path, "--max-cost", "0.06", cwd=repo, env=live(server))
    assert low.code == 2, low.both
    assert f"at or below what this run already spent (at least ${spent:.4f})" in low.err


def test_cap_usd_is_in_run_finished_on_success(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, LIVE_LOOP.format(max=2))
    server.script = [{"kind": "stream", "text": "Review status: pass"}]
    result = aethr("run", "task", "--max-cost", "0.5", "--json", cwd=repo, env=live(server))
    assert result.code == 0, result.both
    finished = events(result.out)[-1]
    assert finished["event"] == "run_finished" and finished["cap_usd"] == 0.5 and finished["status"] == "ok"


def test_a_server_without_usage_is_an_estimate_and_a_floor(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, LIVE_LOOP.format(max=2))
    server.script = [{"kind": "stream", "text": "Review status: pass", "usage": False}]
    shown = aethr("run", "task", cwd=repo, env=live(server))
    assert shown.code == 0, shown.both
    assert "tokens ~" in shown.out and "≥$" in shown.out, "estimated tokens are marked, their cost is a floor"
    result = aethr("run", "task", "--json", cwd=repo, env=live(server))
    usage = events(result.out)[-1]["usage"]
    assert usage["estimated"] is True and usage["at_least"] is True and usage["cost_usd"] > 0


def test_claude_total_cost_usd_alone_is_booked_in_full(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, AGENT_LOOP.format(repeat=""))
    env = claude_stand_in(tmp_path, "all done", {"total_cost_usd": 0.25})
    result = aethr("run", "task", "--json", "--max-cost", "1", cwd=repo, env=env)
    assert result.code == 0, result.both
    finished = events(result.out)[-1]
    assert finished["usage"]["cost_usd"] == 0.25 and finished["usage"]["at_least"] is False
    assert finished["steps"][0]["usage"]["cost_usd"] == 0.25


def test_an_agents_note_of_its_changes_never_ends_an_until_contains_loop(repo: Path, tmp_path: Path) -> None:
    """It writes DONE.md and says it is not finished: aethr's "changed … DONE.md" is not its reply."""
    loop = "    repeat: {back_to: implement, until_contains: DONE, max_iterations: 2}\n"
    write_workflow(repo, AGENT_LOOP.format(repeat=loop))
    env = claude_stand_in(tmp_path, "not finished", {"total_cost_usd": 0.01}, writes="echo x > DONE.md")
    result = aethr("run", "task", "--json", cwd=repo, env=env)
    assert result.code == 5, result.both
    seen = events(result.out)
    checks = [e for e in seen if e["event"] == "loop_iteration"]
    assert [(e["passed"], e["reason"]) for e in checks] == [(False, "not found: 'DONE'")] * 2
    assert any(
        e["event"] == "text" and "[aethr] step 'implement' changed 1 file(s): DONE.md" in e["text"] for e in seen
    )
    outputs = [e["output"] for e in seen if e["event"] == "step_finished"]
    assert outputs == ["not finished\n", "not finished\n"], "the step's output is the agent's reply only"
    saved = json.loads(Path(resume_path(result.err)).read_text())
    assert all("[aethr]" not in r["output"] for r in saved["results"]), "nor in the checkpoint"


def test_an_agent_that_reports_no_cost_needs_a_priced_model_under_a_cap(repo: Path, tmp_path: Path) -> None:
    text = AGENT_LOOP.format(repeat="").replace("backend: claude", "backend: codex")
    write_workflow(repo, text.replace("anthropic:claude-sonnet-4-5", "openai:team-model"))
    agent = shell_script(tmp_path / "codex", "touch ran; exit 1")
    env = {"AETHR_LIVE": "1", "AETHR_CODEX_BIN": str(agent), "OPENAI_API_KEY": "sk-test-0123456789"}
    result = aethr("run", "task", "--max-cost", "1", cwd=repo, env=env)
    assert result.code == 4, result.both
    assert "step 'implement' runs codex with openai/team-model, which reports no cost" in result.err
    assert not (repo / "ran").exists(), "refused before the run"
    with (repo / ".aethr.yaml").open("a") as workflow:  # a `prices:` entry prices it as the relay meters it
        workflow.write("prices:\n  openai:team-model: {input: 1, output: 2}\n")
    priced = aethr("run", "task", "--max-cost", "1", cwd=repo, env=env)
    assert (repo / "ran").exists(), priced.both
