"""What a step or a run spent: tokens, and a cost that keeps what it knows.

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
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    at_least: bool = False
    estimated: bool = False

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
