"""Costs: exact integer arithmetic, rounded up once per charge, with a metadata record."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paywire.errors import InvalidInput
from paywire.meter import (
    MAX_TOKENS,
    METER_METADATA_KEY,
    PICO_PER_ATOMIC,
    Charge,
    InvalidMeterRecord,
    ModelPrice,
    PriceBook,
    Usage,
    cost,
    max_cost,
)
from paywire.meter.price_book import MAX_PRICE_PICO
from paywire.money import ETH, MAX_ATOMIC, USDC, Asset

SMOL = ModelPrice.parse(
    "smollm2-135m-instruct",
    USDC,
    input_per_mtok="0.10",
    output_per_mtok="0.40",
    cached_input_per_mtok="0.05",
)


def exact_atomic(price: ModelPrice, usage: Usage) -> Fraction:
    """The exact cost in atomic units, computed independently with fractions of a dollar."""
    per_mtok = {
        kind: Fraction(price.per_mtok(kind)) for kind in ("input", "output", "cached_input")
    }
    whole_units = (
        usage.uncached_input_tokens * per_mtok["input"]
        + usage.cached_input_tokens * per_mtok["cached_input"]
        + usage.output_tokens * per_mtok["output"]
    ) / 10**6
    return whole_units * 10**price.asset.decimals


def test_worked_example() -> None:
    charge = cost(SMOL, Usage(1200, 16, 200))
    # 1000 * 0.1 + 200 * 0.05 + 16 * 0.4 = 116.4 atomic units -> 117
    assert charge.exact_pico == 116_400_000_000_000
    assert charge.amount == USDC.atomic(117)
    assert charge.metadata["exact"] == "0.0001164"


@pytest.mark.parametrize(
    ("output_tokens", "atomic"),
    [(0, 0), (1, 1), (2, 1), (3, 2), (5, 2), (7, 3), (10, 4)],
)
def test_rounding_up_at_the_boundaries(output_tokens: int, atomic: int) -> None:
    # 0.40 USDC per million output tokens is 0.4 atomic units a token.
    assert cost(SMOL, Usage(0, output_tokens)).amount.atomic == atomic


def test_rounding_is_once_per_charge_not_per_kind() -> None:
    # Input alone 0.1 and output alone 0.4 would each round up to 1 (2 in all); together 0.5 -> 1.
    assert cost(SMOL, Usage(1, 1)).amount.atomic == 1


def test_exact_price_gives_exact_amount_with_no_rounding() -> None:
    charge = cost(SMOL, Usage(10, 10, 0))
    assert charge.exact_pico == 5 * PICO_PER_ATOMIC
    assert charge.amount.atomic == 5


def test_one_pico_is_still_charged_one_atomic_unit() -> None:
    price = ModelPrice.parse("m", USDC, input_per_mtok="0.000000000001", output_per_mtok=0)
    charge = cost(price, Usage(1, 0))
    assert charge.exact_pico == 1
    assert charge.amount.atomic == 1
    assert charge.metadata["exact"] == "0.000000000000000001"


def test_max_cost_is_the_worst_case() -> None:
    assert max_cost(SMOL, 2048, 256) == USDC.atomic(308)  # 204.8 + 102.4 = 307.2 -> 308
    dear_cache = ModelPrice.parse(
        "m", USDC, input_per_mtok=1, output_per_mtok=1, cached_input_per_mtok=3
    )
    assert max_cost(dear_cache, 10, 0).atomic == 30
    assert max_cost(SMOL, 0, 0).atomic == 0


def test_the_largest_charge_fits_an_amount() -> None:
    price = ModelPrice("m", "m", USDC, MAX_PRICE_PICO, MAX_PRICE_PICO, MAX_PRICE_PICO)
    charge = cost(price, Usage(MAX_TOKENS, MAX_TOKENS, MAX_TOKENS // 2))
    assert charge.amount.atomic <= MAX_ATOMIC
    assert max_cost(price, MAX_TOKENS, MAX_TOKENS).atomic <= MAX_ATOMIC


def test_cost_refuses_wrong_arguments() -> None:
    with pytest.raises(TypeError):
        cost(SMOL, (1, 2))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="usage_source"):
        cost(SMOL, Usage(1, 1), usage_source="guessed")  # type: ignore[arg-type]


prices = st.builds(
    ModelPrice,
    model=st.just("m"),
    priced_as=st.just("m"),
    asset=st.sampled_from([USDC, ETH, Asset("ZERO", 0)]),
    input_pico=st.integers(0, MAX_PRICE_PICO),
    output_pico=st.integers(0, MAX_PRICE_PICO),
    cached_input_pico=st.integers(0, MAX_PRICE_PICO),
)


@st.composite
def usages(draw: st.DrawFn, most: int = MAX_TOKENS) -> Usage:
    input_tokens = draw(st.integers(0, most))
    output_tokens = draw(st.integers(0, most))
    return Usage(input_tokens, output_tokens, draw(st.integers(0, input_tokens)))


@given(prices, usages())
def test_cost_is_exact_plus_less_than_one_atomic_unit(price: ModelPrice, usage: Usage) -> None:
    exact = exact_atomic(price, usage)
    charged = cost(price, usage).amount.atomic
    assert exact <= charged < exact + 1


@given(
    prices,
    usages(most=MAX_TOKENS - 10**6),
    st.sampled_from(["input", "output", "cached"]),
    st.integers(1, 10**6),
)
def test_cost_is_monotone_in_every_token_count(
    price: ModelPrice, usage: Usage, kind: str, more: int
) -> None:
    if kind == "input":
        bigger = Usage(usage.input_tokens + more, usage.output_tokens, usage.cached_input_tokens)
    elif kind == "output":
        bigger = Usage(usage.input_tokens, usage.output_tokens + more, usage.cached_input_tokens)
    else:  # a cached token more is an input token more, too
        bigger = Usage(
            usage.input_tokens + more, usage.output_tokens, usage.cached_input_tokens + more
        )
    assert cost(price, usage).amount <= cost(price, bigger).amount


@given(prices, usages())
def test_cost_never_exceeds_max_cost_for_the_same_bounds(price: ModelPrice, usage: Usage) -> None:
    bound = max_cost(price, usage.input_tokens, usage.output_tokens)
    assert cost(price, usage).amount <= bound


@given(prices, usages())
def test_metadata_round_trips(price: ModelPrice, usage: Usage) -> None:
    charge = cost(price, usage, usage_source="counted")
    text = json.dumps(charge.metadata)  # JSON-safe: no floats, no objects
    assert Charge.from_metadata(json.loads(text)) == charge


def test_metadata_shape_is_the_documented_one() -> None:
    book = PriceBook.from_toml(
        '[models."smollm2-135m-instruct"]\nasset = "USDC"\ninput_per_mtok = "0.10"\n'
        'output_per_mtok = "0.40"\ncached_input_per_mtok = "0.05"\naliases = ["SmolLM2"]\n'
    )
    charge = cost(book.price("SmolLM2"), Usage(1200, 16, 200))
    assert charge.metadata == {
        "v": 1,
        "model": "SmolLM2",
        "priced_as": "smollm2-135m-instruct",
        "price_book": book.digest,
        "asset": "USDC",
        "decimals": 6,
        "tokens": {"input": 1200, "cached_input": 200, "output": 16},
        "per_mtok": {"input": "0.1", "cached_input": "0.05", "output": "0.4"},
        "exact": "0.0001164",
        "amount": "117",
        "rounding": "up",
        "usage_source": "upstream",
    }
    assert METER_METADATA_KEY == "meter"
    # Within the ledger's metadata limits: 4 KiB, depth 4 under the transfer's metadata.
    assert len(json.dumps({METER_METADATA_KEY: charge.metadata})) < 1024
    assert Charge.from_metadata(charge.metadata) == charge


def _tampered(**changes: object) -> dict[str, object]:
    record: dict[str, object] = dict(cost(SMOL, Usage(1200, 16, 200)).metadata)
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("record", "match"),
    [
        (_tampered(amount="116"), "does not follow"),
        (_tampered(exact="0.0001"), "does not follow"),
        (_tampered(tokens={"input": 1200, "cached_input": 200, "output": 17}), "does not follow"),
        (_tampered(tokens={"input": 1200, "output": 16}), "exactly"),
        (_tampered(tokens={"input": -1, "cached_input": 0, "output": 1}), "negative"),
        (_tampered(per_mtok={"input": "0.1", "cached_input": "0.05", "output": 0.4}), "float"),
        (_tampered(v=2), "version"),
        (_tampered(v=True), "version"),
        (_tampered(rounding="down"), "rounding"),
        (_tampered(usage_source="guess"), "usage_source"),
        (_tampered(model="a b"), "model id"),
        (_tampered(priced_as=""), "price book entry"),
        (_tampered(price_book="xyz"), "SHA-256"),
        (_tampered(asset="usdc"), "asset code"),
        (_tampered(decimals="6"), "decimals"),
        (_tampered(extra=1), "unknown"),
        ({"v": 1}, "missing"),
    ],
)
def test_tampered_metadata_is_refused(record: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidMeterRecord, match=match) as caught:
        Charge.from_metadata(record)
    assert caught.value.code == "invalid_meter_record"
