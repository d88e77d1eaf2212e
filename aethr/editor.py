"""The task of a new run: the argument, or written by the user in their editor.

The editor opens only on a terminal and never with CI set: aethr never waits for a
person who is not there. Lines starting with `#` are the template's and are dropped.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aethr.errors import UsageError
from aethr.settings import Settings

_TASK_TEMPLATE = "\n# Write the task above. Lines starting with '#' are ignored; an empty task aborts.\n"


def ask(settings: Settings) -> str:
    """Open the user's editor on a temporary file and return what they wrote.
    Raises UsageError with no terminal, no editor, or an empty task."""
    if not sys.stdin.isatty() or settings.unattended:
        why = " (CI is set: aethr never waits for a person there)" if settings.unattended else ""
        raise UsageError(f"no task given{why}", hint='pass it as an argument: aethr run "what to do"')
    import shlex
    import subprocess
    import tempfile

    editor = settings.editor or "vi"
    with tempfile.TemporaryDirectory(prefix="aethr-task-") as folder:
        path = Path(folder) / "TASK.md"
        path.write_text(_TASK_TEMPLATE, encoding="utf-8")
        try:
            child = subprocess.Popen([*shlex.split(editor), str(path)])
        except OSError as exc:
            raise UsageError(
                f"cannot start the editor {editor!r}: {exc.strerror or exc}",
                hint="set AETHR_EDITOR or EDITOR, or pass the task as an argument",
            ) from None
        try:
            code = child.wait()
        except KeyboardInterrupt:
            # A SIGTERM reaches aethr alone (Ctrl-C reaches the editor too): end the editor as well.
            child.terminate()
            child.wait()
            raise
        if code != 0:
            raise UsageError(f"the editor {editor!r} exited with status {code}; nothing was run")
        text = path.read_text(encoding="utf-8", errors="replace")
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    task = "\n".join(lines).strip()
    if not task:
        raise UsageError("the task is empty: nothing to do")
    return task


def task_of(task: str | None, settings: Settings) -> str:
    """The task of a new run: the argument, or written in the editor."""
    if task is None:
        return ask(settings)
    if not task.strip():
        raise UsageError("the task is empty: nothing to do")
    return task
