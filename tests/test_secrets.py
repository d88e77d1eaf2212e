"""One secret policy, every source: each secret, in each way a change can carry it, never
reaches a prompt, and its leaving out is a note that names it.

In-process over real git repositories (context.gather is what a step's prompt is
built from); one CLI run shows the same through `--show-prompt`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aethr import context
from aethr.names import parse_context_source
from tests.conftest import WORKFLOW_ONE_STEP, aethr, git, make_repo, write_workflow

KEY_BLOCK = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
# (path, content): by name, by name in a folder, and by content under an ordinary name.
SECRETS = [
    (".env", "API_TOKEN=SECRET-MARKER-1\n"),
    ("config/.env.local", "TOKEN=SECRET-MARKER-2\n"),
    ("id_ecdsa", "SECRET-MARKER-3\n"),
    ("keys/id_ed25519", "SECRET-MARKER-4\n"),
    ("tls/server.pem", "SECRET-MARKER-5\n"),
    ("server.key", "SECRET-MARKER-6\n"),
    ("cert.p12", "SECRET-MARKER-7\n"),
    ("store.pfx", "SECRET-MARKER-8\n"),
    ("notes/deploy.txt", "ordinary words\n" + KEY_BLOCK.replace("b3Bl", "SECRET-MARKER-9")),
]
# How a change carries the secret, and which source shows that change.
WAYS = ["file", "glob", "untracked", "staged", "tracked-change", "committed-range"]


def _place(repo: Path, rel: str, text: str) -> None:
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(text)


def _gather(repo: Path, source: str) -> str:
    gathered = context.gather([parse_context_source(source)], repo, None)
    return "\n".join(gathered.blocks) + "\n".join(item.note for item in gathered.report)


def _scenario(tmp_path: Path, way: str, rel: str, text: str) -> tuple[Path, str]:
    repo = make_repo(tmp_path / "repo", {"README.md": "# project\n"})
    if way in ("file", "glob", "untracked"):
        _place(repo, rel, text)
        source = {"file": f"file:{rel}", "glob": "glob:**", "untracked": "git_diff"}[way]
    elif way == "staged":
        _place(repo, rel, text)
        git(repo, "add", "-f", rel)
        source = "git_diff"
    elif way == "tracked-change":
        _place(repo, rel, "first version\n")
        git(repo, "add", "-f", rel)
        git(repo, "commit", "-qm", "add")
        _place(repo, rel, "first version\n" + text)
        source = "git_diff"
    else:
        git(repo, "checkout", "-qb", "feature")
        _place(repo, rel, text)
        git(repo, "add", "-f", rel)
        git(repo, "commit", "-qm", "feature")
        source = "git_diff:main...feature"
    return repo, source


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize(("rel", "text"), SECRETS, ids=[s[0] for s in SECRETS])
def test_a_secret_never_reaches_the_prompt(tmp_path: Path, way: str, rel: str, text: str) -> None:
    repo, source = _scenario(tmp_path, way, rel, text)
    shown = _gather(repo, source)
    assert "SECRET-MARKER" not in shown
    assert Path(rel).name in shown, f"the left-out file is named in a note: {shown}"


@pytest.mark.parametrize("target", [".env", ".git/config"])
@pytest.mark.parametrize("source", ["file:innocent.txt", "glob:*.txt", "git_diff"])
def test_a_symlink_with_an_ordinary_name_to_a_secret_is_refused(tmp_path: Path, target: str, source: str) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / ".env").write_text("TOKEN=SECRET-MARKER-LINK\n")
    (repo / ".git" / "config").write_text((repo / ".git" / "config").read_text() + "# SECRET-MARKER-LINK\n")
    os.symlink(target, repo / "innocent.txt")
    shown = _gather(repo, source)
    assert "SECRET-MARKER-LINK" not in shown
    assert "innocent.txt" in shown


def test_a_glob_whose_only_file_holds_a_key_reports_it_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    _place(repo, "keys/deploy.txt", KEY_BLOCK)
    found = context.gather([parse_context_source("glob:keys/*")], repo, None)
    assert found.report[0].status == "refused"


def test_a_fifo_is_skipped_without_blocking(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    plain = tmp_path / "plain"  # outside git, globs walk the folder (git lists no FIFOs)
    plain.mkdir()
    for folder, source in ((repo, "file:pipe.txt"), (plain, "file:pipe.txt"), (plain, "glob:*.txt")):
        if not (folder / "pipe.txt").exists():
            os.mkfifo(folder / "pipe.txt")
        assert "not a regular file" in _gather(folder, source)


def test_the_cli_preview_leaves_out_a_staged_key_and_names_it(repo: Path) -> None:
    _place(repo, "deploy/id_ecdsa", "SECRET-MARKER-CLI\n")
    git(repo, "add", "-f", "deploy/id_ecdsa")
    write_workflow(repo, WORKFLOW_ONE_STEP.format(context="git_diff"))
    result = aethr("run", "look", "--show-prompt", cwd=repo)
    assert result.code == 0, result.both
    assert "SECRET-MARKER-CLI" not in result.out
    assert "[left out deploy/id_ecdsa: it may hold secrets" in result.out


# --- the run's secret set (pure) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("OPENAI_API_KEY", True),
        ("GITHUB_TOKEN", True),
        ("DB_PASSWORD", True),
        ("SMTP_PASS", True),
        ("AZURE_CREDENTIALS", True),
        ("PASSWORD", True),
        ("PATH", False),
        ("OLDPWD", False),
        ("BYPASS", False),
        ("KEYBOARD", False),
    ],
)
def test_the_name_rule(name: str, secret: bool) -> None:
    from aethr.secrets import is_secret_name

    assert is_secret_name(name) is secret


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("https://user:pw-s3cret@db.internal/x", ["pw-s3cret", "user:pw-s3cret"]),
        ("postgres://:only-pass@h:5432/db", ["only-pass"]),
        ("redis://h:6379/0", []),
        ("https://example.com/a:b@c", []),  # a colon after the host is no credential
    ],
)
def test_credentials_in_urls(value: str, found: list[str]) -> None:
    from aethr.secrets import url_credentials

    assert url_credentials(value) == found


def test_the_set_keeps_secrets_and_leaves_settings() -> None:
    from aethr.secrets import collect

    environment = {"STRIPE_SECRET_KEY": "sk_live_0123456789", "HOME": "/home/someone-long", "DEBUG": "1"}
    dotenv = {"APP_ENV": "production", "PORT": "8080", "HOOK": "https://hooks.invalid/T0123456789"}
    secrets = collect(environment, ["GATEWAY_CREDENTIAL"], dotenv)
    assert set(secrets.values) == {"sk_live_0123456789", "https://hooks.invalid/T0123456789"}
    assert "sk_live" not in repr(secrets)
    with_key = collect({"GATEWAY_CREDENTIAL": "gw-cred-0123456789"}, ["GATEWAY_CREDENTIAL"], {})
    assert with_key.values == ("gw-cred-0123456789",)


def test_a_stream_masks_a_key_split_at_every_position() -> None:
    from aethr.secrets import Secrets

    secret = "tok-9XbQ7mLp2Wz4Rt8Yk3Vn"
    text = f"before {secret} after {secret[:5]} end"
    for first in range(len(text)):
        for second in range(first, len(text)):
            stream = Secrets([secret, "another-secret-value"]).stream()
            chunks = [text[:first], text[first:second], text[second:]]
            shown = [stream.feed(chunk) for chunk in chunks] + [stream.flush()]
            assert "".join(shown) == f"before **** after {secret[:5]} end"
            assert not any(secret[:6] in part for part in shown)


def test_a_backend_bug_that_quotes_a_key_is_reported_masked(tmp_path: Path) -> None:
    """Not aethr's own error (a library's ValueError, say) still passes the door masked, as
    an internal error, with no cause chained that a --verbose traceback would print raw."""
    from aethr.backends import Request
    from aethr.backends.masking import Masked
    from aethr.errors import InternalError
    from aethr.secrets import Secrets

    secret = "sk-live-0123456789abcdef"

    class Broken:
        edits_tree = free = False

        def check_ready(self, *args: object) -> None:
            raise KeyError(f"no such header: Bearer {secret}")

        def complete(self, request: Request, emit: object) -> None:
            raise ValueError(f"bad response for key {secret}")

    door = Masked(Broken(), Secrets([secret]))  # type: ignore[arg-type]
    request = Request("s", "r", "model", "openai/x", "task", "prompt", 10.0, tmp_path)
    for call in (lambda: door.complete(request, print), lambda: door.check_ready(None, None, tmp_path, None)):  # type: ignore[arg-type]
        with pytest.raises(InternalError) as raised:
            call()
        assert secret not in raised.value.message and "****" in raised.value.message
        assert raised.value.__cause__ is None and raised.value.__suppress_context__
