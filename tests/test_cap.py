"""The spend cap, through real LiteLLM calls to the loopback server (which reports usage),
with a model the bundled table prices (gpt-4o-mini: $0.15 / $0.60 per million tokens)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import LIVE_LOOP, aethr, ceiling, make_repo, write_workflow
from tests.fake_openai import FakeOpenAI
from tests.test_opencode import BINARY, WORKFLOW, _none_left, needs_opencode, opencode_env, sleeper_then_runaway
from tests.test_resume import checkpoints, resume_path

BIG = {"kind": "stream", "text": "Review status: revise", "prompt_tokens": 100_000, "completion_tokens": 10_000}


def live(server: FakeOpenAI) -> dict[str, str]:
    return {"AETHR_LIVE": "1", "OPENAI_API_KEY": "sk-test-0123456789", "OPENAI_API_BASE": server.base_url}


def test_a_cap_below_one_call_stops_before_any_request(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, LIVE_LOOP.format(max=3))
    result = aethr("run", "task", "--max-cost", "0.000001", cwd=repo, env=live(server))
    assert result.code == 6, result.both
    assert "spend cap of $0.0000010 is reached at step 'implement'" in result.err and "its prompt alone" in result.err
    assert server.requests == []


def test_a_cap_reached_on_loop_pass_2_then_a_higher_cap_finishes(
    repo: Path, server: FakeOpenAI, clean_env: Path
) -> None:
    write_workflow(repo, LIVE_LOOP.format(max=3))
    server.script = [BIG]  # each call: 100,000 + 10,000 tokens = $0.021
    first = aethr("run", "task", "--max-cost", "0.05", cwd=repo, env=live(server))
    assert first.code == 6, first.both
    assert len(server.requests) == 3, "implement and review of pass 1, implement of pass 2; then the cap"
    assert "of its $0.0500 cap (84%)" in first.err, "a notice on crossing 80% of the cap, with the share"
    assert "of a $0.0500 cap" in first.out, "the summary shows the spent against the cap"
    # $0.05 - $0.042 spent - the prompt leaves about $0.008: at $0.60 a million, about 13,300 tokens
    assert 13_000 < server.requests[2]["max_tokens"] < 13_340, "max tokens: what the rest of the budget pays for"
    assert "max_tokens" not in server.requests[0] or server.requests[0]["max_tokens"] > 80_000
    path = resume_path(first.err)
    saved = json.loads(Path(path).read_text())
    assert saved["spent"]["cost_usd"] >= 0.06 - 1e-9 and saved["next_index"] == 1
    low = aethr("run", "--resume-checkpoint", path, "--max-cost", "0.02", cwd=repo, env=live(server))
    assert low.code == 2 and "at or below what this run already spent" in low.err
    server.script = [{"kind": "stream", "text": "Review status: pass"}]
    server.requests.clear()
    done = aethr("run", "--resume-checkpoint", path, "--max-cost", "2", "--json", cwd=repo, env=live(server))
    assert done.code == 0, done.both
    finished = json.loads(done.out.splitlines()[-1])
    assert finished["usage"]["cost_usd"] > 0.06, "the spend carried over from the first attempt"
    assert checkpoints(clean_env) == []


def test_an_unpriced_model_under_a_cap_needs_a_price(repo: Path, server: FakeOpenAI) -> None:
    text = "workflow: w\nroles: {r: go}\nmodels: {r: openai:team-model}\nsteps:\n  - {id: s, role: r}\n"
    write_workflow(repo, text)
    refused = aethr("run", "task", cwd=repo, env={**live(server), "AETHR_MAX_COST": "1"})
    assert refused.code == 4 and "prices:" in refused.err and server.requests == []
    write_workflow(repo, text + "prices:\n  openai:team-model: {input: 1, output: 2}\n")
    priced = aethr("run", "task", "--json", cwd=repo, env={**live(server), "AETHR_MAX_COST": "1"})
    assert priced.code == 0, priced.both
    assert json.loads(priced.out.splitlines()[-1])["usage"]["cost_usd"] > 0


@needs_opencode
def test_an_opencode_step_is_stopped_at_the_cap_with_its_tree(tmp_path: Path, server: FakeOpenAI) -> None:
    repo = make_repo(tmp_path / "repo")
    write_workflow(repo, WORKFLOW.format(unsafe="true", timeout=round(ceiling(120))))
    marker = "4949.5"
    server.script = [*sleeper_then_runaway(marker)[:1], {"kind": "stream", "text": "more work", "prompt_tokens": 9000}]
    env = opencode_env(tmp_path, server, cost={"input": 1000.0, "output": 1000.0})  # USD per million: ~$0.02 a call
    result = aethr("run", "task", "--max-cost", "0.01", "--json", cwd=repo, env=env)
    assert result.code == 6, result.out[-2000:] + result.err
    events = [json.loads(line) for line in result.out.splitlines()]
    budget = next(e for e in events if e["event"] == "budget")
    assert budget["step_id"] == "implement" and budget["spent_usd"] >= 0.01 and budget["cap_usd"] == 0.01
    assert events[-2]["event"] == "run_failed" and events[-2]["exit_code"] == 6
    assert (events[-1]["event"], events[-1]["status"]) == ("run_finished", "spend_cap")
    assert _none_left((BINARY, "run", "--format", "json", "--dir", str(repo)), ("sleep", marker)) == [], (
        "the agent's whole tree was stopped"
    )
    assert "its edits so far stay in the working tree" in result.err or "it had changed no files" in result.err
