"""The door: every text a backend hands a run is masked here, once, before anyone sees it.

`Backends.for_step` wraps each backend in `Masked`, so the executor only ever receives
masked text: a model's chunks and answer, an agent's text, tool lines and notices, a
command's output, retry reasons and error messages (aethr's own errors masked in place,
any other exception turned into a masked internal error). The terminal, `--json`, the
history, `step:`, `--output`, the step summary and the checkpoint all come after it.

Streamed text goes through one `StreamMask` per call, so a key split across two chunks
is still caught: a chunk's end that could begin a secret waits for the next chunk, or
for the end of the call, whichever comes first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aethr.backends import Backend, Completion, Emit, Endpoint, Request
from aethr.errors import AethrError, InternalError
from aethr.events import Event, Notice, Retrying, TextChunk
from aethr.secrets import Secrets

if TYPE_CHECKING:
    from aethr.schema import Step


class Masked:
    """`inner`, with every text it emits, returns or raises masked by `secrets`."""

    def __init__(self, inner: Backend, secrets: Secrets) -> None:
        self.inner = inner
        self.secrets = secrets
        self.edits_tree = inner.edits_tree
        self.free = inner.free
        # The spend cap asks whether an agent reports its own cost: the wrapper must not hide it.
        self.reports_cost: bool = getattr(inner, "reports_cost", False)
        self.upstream: str | None = getattr(inner, "upstream", None)  # and whether the relay can meter it

    def check_ready(self, step: Step, model: str | None, root: Path, endpoint: Endpoint) -> None:
        try:
            self.inner.check_ready(step, model, root, endpoint)
        except AethrError as exc:
            self._mask_error(exc)
            raise
        except Exception as exc:
            raise self._bug(exc) from None

    def complete(self, request: Request, emit: Emit) -> Completion:
        door = _Door(self.secrets, request.step_id, emit)
        try:
            completion = self.inner.complete(request, door.emit)
        except AethrError as exc:
            door.flush()
            self._mask_error(exc)
            raise
        except Exception as exc:
            door.flush()
            raise self._bug(exc) from None
        except BaseException:
            door.flush()  # an interrupt: what was said so far is shown whole
            raise
        door.flush()
        mask = self.secrets.mask
        return completion._replace(
            text=mask(completion.text),
            simulated_change=None if completion.simulated_change is None else mask(completion.simulated_change),
            last_lines=tuple(mask(line) for line in completion.last_lines),
        )

    def _bug(self, exc: Exception) -> InternalError:
        """An exception that is not aethr's own (a bug here or in a library) as an internal
        error whose text is masked. Its cause is dropped on purpose: a traceback, even under
        `--verbose`, would print the raw message (a library's error may quote a key)."""
        return InternalError(self.secrets.mask(f"{type(exc).__name__}: {exc}"))

    def _mask_error(self, exc: AethrError) -> None:
        """The error's message and hint, masked in place (it keeps its type, usage and cause)."""
        exc.message = self.secrets.mask(exc.message)
        if exc.hint:
            exc.hint = self.secrets.mask(exc.hint)
        exc.args = (exc.message,)


class _Door:
    """One call's events on their way to the executor: text masked as it streams."""

    def __init__(self, secrets: Secrets, step_id: str, emit: Emit) -> None:
        self.secrets = secrets
        self.step_id = step_id
        self.stream = secrets.stream()
        self.forward = emit

    def emit(self, event: Event) -> None:
        if isinstance(event, TextChunk):
            shown = self.stream.feed(event.text)
            if shown:
                self.forward(event._replace(text=shown))
        elif isinstance(event, Notice):
            self.forward(event._replace(text=self.secrets.mask(event.text)))
        elif isinstance(event, Retrying):
            self.forward(event._replace(reason=self.secrets.mask(event.reason)))
        else:
            self.forward(event)

    def flush(self) -> None:
        rest = self.stream.flush()
        if rest:
            self.forward(TextChunk(self.step_id, rest))
