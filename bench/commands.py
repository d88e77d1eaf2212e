"""The `commands` benchmark group: a `run:` step that prints 200,000 lines.

Its output streams through aethr and is kept head and tail within the step's
`output_tokens`, so the peak memory of the run should not grow with the output.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

WORKFLOW = """\
workflow: loud
roles: {}
steps:
  - id: loud
    run: 'seq 1 LINES | sed "s/$/ of the test output, a line of about sixty characters/"'
"""


def run(
    median: Callable[..., Any], record: Callable[..., None], aethr: list[str], tiny: Callable[[Path, str], Path]
) -> None:
    with tempfile.TemporaryDirectory(prefix="aethr-bench-") as folder:
        for lines in (2_000, 200_000):
            repo = tiny(Path(folder) / f"repo{lines}", WORKFLOW.replace("LINES", str(lines)))
            sample = median([*aethr, "run", "task", "--exec-commands"], repo, runs=3)
            record("commands", f"run: step printing {lines:,} lines, peak memory", sample.rss_mib, None, 60, unit="MiB")
