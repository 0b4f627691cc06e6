"""Assets, amounts and parsing at the edge: exact, bounded, never floats."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paywire.errors import InvalidInput
from paywire.money import (
    ETH,
    EURC,
    MAX_ATOMIC,
    USDC,
    Amount,
    Asset,
    AssetMismatch,
    InvalidAmount,
    format_atomic,
    parse_amount,
)


@pytest.mark.parametrize(
    ("text", "asset", "expected"),
    [
        ("$0.01", None, USDC.atomic(10_000)),
        ("$1", None, USDC.atomic(1_000_000)),
        ("  $0.000001 ", None, USDC.atomic(1)),
        ("0.01 USDC", None, USDC.atomic(10_000)),
        ("0.01 usdc", None, USDC.atomic(10_000)),
        ("2.5 EURC", None, EURC.atomic(2_500_000)),
        ("1 ETH", None, ETH.atomic(10**18)),
        ("10000", USDC, USDC.atomic(10_000)),
        ("$0.01", USDC, USDC.atomic(10_000)),
        ("0", USDC, USDC.atomic(0)),
        (str(MAX_ATOMIC), USDC, USDC.atomic(MAX_ATOMIC)),
    ],
)
def test_parse_amount(text: str, asset: Asset | None, expected: Amount) -> None:
    assert parse_amount(text, asset) == expected


@pytest.mark.parametrize(
    ("text", "asset", "error"),
    [
        ("0.0000001 USDC", None, "finer than one atomic unit"),
        ("$0.0000001", None, "finer"),
        ("10000", None, "no unit"),
        ("0.5", USDC, "atomic units, which are whole"),
        ("1e3", USDC, "cannot read"),
        ("-1", USDC, "cannot read"),
        ("$-1", None, "cannot read"),
        ("1,000", USDC, "cannot read"),
        ("1_000", USDC, "cannot read"),
        ("NaN", USDC, "cannot read"),
        ("inf", USDC, "cannot read"),
        ("", USDC, "cannot read"),
        ("$1 USDC", None, "both"),
        ("1 DOGE", None, "unknown asset"),
        (str(MAX_ATOMIC + 1), USDC, "2\\^128"),
        ("9" * 101, USDC, "longer than"),
        ("１２", USDC, "cannot read"),  # full-width digits: not ASCII
        ("0x10", USDC, "cannot read"),
    ],
)
def test_parse_amount_refusals(text: str, asset: Asset | None, error: str) -> None:
    with pytest.raises(InvalidAmount, match=error):
        parse_amount(text, asset)


def test_asset_mismatch_when_parsing() -> None:
    with pytest.raises(AssetMismatch):
        parse_amount("1 EURC", USDC)
    with pytest.raises(AssetMismatch):
        parse_amount("$1", EURC)


def test_parse_rejects_non_text() -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(0.01, USDC)  # type: ignore[arg-type]


def test_asset_parse_reads_whole_units() -> None:
    assert USDC.parse("1.5") == USDC.atomic(1_500_000)
    assert USDC.parse("$1.5") == USDC.atomic(1_500_000)


@pytest.mark.parametrize(
    ("code", "decimals"),
    [("usdc", 6), ("", 6), ("TOOLONGCODE123", 6), ("USDC", -1), ("USDC", 31), ("USDC", True)],
)
def test_bad_assets(code: str, decimals: int) -> None:
    with pytest.raises(InvalidInput):
        Asset(code, decimals)


def test_arithmetic_and_bounds() -> None:
    a, b = USDC.atomic(7), USDC.atomic(5)
    assert a + b == USDC.atomic(12)
    assert a - b == USDC.atomic(2)
    assert b - a == USDC.atomic(-2)
    assert -a == USDC.atomic(-7)
    assert b < a <= a and a > b >= b
    with pytest.raises(AssetMismatch):
        _ = a + EURC.atomic(1)
    with pytest.raises(AssetMismatch):
        _ = a < EURC.atomic(1)
    with pytest.raises(InvalidAmount):
        _ = USDC.atomic(MAX_ATOMIC) + USDC.atomic(1)
    with pytest.raises(InvalidAmount):
        Amount(1.0, USDC)  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        Amount(True, USDC)


def test_formatting() -> None:
    assert str(USDC.atomic(10_000)) == "0.01 USDC"
    assert str(USDC.atomic(1_000_000)) == "1 USDC"
    assert str(USDC.atomic(-1_500_000)) == "-1.5 USDC"
    assert USDC.atomic(1).to_decimal() == Decimal("0.000001")
    assert format_atomic(5, 0) == "5"


@given(st.integers(min_value=0, max_value=MAX_ATOMIC), st.sampled_from([USDC, EURC, ETH]))
def test_format_then_parse_round_trips(atomic: int, asset: Asset) -> None:
    amount = Amount(atomic, asset)
    assert parse_amount(str(amount)) == amount
    assert Decimal(amount.format()) == amount.to_decimal()


@given(st.text(max_size=60))
def test_parse_never_crashes(text: str) -> None:
    try:
        amount = parse_amount(text, USDC)
    except InvalidInput:
        return
    assert 0 <= amount.atomic <= MAX_ATOMIC
