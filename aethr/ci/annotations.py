"""Findings as GitHub Actions workflow commands: one annotation per finding.

`::error` for a high-severity finding, `::warning` for the others, with `file`, `line`,
`endLine` and `title`. The runner reads these from the job's output; the escapes are the
workflow-command rules: in the message `%`, CR and LF; in a property also `:` and `,`,
which would otherwise end the value. A finding on a removed line has no place in the
checked-out file, so its annotation names the file without a line.
"""

from __future__ import annotations

from aethr.ci.findings import Finding, Findings


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(finding: Finding) -> str:
    kind = "error" if finding.severity == "high" else "warning"
    props = [f"file={escape_property(finding.path)}"]
    if finding.side != "old":
        props += [f"line={finding.line}", f"endLine={finding.last_line}"]
    props.append(f"title={escape_property(f'{finding.severity}: {finding.title}')}")
    message = finding.body.strip() or finding.title
    return f"::{kind} {','.join(props)}::{escape_data(message)}"


def commands(findings: Findings) -> list[str]:
    return [command(finding) for finding in findings.findings]
