"""Nothing leaks: a key a model or an agent repeats is masked where it enters the run, so it
reaches no output, prompt, report or checkpoint; a key straddling the per-file cap is not
sent in part; an agent gets the project's `.env` keys only through `env_passthrough`.

Every test runs the CLI on a real repository: the mock (AETHR_MOCK_RESPONSES) or the
loopback fake through LiteLLM, and a stand-in script as the agent binary.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import aethr, git, make_repo, shell_script, write_workflow
from tests.fake_openai import FakeOpenAI
from tests.test_resume import resume_path

THREE_STEPS = """\
workflow: leaks
roles: {{planner: Plan., reviewer: Review., closer: Close.}}
{models}steps:
  - id: plan
    role: planner
  - id: review
    role: reviewer
    context: ['step:plan']
  - id: close
    role: closer
"""
GATEWAY = """\
models:
  planner: {model: 'openai:gpt-4o-mini', api_base: 'http://gw.invalid/v1', api_key_env: GATEWAY_CREDENTIAL}
"""
LIVE = """\
models: {planner: 'openai:gpt-4o-mini', reviewer: 'openai:gpt-4o-mini', closer: 'openai:gpt-4o-mini'}
"""


def _events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _everywhere(repo: Path, tmp_path: Path, env: dict[str, str], secret: str, name: str) -> None:
    """Run the three steps twice (terminal text, then `--json`): the third fails, so a checkpoint
    stays. `secret` is in no output, prompt, report or checkpoint; `****` shows where it was."""
    output, summary = tmp_path / f"{name}-output.md", tmp_path / f"{name}-summary.md"
    env = {**env, "GITHUB_STEP_SUMMARY": str(summary)}
    plain = aethr("run", "task", "--output", str(output), "--summary-include-output", cwd=repo, env=env)
    assert plain.code == 1, plain.both
    assert "****" in plain.out, "the repeated key was shown, masked"
    checkpoint = Path(resume_path(plain.err)).read_text()
    reports = {"output": output.read_text(), "summary": summary.read_text(), "checkpoint": checkpoint}
    assert all("****" in text for text in reports.values()), reports
    as_json = aethr("run", "task", "--json", cwd=repo, env=env)
    assert as_json.code == 1, as_json.both
    prompts = {e["step_id"]: e["prompt"] for e in _events(as_json.out) if e["event"] == "prompt_built"}
    assert "****" in prompts["review"], "the history and step:plan hold the masked answer"
    assert "left out" not in prompts["review"] and "refused" not in prompts["review"]
    shown = {"stdout": plain.out, "stderr": plain.err, "json": as_json.out + as_json.err, **reports, **prompts}
    leaked = [where for where, text in shown.items() if secret in text]
    assert not leaked, f"{secret!r} reached {leaked}"


def _scripted(tmp_path: Path, replies: list[str]) -> dict[str, str]:
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(replies))
    return {"AETHR_MOCK_RESPONSES": str(script)}


KEY = "sk-live-51HxQ2eZvKYlo2C0123456789"
CASES = {
    # name: (workflow models, environment, .env text, the value a reply repeats)
    "name-rule": ("", {"STRIPE_SECRET_KEY": KEY}, "", KEY),
    "dotenv-value": ("", {}, f"DEPLOY_HOOK=https://hooks.invalid/{KEY}\n", f"https://hooks.invalid/{KEY}"),
    "api_key_env": (GATEWAY, {"GATEWAY_CREDENTIAL": "gw-cred-8f3a9c2e71d4"}, "", "gw-cred-8f3a9c2e71d4"),
    "url-password": ("", {}, "MY_SERVICE_URL=https://app:pw-7Hq2xLm9Zr@db.internal/x\n", "pw-7Hq2xLm9Zr"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_key_a_mock_reply_repeats_reaches_nothing(tmp_path: Path, case: str) -> None:
    models, env, dotenv, secret = CASES[case]
    repo = make_repo(tmp_path / "repo")
    write_workflow(repo, THREE_STEPS.format(models=models))
    if dotenv:
        (repo / ".env").write_text(dotenv)
    replies = [f"The config says {secret} and more.", f"Quoting it again: {secret}."]
    _everywhere(repo, tmp_path, {**env, **_scripted(tmp_path, replies)}, secret, case)


def test_the_user_and_password_pair_of_a_url_is_masked_too(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    write_workflow(repo, THREE_STEPS.format(models=""))
    (repo / ".env").write_text("MY_SERVICE_URL=https://app:pw-7Hq2xLm9Zr@db.internal/x\n")
    env = _scripted(tmp_path, ["connect as app:pw-7Hq2xLm9Zr now", "app:pw-7Hq2xLm9Zr"])
    _everywhere(repo, tmp_path, env, "pw-7Hq2xLm9Zr", "pair")


def test_a_key_split_across_two_streamed_chunks_reaches_nothing(tmp_path: Path, server: FakeOpenAI) -> None:
    repo = make_repo(tmp_path / "repo")
    write_workflow(repo, THREE_STEPS.format(models=LIVE))
    secret = "tok-9XbQ7mLp2Wz4Rt8Yk3Vn"
    # Chunks of 16 characters: the key starts at 10, so its first 6 characters end one chunk.
    text = "0123456789" + secret + " is the deploy token."
    one_run = [
        {"kind": "stream", "text": text, "chunk_size": 16},
        {"kind": "stream", "text": "Reviewed: " + text, "chunk_size": 16},
        {"kind": "status", "code": 400, "message": "scripted failure"},
    ]
    server.script = one_run * 2  # the terminal run, then the --json run
    env = {"AETHR_LIVE": "1", "OPENAI_API_KEY": "sk-test-0123456789", "OPENAI_API_BASE": server.base_url}
    _everywhere(repo, tmp_path, {**env, "DEPLOY_TOKEN": secret}, secret, "live")
    sent = json.dumps(server.requests)
    assert "****" in sent and secret not in sent and secret[:6] not in sent, "the second prompt, as sent"


# --- the per-file cap ------------------------------------------------------------------------

CAP = 8_000 * 4  # the per-file cap, in characters
STRADDLING = "cap-straddling-TOKEN-Zq81Lr52Wd7Kx"


def _preview(repo: Path, source: str) -> str:
    write_workflow(
        repo, f"workflow: cap\nroles: {{r: R.}}\nsteps:\n  - id: s\n    role: r\n    context: ['{source}']\n"
    )
    git(repo, "add", ".aethr.yaml")
    git(repo, "commit", "-qm", "workflow")
    result = aethr("run", "task", "--show-prompt", cwd=repo, env={"STRADDLE_TOKEN": STRADDLING})
    assert result.code == 0, result.both
    return result.out


def test_a_key_that_starts_just_before_the_file_cap_is_not_sent_in_part(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "big.txt").write_text("a" * (CAP - 10) + STRADDLING + "\n" + "b" * 100 + "\n")
    shown = _preview(repo, "file:big.txt")
    assert STRADDLING[:10] not in shown
    assert "big.txt: refused: it contains the value" in shown


def test_a_key_that_starts_just_before_the_cut_of_a_diff_is_not_sent_in_part(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"big.txt": "old\n"})

    def offset(filler: int) -> int:
        (repo / "big.txt").write_text("x" * filler + STRADDLING + "\n")
        diff = subprocess.run(["git", "diff"], cwd=repo, check=True, capture_output=True).stdout
        return diff.index(STRADDLING.encode())

    filler = CAP - 10 - (offset(CAP) - CAP)  # the header's length, measured: the key starts 10 before the cut
    assert offset(filler) == CAP - 10
    shown = _preview(repo, "git_diff")
    assert STRADDLING[:10] not in shown
    assert "left out big.txt: it contains the value" in shown


# --- agents ----------------------------------------------------------------------------------

AGENT_STEP = """\
workflow: agent-env
roles: {{implementer: Build.}}
models: {{implementer: '{model}'}}
{passthrough}steps:
  - id: implement
    role: implementer
    backend: {backend}
"""
AGENTS = {  # backend: (model, the variable its provider's key is documented in)
    "claude": ("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY"),
    "codex": ("openai:gpt-4o-mini", "OPENAI_API_KEY"),
    "gemini": ("gemini:gemini-2.5-flash", "GEMINI_API_KEY"),
    "opencode": ("openai/gpt-4o-mini", "OPENAI_API_KEY"),
}


@pytest.mark.parametrize("passthrough", [False, True], ids=["withheld", "passed-through"])
@pytest.mark.parametrize("backend", AGENTS)
def test_an_agent_gets_env_keys_only_through_env_passthrough(tmp_path: Path, backend: str, passthrough: bool) -> None:
    model, key_variable = AGENTS[backend]
    repo = make_repo(tmp_path / "repo")
    named = "env_passthrough: [PASSED_TOKEN]\n" if passthrough else ""
    write_workflow(repo, AGENT_STEP.format(model=model, backend=backend, passthrough=named))
    (repo / ".env").write_text(
        f"{key_variable}=sk-provider-key-0123456789\nSTRIPE_SECRET_KEY=sk_live_withheld_0123456789\n"
        "PASSED_TOKEN=passed-token-0123456789\n"
    )
    seen = tmp_path / "agent-env.txt"
    stand_in = shell_script(tmp_path / "agent", f'env > "{seen}"\ncat >/dev/null\nexit 1')
    result = aethr("run", "task", cwd=repo, env={"AETHR_LIVE": "1", f"AETHR_{backend.upper()}_BIN": str(stand_in)})
    assert result.code == 1, result.both
    environment = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert "STRIPE_SECRET_KEY" not in environment
    assert environment.get(key_variable) == "sk-provider-key-0123456789", "its own provider's key still reaches it"
    assert ("PASSED_TOKEN" in environment) is passthrough


# --- terminal-safe text ----------------------------------------------------------------------

HOSTILE = "before\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07 \x1b[2A\x1b[2K hidden\x1b]0;pwned\x1b\\ \x9b31m back\rafter\n"


@pytest.mark.parametrize("no_color", [False, True], ids=["colour", "NO_COLOR"])
def test_a_reply_with_escape_sequences_shows_none_of_them_on_a_terminal(tmp_path: Path, no_color: bool) -> None:
    from tests.test_terminal import run_on_tty

    repo = make_repo(tmp_path / "repo")
    write_workflow(repo, "workflow: tty\nroles: {planner: Plan.}\nsteps:\n  - id: plan\n    role: planner\n")
    env = _scripted(tmp_path, [HOSTILE]) | ({"NO_COLOR": "1"} if no_color else {})
    code, out = run_on_tty(["run", "task"], repo, env)
    assert code == 0, out
    assert "before" in out and "hidden" in out and "after" in out, "the text itself is shown"
    for sequence in ("\x1b]", "52;c;", "\x1b[2A", "\x1b[2K", "\x9b", "\x07", "pwned", "back\r"):
        assert sequence not in out, f"{sequence!r} reached the terminal"
    as_json = aethr("run", "task", "--json", cwd=repo, env=_scripted(tmp_path, [HOSTILE]))
    text = "".join(e["text"] for e in _events(as_json.out) if e["event"] == "text")
    assert text == HOSTILE, "--json keeps the text as it came (escaped by the encoder)"
    assert "\x1b" not in as_json.out


# --- non-regular paths -----------------------------------------------------------------------


def _special(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory, a FIFO and a socket (bound by a relative name: socket paths are short)."""
    import os
    import socket

    (folder / "folder").mkdir()
    (folder / "folder" / "inside.txt").write_text("inside\n")
    os.mkfifo(folder / "pipe.txt")
    monkeypatch.chdir(folder)
    server = socket.socket(socket.AF_UNIX)
    server.bind("sock.txt")
    server.close()  # the socket file stays


NOTES = {
    "folder": "skipped: it is a directory, not a regular file",
    "pipe.txt": "skipped: it is a FIFO (named pipe), not a regular file",
    "sock.txt": "skipped: it is a socket, not a regular file",
}


@pytest.mark.parametrize("flag", ["plain", "--show-prompt", "--json"])
def test_a_directory_a_fifo_and_a_socket_are_each_one_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    plain = tmp_path / "plain"  # outside git, a glob walks the folder (git lists no FIFOs or sockets)
    plain.mkdir()
    _special(plain, monkeypatch)
    sources = "['file:folder', 'file:pipe.txt', 'file:sock.txt', 'glob:*.txt']"
    write_workflow(plain, f"workflow: odd\nroles: {{r: R.}}\nsteps:\n  - id: s\n    role: r\n    context: {sources}\n")
    result = aethr("run", "task", *([] if flag == "plain" else [flag]), cwd=plain)
    assert result.code == 0, result.both
    if flag == "plain":  # each one a context note on stderr
        assert f"context file:folder: skipped ({NOTES['folder']})" in result.err
        assert all(f"context file:{name}: skipped ({NOTES[name]})" in result.err for name in ("pipe.txt", "sock.txt"))
        return
    events = _events(result.out)
    prompt = next(e["prompt"] for e in events if e["event"] == "prompt_built") if events else result.out
    assert prompt.count(f"[folder: {NOTES['folder']}]") == 1
    for name in ("pipe.txt", "sock.txt"):
        assert prompt.count(f"[{name}: {NOTES[name]}]") == 2, f"one note from file:, one from glob: {prompt}"


def test_a_directory_through_a_symlink_in_a_glob_and_a_path_parameter_is_a_note(tmp_path: Path) -> None:
    import os

    repo = make_repo(tmp_path / "repo")
    (repo / "folder").mkdir()
    (repo / "folder" / "inside.txt").write_text("inside\n")
    os.symlink("folder", repo / "linked")  # git lists an untracked symlink as a file
    params = "params: {target: {type: path, required: true}}\n"
    sources = "['file:{{params.target}}', 'glob:link*']"
    write_workflow(
        repo, f"workflow: odd\nroles: {{r: R.}}\n{params}steps:\n  - id: s\n    role: r\n    context: {sources}\n"
    )
    result = aethr("run", "task", "-p", "target=folder", "--json", cwd=repo)
    assert result.code == 0, result.both
    prompt = next(e["prompt"] for e in _events(result.out) if e["event"] == "prompt_built")
    assert f"[folder: {NOTES['folder']}]" in prompt
    assert f"[linked: {NOTES['folder']}]" in prompt


def test_a_key_in_a_command_line_cut_by_the_output_limit_is_not_kept_in_part(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    # One line whose kept tail (200 characters) starts inside the key: x * 600, the key, y * 185.
    (repo / "noisy.sh").write_text(
        "head -c 600 /dev/zero | tr '\\0' x\nprintf %s \"$STRIPE_SECRET_KEY\"\n"
        "head -c 185 /dev/zero | tr '\\0' y\necho\n"
    )
    step = "  - id: noisy\n    run: sh noisy.sh\n    output_tokens: 100\n"
    write_workflow(repo, f"workflow: cut\nroles: {{}}\nsteps:\n{step}")
    result = aethr("run", "task", "--exec-commands", "--json", cwd=repo, env={"STRIPE_SECRET_KEY": KEY})
    assert result.code == 0, result.both
    output = next(e["output"] for e in _events(result.out) if e["event"] == "step_finished")
    assert "****" + "y" * 185 in output, output
    assert KEY[-12:] not in result.out and KEY[:12] not in result.out
