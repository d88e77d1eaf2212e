"""Local model servers (Ollama, vLLM, LM Studio, llama.cpp): prompts never cut silently, and
cold loads given time.

An Ollama server runs a model in a window of `num_ctx` tokens (2,048 to 4,096 by default,
by version), and it cuts a longer prompt without a word. So before a call to an `ollama:`
or `ollama_chat:` model aethr asks the server for the model's own context length
(`POST /api/show`) and sends `num_ctx` to fit the prompt and the answer. A prompt that does
not fit the model's window is refused before anything is sent (exit 3, as for a hosted
model). `num_ctx` is rounded up to a power of two (Ollama reloads a model when its
`num_ctx` changes, so steps of similar size share one load). Ollama's OpenAI-compatible
`/v1` endpoint ignores `num_ctx`: the README's recipe uses `ollama_chat:`.

Any local server may still cut a prompt (a window set on the server). A server's own count
of the prompt's tokens far below aethr's estimate means it did: the step fails and says so.

A local server (a loopback address, `api_key_env: none`, or Ollama at its default address)
loads a model on its first call, which can take minutes: its first-byte limit defaults to
`FIRST_BYTE` seconds (AETHR_FIRST_BYTE_TIMEOUT still wins), and a first-byte timeout is not
retried, since dropping the connection cancels the load and a retry starts it again.
"""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlsplit

from aethr import settings
from aethr.backends import Request
from aethr.backends.failures import chain
from aethr.backends.stream import Hung
from aethr.errors import ConfigError, EnvironmentNotReady, StepFailed
from aethr.usage import Usage

FIRST_BYTE = 300.0  # seconds: a cold load of a large model on a laptop
OLLAMA_BASE = "http://localhost:11434"
ANSWER_ROOM = 2048  # tokens kept for the answer when the step sets no max_output_tokens
MARGIN = 1.25  # aethr's estimate is 4 characters a token; code may run nearer 3
CUT_BELOW = 0.5  # a server count under half the estimate: the prompt was cut
SHOW_TIMEOUT = 30.0  # /api/show reads the model's file header, it loads nothing


def is_ollama(model: str | None) -> bool:
    return bool(model) and str(model).split("/", 1)[0] in ("ollama", "ollama_chat")


def ollama_base(api_base: str | None) -> str:
    """The Ollama server a model's calls go to: the role's `api_base`, OLLAMA_API_BASE, the default."""
    return (api_base or settings.env_value("OLLAMA_API_BASE") or OLLAMA_BASE).rstrip("/")


def is_local(model: str | None, api_base: str | None, api_key_env: str | None) -> bool:
    """A server on this machine (a loopback address), or one that takes no key."""
    if api_key_env == "none":
        return True
    base = ollama_base(api_base) if is_ollama(model) else api_base
    host = urlsplit(base).hostname if base else None
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cold_start(exc: BaseException) -> bool:
    """Whether a failed call ran out of its first-byte limit (a model that may still be loading)."""
    return any(isinstance(item, Hung) and item.limit == "first-byte limit" for item in chain(exc))


def ollama_window(step_id: str, model: str, api_base: str | None) -> int | None:
    """The model's own context length, as its Ollama server reports it; None when it says none.
    Raises EnvironmentNotReady when the server cannot be asked (nothing was sent)."""
    import urllib.error  # only here: urllib.request costs ~8 ms to import (http.client, ssl, email)
    import urllib.request

    base, name = ollama_base(api_base), model.split("/", 1)[1]
    body = json.dumps({"model": name}).encode()
    asked = urllib.request.Request(f"{base}/api/show", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(asked, timeout=SHOW_TIMEOUT) as answer:
            shown = json.loads(answer.read())
    except (OSError, ValueError) as exc:
        why = f"{exc.code}" if isinstance(exc, urllib.error.HTTPError) else str(getattr(exc, "reason", exc))
        raise EnvironmentNotReady(
            f"step '{step_id}': cannot ask the Ollama server at {base} for {name}'s context window ({why}); "
            "nothing was sent",
            hint=f"check that Ollama runs there and has the model (`ollama pull {name}`), or set OLLAMA_API_BASE",
        ) from None
    info = shown.get("model_info") if isinstance(shown, dict) else None
    lengths = [v for k, v in (info or {}).items() if k.endswith(".context_length") and isinstance(v, int)]
    return max(lengths) if lengths else None


def fit(step_id: str, model: str, tokens: int, window: int, max_tokens: int | None) -> int:
    """The `num_ctx` that holds a prompt of ~`tokens` and its answer, within `window`. Raises
    ConfigError for a prompt that does not fit the model's window at all."""
    need = int(tokens * MARGIN)
    if need > window:
        raise ConfigError(
            f"step '{step_id}': its prompt (~{tokens:,} tokens) does not fit {model}'s context window "
            f"({window:,} tokens, as its Ollama server reports it); nothing was sent",
            hint="narrow the step's context, use history_visibility: latest or summary, "
            "or choose a model with a larger window",
        )
    size = 2048
    while size < need + (max_tokens or ANSWER_ROOM):
        size *= 2
    return min(size, window)


def check_counted(request: Request, spent: Usage, estimate: int) -> None:
    """Raise StepFailed when a local server counted far fewer prompt tokens than were sent:
    it cut the prompt to its window, and the answer is to part of it."""
    if not request.endpoint.local or spent.estimated or estimate < 1000:
        return
    if spent.prompt_tokens >= estimate * CUT_BELOW:
        return
    raise StepFailed(
        f"step '{request.step_id}' (model {request.model}): the server counted {spent.prompt_tokens:,} prompt "
        f"tokens of the ~{estimate:,} sent, so it cut the prompt to fit its context window; the answer is "
        "to part of it",
        hint="raise the model's context window on the server (Ollama: use `ollama_chat:`, which aethr "
        "fits), or narrow the step's context, then resume",
        usage=spent,
    )
