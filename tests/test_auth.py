"""`aethr auth login/status`: 0600 files, .env ignored, keys never printed."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.conftest import aethr, git

KEY = "sk-proj-abcdefghijklmnop1234"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_login_writes_a_0600_env_and_ignores_it(repo: Path) -> None:
    result = aethr("auth", "login", "openai", "--key", KEY, cwd=repo)
    assert result.code == 0, result.both
    env = repo / ".env"
    assert env.read_text() == f"OPENAI_API_KEY={KEY}\n"
    assert mode(env) == 0o600
    assert KEY not in result.both and "…1234" in result.out
    assert "added .env to" in result.out.lower()
    assert git(repo, "check-ignore", ".env").strip() == ".env"
    assert git(repo, "status", "--porcelain", "--", ".env") == ""


def test_login_from_stdin_keeps_other_lines_and_tightens_mode(repo: Path) -> None:
    env = repo / ".env"
    env.write_text("OTHER=1\nOPENAI_API_KEY=old-key-value\n")
    env.chmod(0o644)
    (repo / ".gitignore").write_text(".env\n")
    result = aethr("auth", "login", "OpenAI", cwd=repo, stdin=KEY + "\n")
    assert result.code == 0, result.both
    assert env.read_text() == f"OTHER=1\nOPENAI_API_KEY={KEY}\n"
    assert mode(env) == 0o600
    assert "Tightened the permissions" in result.out
    assert "added .env" not in result.out.lower(), "already ignored: .gitignore untouched"
    assert (repo / ".gitignore").read_text() == ".env\n"
    assert KEY not in result.both


def test_gemini_and_google_share_a_variable(repo: Path) -> None:
    assert aethr("auth", "login", "google", "--key", KEY, cwd=repo).code == 0
    assert "GEMINI_API_KEY=" in (repo / ".env").read_text()


def test_unknown_provider_and_empty_key(repo: Path) -> None:
    result = aethr("auth", "login", "cohere", "--key", KEY, cwd=repo)
    assert result.code == 2 and "unknown provider 'cohere'" in result.err and "openrouter" in result.err
    result = aethr("auth", "login", "openai", cwd=repo, stdin="\n")
    assert result.code == 2 and "no key given" in result.err
    assert not (repo / ".env").exists()


def test_status_says_where_each_key_comes_from(repo: Path) -> None:
    aethr("auth", "login", "anthropic", "--key", KEY, cwd=repo)
    result = aethr("auth", "status", cwd=repo, env={"OPENAI_API_KEY": "sk-env-zyxwvutsrq9876"})
    assert result.code == 0, result.both
    lines = {line.split()[0]: line for line in result.out.splitlines()}
    assert "set (…9876) from environment" in lines["openai"]
    assert f"set (…1234) from {repo / '.env'}" in lines["anthropic"]
    assert lines["openrouter"].endswith("missing")
    assert lines["xai"].endswith("missing")
    assert KEY not in result.both and "sk-env-zyxwvutsrq9876" not in result.both
