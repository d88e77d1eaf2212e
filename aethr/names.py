"""Names in a workflow file that are parsed the same everywhere: context sources and models.

Pure and light (no pydantic, no litellm), so settings, context and the loader share them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

CONTEXT_KINDS = ("git_diff", "latest_diff", "file", "glob", "step")
CONTEXT_FORMS = "git_diff, git_diff:staged, git_diff:<range>, latest_diff, file:<path>, glob:<pattern>, step:<id>"


@dataclass(frozen=True)
class ContextSource:
    """One explicit context source: `kind` plus its argument (path, pattern or range)."""

    kind: str
    arg: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


def parse_context_source(value: object) -> ContextSource:
    """Parse `git_diff`, `git_diff:staged`, `git_diff:<range>`, `latest_diff`, `file:<path>` or `glob:<pattern>`."""
    if isinstance(value, ContextSource):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a context source must be a non-empty string, one of: {CONTEXT_FORMS}")
    kind, sep, arg = value.strip().partition(":")
    kind, arg = kind.strip(), arg.strip()
    if kind not in CONTEXT_KINDS:
        near = difflib.get_close_matches(kind, CONTEXT_KINDS, n=1)
        maybe = f" (did you mean '{near[0]}'?)" if near else ""
        raise ValueError(f"unknown context source kind '{kind}' in '{value}'{maybe}; use one of: {CONTEXT_FORMS}")
    if kind in ("file", "glob", "step") and not arg:
        what = {"file": "path", "glob": "pattern", "step": "id"}[kind]
        example = {"file": "README.md", "glob": "docs/**/*.md", "step": "test"}[kind]
        raise ValueError(f"'{value}' is empty: write {kind}:<{what}>, for example {kind}:{example}")
    if kind == "latest_diff" and sep:
        raise ValueError("latest_diff takes no argument")
    return ContextSource(kind, arg)


def model_problem(model: str) -> str | None:
    """What is wrong with a model string for LiteLLM, or None. Providers are checked against
    LiteLLM's own list, read as data (no litellm import)."""
    from aethr import pricing

    if not model.strip():
        return "the model is empty; write provider:model, for example openai:gpt-4o-mini"
    name = litellm_model_name(model.strip())
    provider, slash, rest = name.partition("/")
    known = pricing.providers()
    if not slash:
        if pricing.known_model(name) or not known:
            return None
        return f"'{model}' names no provider; write provider:model, for example openai:{model}"
    if not rest:
        return f"'{model}' names no model after the provider"
    if known and provider not in known:
        near = difflib.get_close_matches(provider, sorted(known), n=1)
        maybe = f" (did you mean '{near[0]}'?)" if near else ""
        return f"unknown provider '{provider}' in '{model}'{maybe}; LiteLLM knows openai, anthropic, gemini, …"
    return None


def litellm_model_name(model: str) -> str:
    """`openai:gpt-4o-mini` -> `openai/gpt-4o-mini`; `provider/model` is kept as is."""
    colon, slash = model.find(":"), model.find("/")
    if colon > 0 and (slash < 0 or colon < slash):
        return model[:colon] + "/" + model[colon + 1 :]
    return model
