"""Claude Code, Codex and Gemini CLI as agent backends: each real, pinned binary against the
loopback fake, which speaks Anthropic Messages, OpenAI Responses and Gemini streaming.

`make test` installs the binaries into .tools/ and passes their paths in
AETHR_TEST_CLAUDE, AETHR_TEST_CODEX and AETHR_TEST_GEMINI. Without them these tests
are skipped locally; in CI (CI=true) a missing binary is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import aethr, ceiling, git, make_repo, processes_in, shell_script, write_workflow
from tests.fake_openai import FakeOpenAI

Script = list[dict[str, object]]
# Read before the autouse fixture clears the environment.
BINARIES = {name: os.environ.get(f"AETHR_TEST_{name.upper()}", "") for name in ("claude", "codex", "gemini")}


@dataclass(frozen=True)
class Agent:
    name: str  # the backend
    model: str
    package: str
    key: str
    base: str  # the variable that points the CLI at our fake
    with_v1: bool  # whether that base URL ends in /v1
    edit: Callable[[Path], Script]  # the fake's replies that make the agent edit a.txt
    memory: str  # where, under HOME, the user's own instructions would be read

    @property
    def binary(self) -> str:
        return BINARIES[self.name]

    def env(self, server_base: str, home: Path) -> dict[str, str]:
        assert Path(self.binary).is_file(), f"the {self.name} binary is missing: {self.binary!r}"
        base = server_base if self.with_v1 else server_base.removesuffix("/v1")
        return {
            "AETHR_LIVE": "1",
            f"AETHR_{self.name.upper()}_BIN": self.binary,
            self.key: "sk-test-agent-0123456789",
            self.base: base,
            "OPENAI_API_KEY": "sk-test-0123456789",
            "OPENAI_API_BASE": server_base,  # the reviewer's model step
            "HOME": str(home),
        }


def _claude_edit(root: Path) -> Script:
    path = str(root / "a.txt")
    return [
        {"kind": "tool", "name": "Read", "arguments": {"file_path": path}},
        {"kind": "tool", "name": "Edit", "arguments": {"file_path": path, "old_string": "hi", "new_string": "bye"}},
        {"kind": "stream", "text": "I changed a.txt."},
    ]


def _codex_edit(root: Path) -> Script:
    patch = "apply_patch <<'EOF'\n*** Begin Patch\n*** Update File: a.txt\n@@\n-hi\n+bye\n*** End Patch\nEOF\n"
    return [
        {"kind": "tool", "name": "exec_command", "arguments": {"cmd": patch}},
        {"kind": "stream", "text": "I changed a.txt."},
    ]


def _gemini_edit(root: Path) -> Script:
    change = {"file_path": str(root / "a.txt"), "old_string": "hi", "new_string": "bye", "instruction": "edit"}
    return [{"kind": "tool", "name": "replace", "arguments": change}, {"kind": "stream", "text": "I changed a.txt."}]


AGENTS = [
    Agent(
        "claude",
        "anthropic:claude-sonnet-4-5",
        "@anthropic-ai/claude-code",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        False,
        _claude_edit,
        ".claude/CLAUDE.md",
    ),
    Agent(
        "codex",
        "openai:gpt-5.1-codex",
        "@openai/codex",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        True,
        _codex_edit,
        ".codex/AGENTS.md",
    ),
    Agent(
        "gemini",
        "gemini:gemini-2.5-flash",
        "@google/gemini-cli",
        "GEMINI_API_KEY",
        "GOOGLE_GEMINI_BASE_URL",
        False,
        _gemini_edit,
        ".gemini/GEMINI.md",
    ),
]
each_agent = pytest.mark.parametrize("agent", AGENTS, ids=[a.name for a in AGENTS])

WORKFLOW = """\
workflow: agents
roles:
  implementer: Implement it.
  reviewer: Review it.
models:
  implementer: {model}
  reviewer: openai:gpt-4o-mini
steps:
  - id: implement
    role: implementer
    backend: {backend}
    idle_timeout: {idle}
{extra}  - id: review
    role: reviewer
    context: [latest_diff]
"""


def setup(tmp_path: Path, agent: Agent, idle: float = ceiling(60), extra: str = "", review: bool = False) -> Path:
    """A repository whose workflow hands `implement` to the agent; with `review`, a model
    step after it (which costs a LiteLLM import: only the tests that read its prompt)."""
    if not Path(agent.binary).is_file() and os.environ.get("CI") != "true":
        pytest.skip(f"set AETHR_TEST_{agent.name.upper()} to the {agent.name} binary (`make test` installs it)")
    repo = make_repo(tmp_path / "repo", {"a.txt": "hi\n", "b.txt": "untouched\n"})
    text = WORKFLOW.format(model=agent.model, backend=agent.name, idle=idle, extra=extra)
    write_workflow(repo, text if review else text[: text.index("  - id: review")])
    return repo


def events(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def left_in(repo: Path, limit: float = 30) -> list[str]:
    """Processes still working in `repo` (their cwd is inside it), polled until none or `limit`."""
    deadline = time.monotonic() + ceiling(limit)
    while True:
        found = processes_in(repo)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@each_agent
def test_the_agent_edits_and_the_next_step_sees_exactly_that_diff(
    agent: Agent, tmp_path: Path, server: FakeOpenAI, clean_env: Path
) -> None:
    repo = setup(tmp_path, agent, review=True)
    (repo / "b.txt").write_text("changed before the run\n")
    server.script = [*agent.edit(repo), {"kind": "stream", "text": "Looks right."}]
    result = aethr("run", "change hi to bye", "--json", cwd=repo, env=agent.env(server.base_url, tmp_path))
    assert result.code == 0, result.both
    assert (repo / "a.txt").read_text() == "bye\n"
    diff = git(repo, "diff", "--", "a.txt")
    review = server.requests[-1]["messages"][-1]["content"]  # the reviewer's chat call
    assert diff[diff.index("@@") :] in review, "the reviewer sees exactly the agent's change"
    assert "changed before the run" not in review, "changes from before the step are not attributed to it"
    assert "change hi to bye" in json.dumps(server.requests[0]), f"{agent.name} got the prompt on stdin"
    finished = [e for e in events(result.out) if e["event"] == "step_finished" and e["step_id"] == "implement"]
    usage = finished[0]["usage"]
    assert isinstance(usage, dict) and usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0, usage
    assert isinstance(usage["cost_usd"], float) and usage["cost_usd"] > 0, usage
    assert not list(clean_env.glob("aethr-agent-*")), "the temporary config home is removed"


@each_agent
def test_an_auth_error_exits_4(agent: Agent, tmp_path: Path, server: FakeOpenAI) -> None:
    repo = setup(tmp_path, agent)
    server.script = [{"kind": "status", "code": 401}]
    result = aethr("run", "task", cwd=repo, env=agent.env(server.base_url, tmp_path))
    assert result.code == 4, result.both
    assert "could not authenticate" in result.err and f"check {agent.key}" in result.err, result.err
    assert "sk-test-agent" not in result.both


@each_agent
def test_a_hang_is_ended_by_the_idle_timeout_with_nothing_left(
    agent: Agent, tmp_path: Path, server: FakeOpenAI
) -> None:
    repo = setup(tmp_path, agent, idle=3)
    server.script = [{"kind": "hang"}]
    result = aethr("run", "task", cwd=repo, env=agent.env(server.base_url, tmp_path))  # a hang: its ceiling
    assert result.code == 1, result.both
    assert "(no output for 3s) and was stopped" in result.err, result.err
    assert left_in(repo) == [], "no process of the agent is left"


@each_agent
def test_a_refused_connection_fails_in_bounded_time(agent: Agent, tmp_path: Path) -> None:
    repo = setup(tmp_path, agent)
    env = agent.env("http://127.0.0.1:9/v1", tmp_path)  # the discard port: nothing listens
    result = aethr("run", "task", cwd=repo, env=env)  # unbounded retries would reach the call's ceiling
    assert result.code == 1, result.both
    assert any(word in result.err for word in ("refused", "cannot reach", "fetch failed")), result.err
    assert left_in(repo) == []


@each_agent
@pytest.mark.parametrize("inherit", [False, True], ids=["clean", "inherit"])
def test_the_users_own_config_reaches_the_agent_only_when_asked(
    agent: Agent, inherit: bool, tmp_path: Path, server: FakeOpenAI
) -> None:
    extra = "    inherit_user_config: true\n" if inherit else ""
    repo = setup(tmp_path, agent, extra=extra)
    home = tmp_path / "home"
    (home / agent.memory).parent.mkdir(parents=True)
    (home / agent.memory).write_text("USER-MEMORY-MARKER: always answer in French.\n")
    (home / ".gemini" / "settings.json").parent.mkdir(exist_ok=True)
    (home / ".gemini" / "settings.json").write_text('{"security": {"auth": {"selectedType": "gemini-api-key"}}}')
    server.script = [{"kind": "stream", "text": "done"}]
    result = aethr("run", "task", cwd=repo, env=agent.env(server.base_url, home))
    assert result.code == 0, result.both
    sent = json.dumps(server.requests[0])
    assert ("USER-MEMORY-MARKER" in sent) is inherit, "the user's memory file reaches the agent only when inherited"


@each_agent
def test_a_missing_binary_exits_4_naming_the_package(agent: Agent, repo: Path) -> None:
    write_workflow(repo, WORKFLOW.format(model=agent.model, backend=agent.name, idle=60, extra=""))
    env = {"AETHR_LIVE": "1", f"AETHR_{agent.name.upper()}_BIN": "/nonexistent/agent", agent.key: "sk-test-x"}
    result = aethr("run", "task", cwd=repo, env={**env, "OPENAI_API_KEY": "sk-test-x"})
    assert result.code == 4, result.both
    assert f"npm install -g {agent.package}" in result.err and f"AETHR_{agent.name.upper()}_BIN" in result.err


@each_agent
def test_a_model_of_another_provider_is_a_load_error(agent: Agent, repo: Path) -> None:
    other = "gemini:gemini-2.5-flash" if agent.name != "gemini" else "openai:gpt-4o"
    write_workflow(repo, WORKFLOW.format(model=other, backend=agent.name, idle=60, extra=""))
    result = aethr("validate", cwd=repo)
    assert result.code == 3, result.both
    assert f"hands work to {agent.name}" in result.err and ".aethr.yaml:11:14:" in result.err, result.err


@each_agent
def test_preview_and_mock_show_the_command_line_and_start_nothing(agent: Agent, repo: Path) -> None:
    write_workflow(repo, WORKFLOW.format(model=agent.model, backend=agent.name, idle=60, extra=""))
    env = {f"AETHR_{agent.name.upper()}_BIN": "/nonexistent/agent", agent.key: "sk-test-secret-value"}
    for args in (["--show-prompt"], []):
        result = aethr("run", "task", *args, cwd=repo, env=env)
        assert result.code == 0, result.both
        assert "a live run starts: " in result.both and "/nonexistent/agent" in result.both
        assert "sk-test-secret-value" not in result.both
    assert git(repo, "status", "--porcelain") == "?? .aethr.yaml\n"


def test_a_resume_after_the_agent_step_does_not_run_it_again(tmp_path: Path, server: FakeOpenAI) -> None:
    """At most once: the agent's finished step is kept by the checkpoint, with its diff."""
    agent = AGENTS[0]
    repo = setup(tmp_path, agent, review=True)
    server.script = [*agent.edit(repo), {"kind": "status", "code": 400, "message": "bad review"}]
    env = agent.env(server.base_url, tmp_path)
    failed = aethr("run", "change hi to bye", cwd=repo, env=env)
    assert failed.code == 1, failed.both
    agent_calls = len(server.requests) - 1
    server.script = [{"kind": "stream", "text": "Looks right now."}]
    server.requests.clear()
    resumed = aethr("run", "--resume-checkpoint", "last", cwd=repo, env=env)
    assert resumed.code == 0, resumed.both
    assert agent_calls == 3 and len(server.requests) == 1, "only the review ran again"
    assert "-hi\n+bye" in server.requests[0]["messages"][-1]["content"], "the resumed review sees the agent's diff"


def test_claude_refuses_a_command_it_was_not_allowed_and_the_step_fails(tmp_path: Path, server: FakeOpenAI) -> None:
    agent = AGENTS[0]
    repo = setup(tmp_path, agent)
    server.script = [
        {"kind": "tool", "name": "Bash", "arguments": {"command": 'python3 -c \'open("pwned", "w")\''}},
        {"kind": "stream", "text": "I could not run it."},
    ]
    result = aethr("run", "task", cwd=repo, env=agent.env(server.base_url, tmp_path))
    assert result.code == 1, result.both
    assert "Claude Code was refused permission for: Bash (python3 -c" in result.err, result.err
    assert not (repo / "pwned").exists()


def test_unsafe_permissions_as_root_are_refused_before_the_run(repo: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("Claude Code refuses bypassPermissions only as root")
    text = WORKFLOW.format(model="anthropic:claude-sonnet-4-5", backend="claude", idle=60, extra="")
    write_workflow(repo, text.replace("    idle_timeout: 60\n", "    unsafe_permissions: true\n"))
    env = {"AETHR_LIVE": "1", "AETHR_CLAUDE_BIN": "/bin/true", "ANTHROPIC_API_KEY": "sk-test-x"}
    result = aethr("run", "task", cwd=repo, env={**env, "OPENAI_API_KEY": "sk-test-x"})
    assert result.code == 4, result.both
    assert "refuses to skip permission checks when run as root" in result.err
    assert "resume" not in result.err, "refused before the run: nothing to resume"


@pytest.mark.parametrize("agent", AGENTS, ids=[a.name for a in AGENTS])
def test_an_agent_that_stops_without_its_final_event_fails(agent: Agent, repo: Path, tmp_path: Path) -> None:
    fake = shell_script(tmp_path / "agent", 'cat >/dev/null\necho \'{"type": "init"}\'\nexit 0')
    write_workflow(repo, WORKFLOW.format(model=agent.model, backend=agent.name, idle=60, extra=""))
    env = {"AETHR_LIVE": "1", f"AETHR_{agent.name.upper()}_BIN": str(fake), agent.key: "sk-test-x"}
    result = aethr("run", "task", cwd=repo, env={**env, "OPENAI_API_KEY": "sk-test-x"})
    assert result.code == 1, result.both
    assert ("without" in result.err and "final" in result.err) or "without finishing" in result.err, result.err


def test_a_key_from_api_key_env_is_masked_in_the_shown_command_line(repo: Path) -> None:
    text = WORKFLOW.format(model="anthropic:claude-sonnet-4-5", backend="claude", idle=60, extra="")
    gateway = "  implementer: {model: 'anthropic:claude-sonnet-4-5', api_base: 'http://gw.local', api_key_env: GW_CRED}"
    write_workflow(repo, text.replace("  implementer: anthropic:claude-sonnet-4-5", gateway))
    result = aethr("run", "task", "--show-prompt", cwd=repo, env={"GW_CRED": "credential-without-a-key-suffix"})
    assert result.code == 0, result.both
    assert "ANTHROPIC_BASE_URL=http://gw.local ANTHROPIC_API_KEY='****'" in result.out
    assert "credential-without" not in result.both


CUT = {"claude": "stream_truncated", "codex": "stream disconnected", "gemini": "ended without a finish reason"}


@each_agent
def test_a_cut_stream_fails_the_step_with_the_agents_reason(agent: Agent, tmp_path: Path, server: FakeOpenAI) -> None:
    repo = setup(tmp_path, agent)
    server.script = [{"kind": "drop", "text": "partial answ"}]
    result = aethr("run", "task", cwd=repo, env=agent.env(server.base_url, tmp_path))
    assert result.code == 1, result.both
    assert CUT[agent.name] in result.err, result.err


def test_the_spend_cap_stops_claude_mid_run_with_its_tree(tmp_path: Path, server: FakeOpenAI) -> None:
    """Claude Code's tokens are priced as a floor as each call finishes, so the cap can stop it
    before its final cost arrives."""
    agent = AGENTS[0]
    repo = setup(tmp_path, agent)
    # The first call's price passes the cap; the second never answers: only the cap can end it.
    server.script = [agent.edit(repo)[0], {"kind": "hang"}]
    env = agent.env(server.base_url, tmp_path)
    result = aethr("run", "task", "--max-cost", "0.00001", "--json", cwd=repo, env=env)
    assert result.code == 6, result.both
    events = [json.loads(line) for line in result.out.splitlines()]
    assert any(e["event"] == "budget" and e["step_id"] == "implement" for e in events)
    assert events[-1]["status"] == "spend_cap"
    assert left_in(repo) == []


def test_codex_and_its_native_binary_end_with_a_sigkilled_aethr(tmp_path: Path, server: FakeOpenAI) -> None:
    """`codex` is a node launcher that starts the native binary; both carry the repository's
    path in their command lines (`--cd`), and neither may outlive aethr."""
    agent = AGENTS[1]
    repo = setup(tmp_path, agent)
    server.script = [{"kind": "hang"}]
    env = {**os.environ, **agent.env(server.base_url, tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aethr", "run", "task"],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + ceiling(120)
    while not server.requests:  # the native binary is running once the fake has its request
        assert time.monotonic() < deadline and proc.poll() is None, "Codex never called the fake"
        time.sleep(0.1)
    assert len(_with_in_cmdline(str(repo))) >= 2, "the launcher and the native binary"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=ceiling(60))
    deadline = time.monotonic() + ceiling(60)
    while (left := _with_in_cmdline(str(repo))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == [], "no process of Codex is left"


def _with_in_cmdline(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
                found += [f"{entry.name}: {cmdline}"] if f"--cd {text} " in cmdline else []
        except OSError:
            continue
    return found
