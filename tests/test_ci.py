"""aethr in CI: the GitHub Actions recipe's shell steps, run in order as the runner would, and
the reports every run ends with (`run_finished`, --output, the step summary, `::error`).

The recipe runs against a bare "origin" with a base and a pull-request branch, the
loopback model server, `GITHUB_*` variables, and `gh` replaced by a stub on PATH that
records its arguments. `uses:` steps stand for the checkout (a clone here) and the
Python setup; the install step is skipped (aethr is already installed in this venv).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

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

RECIPE = Path(__file__).parent.parent / "examples" / "github" / "aethr-review.yml"
PRESET = Path(__file__).parent.parent / "presets" / "review-existing-diff.yaml"


def pull_request(tmp_path: Path) -> Path:
    """A bare origin with `main` (holding the trusted workflow) and `feature`; the job's checkout."""
    base = make_repo(tmp_path / "author", {"app.py": "def add(a, b):\n    return a + b\n"})
    (base / ".aethr.yaml").write_text(PRESET.read_text())
    git(base, "add", "-A")
    git(base, "commit", "-qm", "the review workflow")
    git(base, "checkout", "-qb", "feature")
    (base / "app.py").write_text("def add(a, b):\n    return a - b  # PR-CHANGE\n")
    (base / ".aethr.yaml").write_text("workflow: hijacked\nroles: {x: y}\nsteps: [{id: s, run: 'touch pwned'}]\n")
    git(base, "commit", "-qam", "the pull request")
    git(tmp_path, "clone", "-q", "--bare", str(base), "origin.git")
    git(tmp_path, "clone", "-q", "--branch", "feature", str(tmp_path / "origin.git"), "workspace")
    return tmp_path / "workspace"


def gh_stub(tmp_path: Path) -> Path:
    folder = tmp_path / "stub-bin"
    folder.mkdir()
    # It records its arguments; `--edit-last` fails, as with no earlier comment of this job.
    calls = tmp_path / "gh-calls"
    shell_script(folder / "gh", f'printf "%s\\n" "$*" >> "{calls}"\ncase "$*" in *--edit-last*) exit 1;; esac')
    return folder


def expression(text: str, values: dict[str, str]) -> str:
    """`${{ … }}` replaced from `values`; an expression the test does not know fails it."""

    def one(match: re.Match[str]) -> str:
        key = match.group(1).strip()
        assert key in values, f"the recipe uses ${{{{ {key} }}}}, which this test does not provide"
        return values[key]

    return re.sub(r"\$\{\{(.+?)\}\}", one, text)


def run_recipe(tmp_path: Path, server: FakeOpenAI) -> tuple[dict[str, int], Path, str]:
    """Each `run:` step in order, with GitHub's semantics for failures and `if:`; the exit
    code of each step, the summary file and everything printed."""
    work = pull_request(tmp_path)
    summary = tmp_path / "summary.md"
    temp = tmp_path / "runner-temp"
    temp.mkdir()
    values = {
        "github.base_ref": "main",
        "secrets.OPENAI_API_KEY": "sk-test-ci-0123456789",
        "github.token": "ghs-test-token",
        "github.event.pull_request.number": "7",
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
        "PATH": os.pathsep.join([str(gh_stub(tmp_path)), str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    jobs: dict[str, Any] = yaml.safe_load(RECIPE.read_text())["jobs"]
    codes: dict[str, int] = {}
    printed = ""
    failed = False
    for step in jobs["review"]["steps"]:
        if "run" not in step or step["name"] == "Install aethr":
            continue
        condition = str(step.get("if", ""))
        if failed and "always()" not in condition:
            continue
        step_env = {k: expression(str(v), values) for k, v in step.get("env", {}).items()}
        script = expression(step["run"], values)
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=work,
            env={**env, **step_env},
            capture_output=True,
            text=True,
            timeout=ceiling(120),
        )
        codes[step["name"]] = done.returncode
        printed += done.stdout + done.stderr
        failed = failed or done.returncode != 0
    return codes, summary, printed


REVISE = "The subtraction is a bug: add() now subtracts.\nReview status: revise"


def test_the_recipe_fails_the_check_on_revise_and_posts_the_review(tmp_path: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "stream", "text": REVISE}]
    codes, summary, printed = run_recipe(tmp_path, server)
    assert codes["Review"] == 5, printed
    assert codes["Post the review"] == 0, printed
    review = (tmp_path / "runner-temp" / "aethr-review.md").read_text()
    assert "verdict: **revise**" in review and "add() now subtracts" in review
    prompt = server.prompts()[0]
    assert "PR-CHANGE" in prompt, "the reviewer saw the pull request's diff against the base"
    assert not (tmp_path / "workspace" / "pwned").exists(), "the base's workflow ran, not the pull request's"
    table = summary.read_text()
    assert "aethr · review-existing-diff" in table
    assert "| review | reviewer | openai/gpt-4o-mini | 1 | ok |" in table and "**exit 5** (revise)" in table
    assert "add() now subtracts" not in table, "model text stays out of the summary unless asked"
    calls = (tmp_path / "gh-calls").read_text().splitlines()
    assert calls[0].startswith("pr comment 7 --edit-last --body-file") and calls[1].startswith("pr comment 7 --body")
    assert "sk-test-ci" not in printed + table + review


def test_the_recipe_passes_when_the_review_passes(tmp_path: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "stream", "text": "Looks right.\nReview status: pass"}]
    codes, summary, printed = run_recipe(tmp_path, server)
    assert codes == {"Fetch the base branch": 0, "Review": 0, "Post the review": 0}, printed
    assert "verdict: **pass**" in summary.read_text()


def test_a_provider_error_still_writes_the_summary_and_an_error_line(tmp_path: Path, server: FakeOpenAI) -> None:
    server.script = [{"kind": "status", "code": 400, "message": "scripted bad request"}]
    codes, summary, printed = run_recipe(tmp_path, server)
    assert codes["Review"] == 1, printed
    assert "::error title=aethr::step 'review'" in printed and "scripted bad request" in printed
    assert "**exit 1** (step_failed)" in summary.read_text()
    review = (tmp_path / "runner-temp" / "aethr-review.md").read_text()
    assert "The run failed (exit 1" in review, "--output is written even when the run fails"


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
    from aethr.events import RunStarted, StepFinished, Usage
    from aethr.report import Report, ReportOptions

    summary = tmp_path / "summary.md"
    report = Report(ReportOptions(summary_include_output=include), {"GITHUB_STEP_SUMMARY": str(summary)})
    report.emit(RunStarted("w", "task", "mock", ()))
    finished = StepFinished("review", "reviewer", None, 1, 0.1, Usage(3, 4, None), "MODEL-TEXT\nReview status: pass")
    report.emit(finished)
    report.close(0, None)
    text = summary.read_text()
    assert "verdict: **pass**" in text and "| review | reviewer | - | 1 | ok | 0.1s | 3+4 |" in text
    assert ("MODEL-TEXT" in text) is include
