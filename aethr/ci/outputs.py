"""`--output-format github-review | sarif`: the final step's findings in a CI format.

The findings come from the final step's answer (the findings schema, see `findings`). A
free-text review has none: its github-review is a review whose body is the text, with no
inline comments, and its SARIF log has no results, so a recipe need not know which kind
of review ran. The diff that places inline comments is the pull request's, read from git
(`--diff-range`, by default the working tree against HEAD), never the model's view of it,
which budgets may have cut.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aethr.ci import diffmap, findings, review, sarif
from aethr.ci.annotations import commands

FORMATS = ("github-review", "sarif")


def render(fmt: str, text: str, heading: str, diff_text: Callable[[], str]) -> str:
    """The `--output` file's text in `fmt`; `diff_text` is called only when needed."""
    found = findings.parse(text)
    if fmt == "sarif":
        data = sarif.log(found or findings.Findings("none", "", ()))
    elif found is None:
        body = f"{review.MARKER}\n{heading}\n\n{text.strip() or '_(no output)_'}\n"
        data = {"event": "COMMENT", "body": body, "comments": []}
    else:
        data = review.payload(found, diffmap.parse(diff_text()), heading)
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def markdown(text: str) -> str:
    """The final answer for a reader (`--output` as md, the sticky comment): a findings
    answer as its summary and a list, anything else as it is."""
    found = findings.parse(text)
    if found is None:
        return text
    lines = [found.summary.strip(), ""] if found.summary.strip() else []
    for item in found.findings:
        lines.append(f"- **{item.severity}** `{item.location()}` {item.title}")
    return "\n".join(lines or ["No findings."]) + "\n"


def annotation_lines(text: str) -> list[str]:
    """One workflow command per finding of `text`; none for a free-text answer."""
    found = findings.parse(text)
    return commands(found) if found is not None else []
