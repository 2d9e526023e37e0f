"""What a call costs: an Llm's prices per million tokens applied to the tokens a provider reported.

One currency for the installation (MCPD_CURRENCY). The cost is computed once, when the call's audit row
is written, from the prices the call was served with; it is null when a price or a count is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

PER = Decimal(1_000_000)  # prices are per million tokens
COST_PLACES = Decimal("0.0000000001")  # the audit column's 10 decimal places


@dataclass(frozen=True, slots=True)
class Prices:
    """Per million tokens; None when not set. Cache prices unset: cache tokens cost the input price."""

    input: Decimal | None = None
    output: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None

    @property
    def known(self) -> bool:
        return self.input is not None and self.output is not None

    def cost(self, prompt: int | None, completion: int | None, cache_read: int | None = None,
             cache_write: int | None = None) -> Decimal | None:
        """The cost of a call's tokens (prompt counts the cache tokens too, as Usage does)."""
        if not self.known or prompt is None or completion is None:
            return None
        read, written = cache_read or 0, cache_write or 0
        fresh = max(prompt - read - written, 0)
        total = (fresh * self.input + completion * self.output
                 + read * _or(self.cache_read, self.input) + written * _or(self.cache_write, self.input))
        return (total / PER).quantize(COST_PLACES)

    def estimate(self, prompt: int, completion: int) -> Decimal:
        """An upper-bound cost of a call before it is made (0 when the prices are not known)."""
        if not self.known:
            return Decimal(0)
        return ((prompt * self.input + completion * self.output) / PER).quantize(COST_PLACES)


def _or(price: Decimal | None, fallback: Any) -> Decimal:
    return fallback if price is None else price


def cost_of(prices: Prices | None, fields: dict[str, Any]) -> Decimal | None:
    """The cost of an audit row's tokens."""
    if prices is None:
        return None
    return prices.cost(fields.get("prompt_tokens"), fields.get("completion_tokens"), fields.get("cache_read_tokens"),
                       fields.get("cache_write_tokens"))
