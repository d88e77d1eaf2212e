"""Text made safe for a terminal: no control sequences, only newlines and tabs.

A model or an agent may repeat what a prompt-injected file told it to print: OSC 52
(a clipboard write on many terminals), cursor moves that hide lines, a title change,
a carriage return that overwrites a line. `strip_controls` removes whole escape
sequences (CSI, OSC, DCS, SOS, PM, APC and two-byte escapes, in their 7-bit and 8-bit
forms), then every other C0 and C1 control character except newline and tab, so even
a sequence cut between two streamed chunks leaves no ESC behind. The terminal sink
uses it for model and agent text, and `run:` steps for their output. JSON output is
escaped by the encoder instead, and keeps the text as it came.
"""

from __future__ import annotations

import re

_SEQUENCES = re.compile(
    r"""
      (?:\x1b\[|\x9b) [0-?]* [ -/]* [@-~]                        # CSI: cursor moves, colours, erase
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]) .*? (?:\x07|\x1b\\|\x9c|\Z)  # OSC, DCS, SOS, PM, APC
    | \x1b [ -/]* [0-~]                                            # two-byte escapes (ESC 7, ESC c…)
    """,
    re.VERBOSE | re.DOTALL,
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_controls(text: str) -> str:
    """`text` without escape sequences or control characters, newlines and tabs kept."""
    if not _CONTROLS.search(text):
        return text  # the common case: nothing to do, no copy
    return _CONTROLS.sub("", _SEQUENCES.sub("", text))
