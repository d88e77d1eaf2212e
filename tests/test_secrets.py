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
