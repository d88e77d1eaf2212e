"""What a step or a run spent: tokens, and a cost that keeps what it knows; and how each
reads wherever it is shown (`usd`, `money`, `tokens`: the summary, the report, a step's line).

A dataclass, not a NamedTuple like the events that carry it, so that `+` adds usages
and never means tuple concatenation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    """Tokens and cost of one step or run: a known sum, and whether it is the whole cost.

    `cost_usd` is what is known to have been spent; None when nothing about the cost is
    known (an unpriced model: never silently $0). `at_least` marks a floor: part of the
    cost is unknown (a call cut off mid-way, a retried timeout, an unpriced part), so
    more may have been spent. Adding an unknown part never erases what is known: the sum
    keeps the known cost and becomes a floor (of $0 it stays unknown). `estimated`: the token counts are aethr's
    own estimate (4 characters a token), as the provider reported none.

    `cached_tokens` and `cache_write_tokens` are parts of `prompt_tokens`, never beside it:
    input read from the provider's prompt cache (billed at its cached rate, about a tenth)
    and input written to it (Anthropic's cache creation, billed above the input rate). Every
    reader adds them into `prompt_tokens` where its format counts them apart (Anthropic,
    Claude Code, OpenCode), so `prompt_tokens` is always every input token of the calls.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    at_least: bool = False
    estimated: bool = False
    cached_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        if self.cost_usd is None and other.cost_usd is None:
            cost = None
        else:
            cost = (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        partial = (self.cost_usd is None) != (other.cost_usd is None)  # one side known, one not
        if partial and not cost:
            cost, partial = None, False  # a floor of $0 says nothing: the cost is unknown
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            cost,
            self.at_least or other.at_least or partial,
            self.estimated or other.estimated,
            self.cached_tokens + other.cached_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )

    @property
    def known(self) -> float:
        """What is known to have been spent: the floor the spend cap counts."""
        return self.cost_usd or 0.0

    @property
    def complete(self) -> bool:
        """True when `cost_usd` is the whole cost."""
        return self.cost_usd is not None and not self.at_least

    def cut_short(self) -> Usage:
        """The same usage, as a floor: more may have been spent than was reported."""
        return dataclasses.replace(self, at_least=True)


def usd(amount: float) -> str:
    """Dollars with at least four decimals, and enough for two significant digits of a small
    amount, so a cap of $0.000001 never reads as $0.0000."""
    if amount <= 0 or amount >= 0.001:
        return f"${amount:.4f}"
    return f"${amount:.{1 - math.floor(math.log10(amount))}f}"


def money(usage: Usage) -> str:
    """The cost as shown: "unknown" when no price is known, "≥$x" for a floor (a call cut off).
    A floor of nothing known (an unpriced part beside a $0 one) says nothing, so it is unknown too."""
    if usage.cost_usd is None or (usage.at_least and not usage.cost_usd):
        return "unknown"
    floor = "≥" if usage.at_least else ""
    return floor + (f"${usage.cost_usd:.6f}" if usage.cost_usd else "$0")


def tokens(usage: Usage, share: bool = False) -> str:
    """Tokens as shown, input+output; "~" marks aethr's own estimate (the provider reported none).
    The input's parts read from and written to the prompt cache follow, when there are any
    (with `share`, the part of the input that was read from the cache)."""
    shown = f"{'~' if usage.estimated else ''}{usage.prompt_tokens}+{usage.completion_tokens}"
    parts = [f"{usage.cached_tokens} cached"] if usage.cached_tokens else []
    if share and usage.cached_tokens:
        parts[0] += f", {usage.cached_tokens / usage.prompt_tokens:.0%} of the input"
    if usage.cache_write_tokens:
        parts.append(f"{usage.cache_write_tokens} written to the cache")
    return f"{shown} ({'; '.join(parts)})" if parts else shown
