"""The findings schema a reviewing step may answer in, and its reader.

A findings answer is one JSON object:

    {"verdict": "pass" | "revise",
     "summary": "…",                       # optional: the review in a few sentences
     "findings": [{"path": "src/app.py",   # relative to the repository root
                   "line": 12,             # 1-based, in the file after the change
                   "end_line": 14,         # optional: the last line of a range
                   "side": "new" | "old",  # optional: "old" for lines the change removed
                   "severity": "high" | "medium" | "low",
                   "title": "…", "body": "…",
                   "suggestion": "…"}]}    # optional: replacement text for line..end_line

`side` defaults to "new", except on a file the change deleted, where only the old side
exists. Findings are data for renderers; their text is the model's and is treated as such
(masked, escaped per format), never as instructions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SEVERITIES = ("high", "medium", "low")

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "aethr review findings",
    "type": "object",
    "required": ["verdict", "findings"],
    "additionalProperties": False,
    "properties": {
        "verdict": {"enum": ["pass", "revise"], "description": "pass when nothing must change"},
        "summary": {"type": "string", "description": "the review in a few sentences"},
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "line", "severity", "title", "body"],
                "additionalProperties": False,
                "properties": {
                    "path": {"type": "string", "minLength": 1, "description": "relative to the repository root"},
                    "line": {"type": "integer", "minimum": 1},
                    "end_line": {"type": "integer", "minimum": 1},
                    "side": {"enum": ["new", "old"], "description": "old: a line the change removed"},
                    "severity": {"enum": list(SEVERITIES)},
                    "title": {"type": "string", "minLength": 1},
                    "body": {"type": "string"},
                    "suggestion": {"type": "string", "description": "replacement text for line..end_line"},
                },
            },
        },
    },
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    severity: str
    title: str
    body: str
    end_line: int | None = None
    side: str | None = None  # None: "new", or "old" on a deleted file (decided against the diff)
    suggestion: str | None = None

    @property
    def last_line(self) -> int:
        """The range's last line; an end line before the start counts as the start."""
        return max(self.line, self.end_line or self.line)

    def location(self) -> str:
        span = f"{self.line}-{self.last_line}" if self.last_line > self.line else str(self.line)
        return f"{self.path}:{span}"


@dataclass(frozen=True)
class Findings:
    verdict: str
    summary: str
    findings: tuple[Finding, ...]


def errors(data: Any, schema: dict[str, Any]) -> list[str]:
    """Each way `data` breaks `schema`, as `at <json path>: <message>` lines, in a stable order."""
    import jsonschema  # imported here: only steps and renderings that need it pay for it

    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    found = sorted(validator.iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [f"at {e.json_path}: {e.message}" for e in found]


def parse(text: str) -> Findings | None:
    """The findings in `text` when it is a findings answer (JSON, possibly in a ```json
    fence), else None: a free-text review has no findings, and that is not an error."""
    data = loads(text)
    if not isinstance(data, dict) or errors(data, SCHEMA):
        return None
    items = tuple(
        Finding(
            path=item["path"],
            line=item["line"],
            severity=item["severity"],
            title=item["title"],
            body=item["body"],
            end_line=item.get("end_line"),
            side=item.get("side"),
            suggestion=item.get("suggestion"),
        )
        for item in data["findings"]
    )
    return Findings(data["verdict"], data.get("summary", ""), items)


def loads(text: str) -> Any:
    """The JSON value of a model's answer: the whole text, or the one fenced block in it.
    Returns None when neither is JSON (JSON's own null counts as no answer too)."""
    body = text.strip()
    if body.startswith("```"):
        first_newline = body.find("\n")
        closing = body.rfind("```")
        if first_newline != -1 and closing > first_newline:
            body = body[first_newline + 1 : closing]
    try:
        return json.loads(body)
    except ValueError:
        return None
