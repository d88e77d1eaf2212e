"""Findings as a SARIF 2.1.0 log, for code scanning (`github/codeql-action/upload-sarif`).

One run, one tool (`aethr`), one rule per severity, so code scanning can filter on them;
each finding is a result at its path and lines, relative to the repository root
(`%SRCROOT%`). A suggested replacement for lines of the new file is a SARIF `fix`. A
finding on a removed line keeps its old-side lines: SARIF has no side, so the message
says so.
"""

from __future__ import annotations

from typing import Any

from aethr import __version__
from aethr.ci.findings import SEVERITIES, Finding, Findings

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVELS = {"high": "error", "medium": "warning", "low": "note"}
_SCORES = {"high": "8.0", "medium": "5.0", "low": "2.0"}  # GitHub's security-severity scale


def _rule(severity: str) -> dict[str, Any]:
    return {
        "id": f"aethr/review/{severity}",
        "name": f"Review{severity.capitalize()}",
        "shortDescription": {"text": f"A {severity}-severity review finding"},
        "defaultConfiguration": {"level": _LEVELS[severity]},
        "properties": {"security-severity": _SCORES[severity], "tags": ["review"]},
    }


def _region(finding: Finding) -> dict[str, Any]:
    return {"startLine": finding.line, "endLine": finding.last_line}


def _result(finding: Finding) -> dict[str, Any]:
    text = finding.title + (f"\n\n{finding.body.strip()}" if finding.body.strip() else "")
    if finding.side == "old":
        text += "\n\n(The lines are those of the file before the change.)"
    location = {"artifactLocation": {"uri": finding.path, "uriBaseId": "%SRCROOT%"}, "region": _region(finding)}
    result: dict[str, Any] = {
        "ruleId": f"aethr/review/{finding.severity}",
        "ruleIndex": SEVERITIES.index(finding.severity),
        "level": _LEVELS[finding.severity],
        "message": {"text": text},
        "locations": [{"physicalLocation": location}],
    }
    if finding.suggestion is not None and finding.side != "old":
        replacement = {"deletedRegion": _region(finding), "insertedContent": {"text": finding.suggestion}}
        change = {"artifactLocation": location["artifactLocation"], "replacements": [replacement]}
        result["fixes"] = [{"description": {"text": "suggested replacement"}, "artifactChanges": [change]}]
    return result


def log(findings: Findings) -> dict[str, Any]:
    """The SARIF log of `findings`."""
    driver = {
        "name": "aethr",
        "version": __version__,
        "informationUri": "https://pypi.org/project/aethr/",
        "rules": [_rule(severity) for severity in SEVERITIES],
    }
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{"tool": {"driver": driver}, "results": [_result(f) for f in findings.findings]}],
    }
