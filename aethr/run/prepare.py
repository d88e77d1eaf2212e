"""What a step is sent: its prompt (history, context) or its command, as one `Request`.

The executor asks for a request and gets a value back; on the way this emits what the
user may want to see before the call (the assembled prompt, context sources that gave
nothing, a prompt near its model's window).
"""

from __future__ import annotations

from pathlib import Path

from aethr import conditions, context, listing, prompt_cache, prompts
from aethr.backends import Request, Router
from aethr.backends.command import describe
from aethr.events import ContextNoted, EventSink, Notice, PromptBuilt
from aethr.run.state import RunState
from aethr.schema import Step, Workflow


class Preparer:
    def __init__(
        self,
        workflow: Workflow,
        root: Path,
        backends: Router,
        sink: EventSink,
        files: listing.Lister,
        config_file: str | None,
    ) -> None:
        self.workflow, self.root, self.backends, self.sink = workflow, root, backends, sink
        self.files = files  # the tree's listing, shared by every step
        self.config_file = config_file  # kept out of git_diff while untracked

    def request(self, step: Step, state: RunState, iteration: int, model: str | None) -> Request:
        command, timeout = self.backends.command_for(step), self.backends.timeout_for(step)
        cache_at = None
        if command is not None:
            prompt = describe(command, timeout)
            self.sink.emit(PromptBuilt(step.id, prompt, ()))
        else:
            prompt, cache_at = self.prompt(step, state, model)
            warning = self.backends.check_window(step, prompt)
            if warning:
                self.sink.emit(Notice(step.id, warning))
        condition = conditions.for_step(step)
        return Request(
            step.id,
            step.role or "command",
            step.backend,
            model,
            state.task,
            prompt,
            timeout,
            self.root,
            step.unsafe_permissions,
            condition.marker if condition else None,
            self.backends.endpoint_for(step),
            command,
            iteration,
            step.inherit_user_config,
            cache_at=cache_at,
        )

    def prompt(self, step: Step, state: RunState, model: str | None) -> tuple[str, int | None]:
        """The step's prompt, and where its cache breakpoint goes (a model step's, on a model
        that takes one: `prompt_cache`); the preview and the call are told the same place."""
        gathered = context.gather(
            step.context,
            self.root,
            state.latest,
            workflow_file=self.config_file,
            files=self.files,
            outputs=state.outputs(),
        )
        output = self.backends.output_for(step)
        blocks = tuple(zip(step.context, gathered.blocks, strict=True))
        prompt = prompts.build(self.workflow, step, state.task, state.results, state.latest, blocks, output)
        cache_at = prompt_cache.cache_at(model, prompt) if step.kind == "model" else None
        self.sink.emit(PromptBuilt(step.id, prompt.text, gathered.report, cache_at))
        for item in gathered.report:
            if item.status in ("refused", "skipped", "empty"):
                self.sink.emit(ContextNoted(step.id, item.source, item.status, item.note))
        return prompt.text, cache_at
