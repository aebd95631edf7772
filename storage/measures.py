"""`Measures`: the token and cost figures every usage row and rollup carries, and their sums.

One class for both sides: the ingest path adds events into it (storage/usage.py, in place
for speed) and the read queries return it (storage/queries.py) for cards, leaderboards
and digests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from storage.models import MEASURES


@dataclass(slots=True)
class Measures:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = field(default_factory=Decimal)
    events: int = 0
    unpriced_events: int = 0

    @property
    def tokens(self) -> int:
        """Input (cached included) plus output (reasoning included)."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Measures) -> Measures:
        return Measures(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in MEASURES}

    def as_tuple(self) -> tuple:
        return (self.input_tokens, self.cached_input_tokens, self.output_tokens, self.reasoning_tokens,
                self.cost_usd, self.events, self.unpriced_events)
