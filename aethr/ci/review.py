"""Findings as the body of GitHub's "create a review for a pull request" call.

Each finding whose line the pull request's diff shows becomes an inline comment there:
`RIGHT` for an added or context line of the new file, `LEFT` for a removed line (a
deleted file has only that side). A range becomes a multi-line comment when all of it is
in one hunk on one side; otherwise the comment sits on its first line, if that one is
shown. Every other finding (a line outside the diff, a file the change did not touch)
goes into the review's body with its location, so the call is never refused with a 422
and no finding is lost. A suggested replacement becomes a `suggestion` block only where
GitHub can apply it: a comment on the new side that covers the whole range.

The review's event is always COMMENT: the check's exit code is the gate, and a bot's
approval is not a review a human should count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aethr.ci.diffmap import DiffMap, FileDiff
from aethr.ci.findings import Finding, Findings

MARKER = "<!-- aethr-review -->"


@dataclass(frozen=True)
class Placement:
    path: str
    side: str  # RIGHT | LEFT
    line: int
    start_line: int | None  # set for a multi-line comment
    whole_range: bool  # the comment covers every line of the finding's range


def fence(text: str, info: str) -> str:
    """`text` in a code fence longer than any backtick run inside it."""
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{text.rstrip(chr(10))}\n{ticks}"


def _lines_of(finding: Finding, diff: DiffMap) -> tuple[FileDiff, dict[int, int], str] | None:
    """The file, its commentable lines on the finding's side, and that side's name."""
    new, old = diff.by_new(finding.path), diff.by_old(finding.path)
    side = finding.side or ("new" if new is not None else "old")
    if side == "new" and new is not None:
        return new, new.right, "RIGHT"
    if side == "old" and old is not None:
        return old, old.left, "LEFT"
    return None


def place(finding: Finding, diff: DiffMap) -> Placement | None:
    """Where GitHub accepts a comment for `finding`, or None when nowhere does."""
    found = _lines_of(finding, diff)
    if found is None or finding.line not in found[1]:
        return None
    target, shown, side = found
    path = target.new_path or target.old_path or finding.path
    span = range(finding.line, finding.last_line + 1)
    whole = all(shown.get(n) == shown[finding.line] for n in span)
    if whole and finding.last_line > finding.line:
        return Placement(path, side, finding.last_line, finding.line, True)
    return Placement(path, side, finding.line, None, whole)


def _comment_text(finding: Finding, placement: Placement | None) -> str:
    text = f"**{finding.severity}: {finding.title}**"
    if finding.body.strip():
        text += f"\n\n{finding.body.strip()}"
    if finding.suggestion is not None:
        if placement is not None and placement.side == "RIGHT" and placement.whole_range:
            text += "\n\n" + fence(finding.suggestion, "suggestion")
        else:
            text += f"\n\nSuggested replacement for lines {finding.line}-{finding.last_line}:\n\n"
            text += fence(finding.suggestion, "")
    return text


def payload(findings: Findings, diff: DiffMap, heading: str) -> dict[str, Any]:
    """The JSON body for `POST /repos/{owner}/{repo}/pulls/{number}/reviews`."""
    comments: list[dict[str, Any]] = []
    elsewhere: list[str] = []
    for finding in findings.findings:
        placement = place(finding, diff)
        if placement is None:
            elsewhere.append(f"- `{finding.location()}` " + _comment_text(finding, None).replace("\n", "\n  "))
            continue
        comment: dict[str, Any] = {"path": placement.path, "line": placement.line, "side": placement.side}
        if placement.start_line is not None:
            comment |= {"start_line": placement.start_line, "start_side": placement.side}
        comments.append(comment | {"body": _comment_text(finding, placement)})
    body = [MARKER, heading, ""]
    if findings.summary.strip():
        body += [findings.summary.strip(), ""]
    body.append(f"{len(findings.findings)} finding(s), {len(comments)} on the diff's lines.")
    if elsewhere:
        body += ["", "Findings on lines this pull request does not change:", "", *elsewhere]
    return {"event": "COMMENT", "body": "\n".join(body) + "\n", "comments": comments}
