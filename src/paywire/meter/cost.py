"""What a request's AI tokens cost, in whole atomic units, and the record of how.

Rounding rule: **up, once per charge.** The exact cost, a whole number of pico-atomic units
(10^-12 atomic units), is summed over the token kinds first and rounded up to the next atomic
unit only at the end. So the provider is never paid less than its price book, and the payer
never pays more than one atomic unit (10^-6 USDC) above the exact price per charge. A channel
that charges the running sum of its usage (``cost(price, total).amount - already_charged``)
over-charges less than one atomic unit over its whole life. `max_cost` uses the same rule, and
cost is monotone in every token count, so a charge never exceeds the maximum authorized for
the same token bounds.

A `Charge` carries the metering detail as JSON-safe metadata for the ledger transfer that
collects it, under the key `METER_METADATA_KEY` (``"meter"``), version 1::

    {"meter": {
        "v": 1,
        "model": "SmolLM2",                      # the model id the request named
        "priced_as": "smollm2-135m-instruct",    # the price book entry that priced it
        "price_book": "9f2c...",                 # SHA-256 hex of that book ("" by hand)
        "asset": "USDC", "decimals": 6,
        "tokens": {"input": 1200, "cached_input": 200, "output": 16},
        "per_mtok": {"input": "0.1", "cached_input": "0.05", "output": "0.4"},
        "exact": "0.0001164",                    # exact cost, whole units, decimal text
        "amount": "117",                         # charged, atomic units, integer text
        "rounding": "up",
        "usage_source": "upstream"               # or "counted" (by a tokenizer)
    }}

Token counts are integers (bounded by `MAX_TOKENS`, so they fit the ledger's 64-bit
metadata integers); money is text (an amount may pass 2^63); prices are whole units per
million tokens, as the price book writes them. `Charge.from_metadata` reads it back and
checks that the amount follows from the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

from paywire.errors import InvalidInput
from paywire.meter.price_book import (
    PICO_DECIMALS,
    PICO_PER_ATOMIC,
    ModelPrice,
    PriceKind,
    is_price_key,
    parse_price,
)
from paywire.meter.usage import Usage
from paywire.money import Amount, Asset, format_atomic

METER_METADATA_KEY = "meter"
"""The key under which a transfer's metadata holds its `Charge.metadata`."""

METADATA_VERSION = 1

ROUNDING = "up"

UsageSource = Literal["upstream", "counted"]
"""Where the token counts came from: the upstream's ``usage``, or our own tokenizer."""

JsonValue: TypeAlias = bool | int | str | list["JsonValue"] | dict[str, "JsonValue"] | None

_KINDS: tuple[PriceKind, ...] = ("input", "cached_input", "output")
_METADATA_KEYS = frozenset(
    {
        "v",
        "model",
        "priced_as",
        "price_book",
        "asset",
        "decimals",
        "tokens",
        "per_mtok",
        "exact",
        "amount",
        "rounding",
        "usage_source",
    }
)
_DIGEST = re.compile(r"(?:[0-9a-f]{64})?")


class InvalidMeterRecord(InvalidInput):
    """Metering metadata that is malformed or whose amount does not follow from its detail."""

    code = "invalid_meter_record"


@dataclass(frozen=True, slots=True)
class Charge:
    """What one request's tokens cost: the `amount` to collect and how it was reached."""

    price: ModelPrice
    usage: Usage
    exact_pico: int
    """The exact cost in pico-atomic units (10^-12 atomic units)."""
    amount: Amount
    """The exact cost rounded up to a whole atomic unit."""
    usage_source: UsageSource = "upstream"

    @property
    def metadata(self) -> dict[str, JsonValue]:
        """The metering detail, JSON-safe, for ``metadata[METER_METADATA_KEY]``."""
        price, usage = self.price, self.usage
        return {
            "v": METADATA_VERSION,
            "model": price.model,
            "priced_as": price.priced_as,
            "price_book": price.book,
            "asset": price.asset.code,
            "decimals": price.asset.decimals,
            "tokens": {
                "input": usage.input_tokens,
                "cached_input": usage.cached_input_tokens,
                "output": usage.output_tokens,
            },
            "per_mtok": {kind: price.per_mtok(kind) for kind in _KINDS},
            "exact": format_atomic(self.exact_pico, price.asset.decimals + PICO_DECIMALS),
            "amount": str(self.amount.atomic),
            "rounding": ROUNDING,
            "usage_source": self.usage_source,
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, object]) -> Charge:
        """Read `Charge.metadata` back, checking that its exact cost and amount follow from
        its tokens and prices (``Charge.from_metadata(c.metadata) == c``)."""
        try:
            return _from_metadata(metadata)
        except InvalidMeterRecord:
            raise
        except InvalidInput as error:
            raise InvalidMeterRecord(f"meter metadata is invalid: {error}") from None


def exact_cost_pico(price: ModelPrice, usage: Usage) -> int:
    """The exact cost of `usage` at `price`, in pico-atomic units (no rounding)."""
    return (
        usage.uncached_input_tokens * price.input_pico
        + usage.cached_input_tokens * price.cached_input_pico
        + usage.output_tokens * price.output_pico
    )


def cost(price: ModelPrice, usage: Usage, *, usage_source: UsageSource = "upstream") -> Charge:
    """The charge for `usage` at `price`: the exact cost rounded up to an atomic unit."""
    if not isinstance(price, ModelPrice) or not isinstance(usage, Usage):
        raise TypeError("cost() takes a ModelPrice and a Usage")
    if usage_source not in ("upstream", "counted"):
        raise InvalidInput(f"usage_source must be 'upstream' or 'counted', not {usage_source!r}")
    exact = exact_cost_pico(price, usage)
    return Charge(
        price=price,
        usage=usage,
        exact_pico=exact,
        amount=price.asset.atomic(_round_up(exact)),
        usage_source=usage_source,
    )


def max_cost(price: ModelPrice, max_input_tokens: int, max_output_tokens: int) -> Amount:
    """The most a request of at most these many tokens can cost (to authorize or hold before
    a stream starts). Every input token is taken at the dearer of the input and cached-input
    prices, so ``cost(price, usage).amount <= max_cost(...)`` for any usage within bounds."""
    bounds = Usage(max_input_tokens, max_output_tokens)
    worst_input = max(price.input_pico, price.cached_input_pico)
    exact = bounds.input_tokens * worst_input + bounds.output_tokens * price.output_pico
    return price.asset.atomic(_round_up(exact))


def _round_up(pico: int) -> int:
    return -(-pico // PICO_PER_ATOMIC)


def _from_metadata(metadata: Mapping[str, object]) -> Charge:
    if not isinstance(metadata, Mapping):
        raise InvalidMeterRecord("meter metadata must be an object")
    keys = set(metadata)
    if keys != _METADATA_KEYS:
        missing, extra = sorted(_METADATA_KEYS - keys), sorted(keys - _METADATA_KEYS)
        raise InvalidMeterRecord(f"meter metadata keys: missing {missing}, unknown {extra}")
    if metadata["v"] != METADATA_VERSION or isinstance(metadata["v"], bool):
        raise InvalidMeterRecord(f"meter metadata version {metadata['v']!r} is not 1")
    if metadata["rounding"] != ROUNDING:
        raise InvalidMeterRecord(f"meter metadata rounding {metadata['rounding']!r} is not 'up'")
    source = metadata["usage_source"]
    if source not in ("upstream", "counted"):
        raise InvalidMeterRecord(f"meter metadata usage_source {source!r} is unknown")
    model, priced_as, book = metadata["model"], metadata["priced_as"], metadata["price_book"]
    if not isinstance(model, str) or not is_price_key(model):
        raise InvalidMeterRecord("meter metadata model is not a model id")
    if not isinstance(priced_as, str) or not is_price_key(priced_as):
        raise InvalidMeterRecord("meter metadata priced_as is not a price book entry")
    if not isinstance(book, str) or not _DIGEST.fullmatch(book):
        raise InvalidMeterRecord("meter metadata price_book is not a SHA-256 hex digest")
    code, decimals = metadata["asset"], metadata["decimals"]
    if not isinstance(code, str) or isinstance(decimals, bool) or not isinstance(decimals, int):
        raise InvalidMeterRecord("meter metadata asset must be a code and decimals an integer")
    asset = Asset(code, decimals)
    tokens = _table(metadata["tokens"], "tokens")
    per_mtok = _table(metadata["per_mtok"], "per_mtok")
    picos = {kind: parse_price(per_mtok[kind], asset, f"per_mtok.{kind}") for kind in _KINDS}
    price = ModelPrice(
        model=model,
        priced_as=priced_as,
        asset=asset,
        input_pico=picos["input"],
        output_pico=picos["output"],
        cached_input_pico=picos["cached_input"],
        book=book,
    )
    usage = Usage(
        input_tokens=tokens["input"],  # type: ignore[arg-type]  # Usage checks the types
        output_tokens=tokens["output"],  # type: ignore[arg-type]
        cached_input_tokens=tokens["cached_input"],  # type: ignore[arg-type]
    )
    charge = cost(price, usage, usage_source=source)
    recorded = charge.metadata
    for field in ("exact", "amount"):
        if metadata[field] != recorded[field]:
            raise InvalidMeterRecord(
                f"meter metadata {field} {metadata[field]!r} does not follow from its tokens "
                f"and prices ({recorded[field]!r})"
            )
    return charge


def _table(value: object, name: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping) or set(value) != set(_KINDS):
        raise InvalidMeterRecord(f"meter metadata {name} must have exactly {', '.join(_KINDS)}")
    return value
