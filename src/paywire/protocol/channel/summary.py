"""What the charges of a channel were for, summed between claims.

A claim carries the summary of the charges it collects, so the ledger's claim transfer says
what was bought (as a per-request payment's metadata does): the number of charges, their
amount, and per model the AI tokens (from `paywire.meter`'s `Charge.metadata`, given as the
charge's metadata or under its ``"meter"`` key). Everything is a sum, so what a claim
collected is subtracted when it succeeds, and charges made meanwhile stay.

The JSON form fits the ledger's metadata rules (depth, 64-bit integers):

    {"charges": 3, "amount": "1234",
     "models": {"gpt-4o": [charges, input, cached_input, output, "amount"]}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_MODELS = 16
"""Models named in a summary; the rest are counted under `OTHER`."""

MAX_MODEL_CHARS = 64
OTHER = "(other)"
MAX_TOKENS = 2**62


def _tokens(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
        return value
    return 0


@dataclass(slots=True)
class Summary:
    """Charges counted, their amount, and per model [charges, input, cached, output, amount]."""

    charges: int = 0
    amount: int = 0
    models: dict[str, list[int]] = field(default_factory=dict)

    def add(self, amount: int, metadata: Mapping[str, Any] | None) -> None:
        self.charges += 1
        self.amount += amount
        meter = metadata.get("meter", metadata) if isinstance(metadata, Mapping) else None
        if not isinstance(meter, Mapping):
            return
        model = meter.get("model")
        if not isinstance(model, str) or not model:
            return
        name = model[:MAX_MODEL_CHARS]
        if name not in self.models and len(self.models) >= MAX_MODELS:
            name = OTHER
        tokens = meter.get("tokens")
        tokens = tokens if isinstance(tokens, Mapping) else {}
        row = self.models.setdefault(name, [0, 0, 0, 0, 0])
        row[0] += 1
        row[1] += _tokens(tokens.get("input"))
        row[2] += _tokens(tokens.get("cached_input"))
        row[3] += _tokens(tokens.get("output"))
        row[4] += amount

    def copy(self) -> Summary:
        return Summary(self.charges, self.amount, {k: list(v) for k, v in self.models.items()})

    def subtract(self, collected: Summary) -> None:
        """Take out what a successful claim collected."""
        self.charges = max(0, self.charges - collected.charges)
        self.amount = max(0, self.amount - collected.amount)
        for name, row in collected.models.items():
            mine = self.models.get(name)
            if mine is None:
                continue
            for index, value in enumerate(row):
                mine[index] = max(0, mine[index] - value)
            if mine[0] == 0:
                del self.models[name]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"charges": self.charges, "amount": str(self.amount)}
        if self.models:
            data["models"] = {
                name: [*row[:4], str(row[4])] for name, row in sorted(self.models.items())
            }
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> Summary:
        try:
            data = json.loads(text) if text else {}
            models = {
                str(name): [*(int(v) for v in row[:4]), int(row[4])]
                for name, row in dict(data.get("models", {})).items()
            }
            return cls(int(data.get("charges", 0)), int(data.get("amount", "0")), models)
        except (ValueError, TypeError, AttributeError, IndexError):
            return cls()  # a damaged summary costs its detail, never the money
