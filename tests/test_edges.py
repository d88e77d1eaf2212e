"""The edges a new user hits, each through the CLI: interrupts at any moment, resumes that
keep their mode and their lock, strict input, closed pipes, failed writes, and output
that says what happened.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import MOCK_TWO_STEPS, aethr, ceiling, handles_signals, make_repo, shell_script, write_workflow
from tests.fake_openai import FakeOpenAI
from tests.test_resume import FAIL, KEY, THREE, checkpoints, env, resume_path

MOCK_TWO = MOCK_TWO_STEPS


def _spawn(args: list[str], cwd: Path, extra: dict[str, str] | None = None, tty: bool = False) -> subprocess.Popen[str]:
    stdin: int | None = None
    if tty:
        controller, child = pty.openpty()
        stdin = child
    proc = subprocess.Popen(
        [sys.executable, "-m", "aethr", *args],
        cwd=cwd,
        env={**os.environ, **(extra or {})},
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if tty:
        os.close(child)
        proc.controller = controller  # type: ignore[attr-defined]
    return proc


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def _wait_until(check: object, limit: float = 300) -> None:
    deadline = time.monotonic() + ceiling(limit)
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the moment to signal never came"
        time.sleep(0.02)


def _interrupted(proc: subprocess.Popen[str], sig: signal.Signals) -> tuple[str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=ceiling(120))
    assert proc.returncode == 130, out + err
    assert "interrupted" in err and "Traceback" not in err, err
    return out, err


# 1. Interrupts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_while_litellm_imports_exits_130_and_leaves_nothing(
    repo: Path, server: FakeOpenAI, clean_env: Path, sig: signal.Signals
) -> None:
    write_workflow(repo, THREE)
    server.script = [{"kind": "hang"}]
    proc = _spawn(["run", "task"], repo, env(server))
    # aethr's handlers are in, and a second thread is importing LiteLLM (seconds), before any request.
    _wait_until(lambda: handles_signals(proc.pid) and _threads(proc.pid) > 1)
    _interrupted(proc, sig)
    assert server.requests == [] and checkpoints(clean_env) == []


def test_an_interrupt_while_the_editor_is_open_exits_130(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, MOCK_TWO)
    started = tmp_path / "editor-started"
    editor = shell_script(tmp_path / "slow-editor", f"touch {started}\nexec sleep 62.5")
    proc = _spawn(["run"], repo, {"AETHR_EDITOR": str(editor)}, tty=True)
    _wait_until(started.exists)
    _interrupted(proc, signal.SIGINT)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_during_validate_exits_130(tmp_path: Path, sig: signal.Signals) -> None:
    steps = "".join(f"  - {{id: s{i}, role: r, context: [git_diff, 'file:a{i}.md']}}\n" for i in range(20_000))
    write_workflow(tmp_path, f"workflow: big\nroles: {{r: go}}\nsteps:\n{steps}")
    proc = _spawn(["validate"], tmp_path)
    _wait_until(lambda: handles_signals(proc.pid))  # from here on: importing, then parsing 20,000 steps (seconds)
    _interrupted(proc, sig)


# 2-5. Resumes ----------------------------------------------------------------------------------


def test_a_live_checkpoint_resumes_live_without_aethr_live(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, THREE)
    server.script = [{"kind": "stream", "text": "ONE"}, FAIL]
    path = resume_path(aethr("run", "task", cwd=repo, env=env(server)).err)
    server.script = [{"kind": "stream", "text": "two"}, {"kind": "stream", "text": "three"}]
    server.requests.clear()
    keys_only = {"OPENAI_API_KEY": KEY, "OPENAI_API_BASE": server.base_url}
    result = aethr("run", "--resume-checkpoint", path, cwd=repo, env=keys_only)
    assert result.code == 0, result.both
    assert len(server.requests) == 2, "the resumed steps called the model, not the mock"
    assert "[mock" not in result.out


def test_a_mock_checkpoint_refuses_a_live_resume_and_is_kept(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, MOCK_TWO)
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(["only one reply"]))
    failed = aethr("run", "task", cwd=repo, env={"AETHR_MOCK_RESPONSES": str(script)})
    assert failed.code == 1, failed.both
    path = resume_path(failed.err)
    result = aethr("run", "--resume-checkpoint", path, cwd=repo, env={"AETHR_LIVE": "1", "OPENAI_API_KEY": KEY})
    assert result.code == 2, result.both
    assert "checkpoint is of a mock run" in result.err
    assert Path(path).exists()


@pytest.mark.waits
def test_last_skips_a_running_run_and_an_explicit_path_to_it_is_refused(
    repo: Path, server: FakeOpenAI, clean_env: Path
) -> None:
    write_workflow(repo, THREE)
    server.script = [{"kind": "stream", "text": "ONE"}, FAIL]
    finished_early = resume_path(aethr("run", "task", cwd=repo, env=env(server)).err)
    server.script = [{"kind": "hang"}]
    server.requests.clear()
    # The hang outlasts the test: a retry after the first-byte timeout would take the answers
    # scripted below for the resume (seen on a loaded machine).
    running = _spawn(["run", "task"], repo, {**env(server), "AETHR_FIRST_BYTE_TIMEOUT": "3600"})
    try:
        _wait_until(lambda: len(server.requests) == 1 and len(checkpoints(clean_env)) == 2)
        running_path = next(str(p) for p in checkpoints(clean_env) if str(p) != finished_early)
        listed = aethr("checkpoints", cwd=repo)
        assert "(running)" in listed.out, listed.out
        refused = aethr("run", "--resume-checkpoint", running_path, cwd=repo, env=env(server))
        assert refused.code == 4 and "still going" in refused.err, refused.both
        server.script = [{"kind": "stream", "text": "two"}, {"kind": "stream", "text": "three"}]
        resumed = aethr("run", "--resume-checkpoint", "last", cwd=repo, env=env(server))
        assert resumed.code == 0, resumed.both
        assert not Path(finished_early).exists() and Path(running_path).exists()
    finally:
        running.send_signal(signal.SIGINT)
        running.communicate(timeout=ceiling(120))


def test_auth_login_between_a_failure_and_its_resume(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, THREE)
    server.script = [{"kind": "status", "code": 401, "message": "bad key"}]
    live = {"AETHR_LIVE": "1", "OPENAI_API_BASE": server.base_url, "OPENAI_API_KEY": "sk-wrong-000000000"}
    failed = aethr("run", "task", cwd=repo, env=live)
    assert failed.code == 1 and "auth login openai" in failed.err, failed.both
    path = resume_path(failed.err)
    login = aethr("auth", "login", "openai", "--key", KEY, cwd=repo)
    assert login.code == 0 and "added .env" in login.out.lower(), login.both
    server.script = [{"kind": "stream", "text": "ok"}]
    without_key = {k: v for k, v in live.items() if k != "OPENAI_API_KEY"}
    result = aethr("run", "--resume-checkpoint", path, cwd=repo, env=without_key)
    assert result.code == 0, result.both
    assert server.headers[-1]["Authorization"] == f"Bearer {KEY}", "the key from .env is used"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("next_index", -1, "next_index must be a whole number of at least 0"),
        ("next_index", 99, "past the workflow's last"),
        ("next_index", True, "next_index must be a whole number"),
        ("passes", {"ghost": 1}, "loop count for 'ghost'"),
        ("mode", "turbo", "mode 'turbo'"),
    ],
)
def test_a_garbled_checkpoint_field_is_refused(
    repo: Path, tmp_path: Path, field: str, value: object, message: str
) -> None:
    write_workflow(repo, MOCK_TWO)
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(["only one reply"]))
    path = Path(resume_path(aethr("run", "task", cwd=repo, env={"AETHR_MOCK_RESPONSES": str(script)}).err))
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    result = aethr("run", "--resume-checkpoint", str(path), cwd=repo)
    assert result.code == 3, result.both
    assert message in result.err


# 6, 9. Strict input ----------------------------------------------------------------------------

ALIAS_BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
)


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    write_workflow(tmp_path, ALIAS_BOMB)
    result = aethr("validate", cwd=tmp_path, timeout=60)
    assert result.code == 3, result.both
    assert ".aethr.yaml:2:8: YAML aliases (*a) are not allowed" in result.err


GOOD = "workflow: w\nroles: {r: go}\nmodels: {r: openai:gpt-4o-mini}\nsteps:\n  - id: s\n    role: r\n"
LOOSE = [
    (GOOD + '    unsafe_permissions: "yes"\n', ":7:25", "valid boolean"),
    (GOOD + "    repeat: {back_to: s, until_review_pass: true, max_iterations: true}\n", ":7:67", "valid integer"),
    (GOOD + "    timeout: 1.0e+309\n", ":7:14", "finite number"),
    (GOOD.replace("openai:gpt-4o-mini", '""'), ":3:13", "the model is empty"),
    (GOOD.replace("openai:gpt", "opnai:gpt"), ":3:13", "unknown provider 'opnai' in 'opnai:gpt-4o-mini' (did you mean"),
    (GOOD.replace("openai:gpt-4o-mini", "gpt-nonexistent"), ":3:13", "names no provider"),
]


@pytest.mark.parametrize(("text", "where", "message"), LOOSE)
def test_each_loose_value_is_refused_at_load_time(tmp_path: Path, text: str, where: str, message: str) -> None:
    write_workflow(tmp_path, text)
    result = aethr("validate", cwd=tmp_path)
    assert result.code == 3, result.both
    assert f".aethr.yaml{where}" in result.err and message in result.err, result.err


@pytest.mark.parametrize(
    ("variables", "code", "message"),
    [
        ({"AETHR_MODEL": "opnai:gpt-4o-mini"}, 2, "AETHR_MODEL='opnai:gpt-4o-mini': unknown provider 'opnai'"),
        ({"AETHR_MOCK_RESPONSES": "/nonexistent/replies.json"}, 3, "AETHR_MOCK_RESPONSES"),
    ],
)
def test_setup_errors_come_before_the_run_and_leave_no_checkpoint(
    repo: Path, clean_env: Path, variables: dict[str, str], code: int, message: str
) -> None:
    write_workflow(repo, MOCK_TWO)
    result = aethr("run", "task", cwd=repo, env=variables)
    assert result.code == code, result.both
    assert message in result.err
    assert "resume:" not in result.err and checkpoints(clean_env) == []


# 7. Pipes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [[], ["--json"], ["--show-prompt"]], ids=["run", "json", "show-prompt"])
def test_a_closed_stdout_is_a_quiet_exit(repo: Path, tmp_path: Path, clean_env: Path, flags: list[str]) -> None:
    big = "word " * 60_000  # far more than a pipe holds, so aethr writes after `head` has gone
    script = tmp_path / "replies.json"
    script.write_text(json.dumps([big, big]))
    write_workflow(repo, MOCK_TWO.replace("    role: planner\n", "    role: planner\n    context: ['glob:**']\n"))
    (repo / "big.md").write_text(big)
    command = f"set -o pipefail; {sys.executable} -m aethr run task {' '.join(flags)} | head -1"
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=repo,
        env={**os.environ, "AETHR_MOCK_RESPONSES": str(script)},
        capture_output=True,
        text=True,
        timeout=ceiling(120),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and len(proc.stdout.splitlines()) == 1
    assert checkpoints(clean_env) == []


# 8. Writes -------------------------------------------------------------------------------------


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """A folder nobody may write to: chmod for a normal user; root ignores modes, so there the
    folder is made immutable (chattr +i), or the test is skipped where that is not possible."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root, and chattr +i is not possible here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize("command", [["init", "custom"], ["auth", "login", "openai", "--key", KEY]])
def test_a_write_into_a_read_only_project_names_the_path(tmp_path: Path, command: list[str]) -> None:
    project = make_repo(tmp_path / "project")
    with read_only(project):
        result = aethr(*command, cwd=project)
        left = sorted(p.name for p in project.iterdir())
    assert result.code == 4, result.both
    assert f"cannot write {project}" in result.err and "Traceback" not in result.err
    assert left == [".git", "README.md"], "no temporary file is left behind"


def test_a_folder_named_like_the_workflow(tmp_path: Path) -> None:
    (tmp_path / ".aethr.yaml").mkdir()
    forced = aethr("init", "custom", "--force", cwd=tmp_path)
    assert forced.code == 4 and f"cannot write {tmp_path / '.aethr.yaml'}: it is a folder" in forced.err
    validate = aethr("validate", "--config", str(tmp_path / ".aethr.yaml"), cwd=tmp_path)
    assert validate.code == 3 and "is a folder" in validate.err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".aethr.yaml"]


# 10-11. Output that says what happened ---------------------------------------------------------


def test_a_normal_run_says_which_context_gave_nothing(tmp_path: Path) -> None:
    write_workflow(
        tmp_path,
        MOCK_TWO.replace("    role: planner\n", "    role: planner\n    context: [git_diff, 'file:gone.md']\n"),
    )
    result = aethr("run", "task", cwd=tmp_path)
    assert result.code == 0, result.both
    assert "aethr: step 'plan': context file:gone.md: skipped (missing: no such file)" in result.err
    assert "aethr: step 'plan': context git_diff: skipped (not a git repository)" in result.err
    events = [json.loads(line) for line in aethr("run", "task", "--json", cwd=tmp_path).out.splitlines()]
    notes = [e for e in events if e["event"] == "context_note"]
    assert {(n["source"], n["status"]) for n in notes} == {("file:gone.md", "skipped"), ("git_diff", "skipped")}


def test_json_reports_a_config_error_as_run_failed(tmp_path: Path) -> None:
    write_workflow(tmp_path, "workflow: w\n")
    result = aethr("run", "task", "--json", cwd=tmp_path)
    assert result.code == 3
    failed, last = (json.loads(line) for line in result.out.splitlines()[-2:])
    assert failed["event"] == "run_failed" and failed["exit_code"] == 3 and "steps is required" in failed["reason"]
    assert (last["event"], last["exit_code"], last["status"]) == ("run_finished", 3, "invalid_config")


def test_the_summary_after_a_loop_runs_out_has_no_phantom_row(repo: Path, tmp_path: Path) -> None:
    text = MOCK_TWO + "    repeat: {back_to: plan, until_review_pass: true, max_iterations: 2}\n"
    write_workflow(repo, text)
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(["p1", "Review status: revise", "p2", "Review status: revise"]))
    result = aethr("run", "task", cwd=repo, env={"AETHR_MOCK_RESPONSES": str(script)})
    assert result.code == 5, result.both
    rows = [line.split() for line in result.out.split("run failed", 1)[1].splitlines()[2:] if line.strip()]
    assert [row[0] for row in rows] == ["plan", "review", "plan", "review"], rows
    assert all(row[3] == "ok" for row in rows)


def test_a_failed_row_names_its_role_and_model(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, THREE)
    server.script = [{"kind": "stream", "text": "ONE"}, {"kind": "status", "code": 403, "message": "not yours"}]
    result = aethr("run", "task", cwd=repo, env=env(server))
    assert result.code == 1, result.both
    assert "the key may not use this model (403): not yours" in result.err
    assert "resume later" not in result.err and "Error" not in result.err.split("hint:")[0]
    failed = [line for line in result.out.splitlines() if line.strip().startswith("two ")][-1]
    assert failed.split()[:4] == ["two", "b", "openai/gpt-4o-mini", "failed"]
    summary = result.out.split("run failed", 1)[1].splitlines()
    total = float(summary[0].split("cost $", 1)[1])
    rows = [float(line.split("$")[-1]) for line in summary[2:] if "$" in line]
    assert len(rows) == 2 and sum(rows) == pytest.approx(total), "the rows add up to the total"


def test_a_complete_answer_without_streaming_is_accepted(repo: Path, server: FakeOpenAI) -> None:
    write_workflow(repo, THREE)
    server.script = [{"kind": "json", "text": "whole answer"}]
    result = aethr("run", "task", cwd=repo, env=env(server))
    assert result.code == 0, result.both
    assert "whole answer" in result.out


def test_the_untracked_workflow_file_stays_out_of_the_diff(repo: Path) -> None:
    write_workflow(repo, MOCK_TWO.replace("    role: planner\n", "    role: planner\n    context: [git_diff]\n"))
    (repo / "change.txt").write_text("a change\n")
    result = aethr("run", "task", "--show-prompt", cwd=repo)
    assert "+++ b/change.txt" in result.out
    assert "+++ b/.aethr.yaml" not in result.out
    assert "[left out .aethr.yaml: the untracked workflow file is aethr's" in result.out


def test_checkpoints_are_printed_only_when_kept_and_can_be_pruned(repo: Path, tmp_path: Path, clean_env: Path) -> None:
    write_workflow(repo, MOCK_TWO)
    ok = aethr("run", "task", cwd=repo)
    assert "checkpoint" not in ok.err
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(["only one"]))
    failed = aethr("run", "the failing task", cwd=repo, env={"AETHR_MOCK_RESPONSES": str(script)})
    listed = aethr("checkpoints", cwd=repo)
    assert "mock" in listed.out and "after 'plan'" in listed.out and "the failing task" in listed.out
    assert resume_path(failed.err) in listed.out
    pruned = aethr("checkpoints", "--prune", cwd=repo)
    assert "Removed 1 checkpoint(s)" in pruned.out and checkpoints(clean_env) == []


# 12. What the help says ------------------------------------------------------------------------


def test_help_names_the_modes_the_variables_and_the_exit_codes(tmp_path: Path) -> None:
    shown = aethr("--help", cwd=tmp_path).out + aethr("run", "--help", cwd=tmp_path).out
    for word in ("mock run", "AETHR_LIVE", "AETHR_MODEL", "Exit codes", "70 internal", "130 interrupted"):
        assert word in shown


def test_auth_login_keeps_every_character_of_a_key(repo: Path, server: FakeOpenAI) -> None:
    odd = "sk-it's-a-\\key-$HOME-#1"
    assert aethr("auth", "login", "openai", "--key", odd, cwd=repo).code == 0
    write_workflow(repo, THREE)
    result = aethr("run", "task", cwd=repo, env={"AETHR_LIVE": "1", "OPENAI_API_BASE": server.base_url})
    assert result.code == 0, result.both
    assert server.headers[0]["Authorization"] == f"Bearer {odd}"
