"""Hostile deep JSON is refused, not a crash, even with the recursion limit py-evm and
py_ecc set (10^5): the C JSON decoder would overflow the stack long before it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import pytest

from paywire import _json
from paywire.errors import PaywireError


@pytest.fixture
def high_recursion_limit() -> Iterator[None]:
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    yield
    sys.setrecursionlimit(before)


def _parsers() -> list[tuple[str, Callable[[str], object]]]:
    from paywire.ledger._entries_decode import decode_entry
    from paywire.mandate import MandateChain, SignedMandate
    from paywire.meter import PriceBook

    return [
        ("bounded loads", _json.loads),
        ("log entry", decode_entry),
        ("mandate", SignedMandate.from_json),
        ("mandate chain", MandateChain.from_json),
        ("price book", PriceBook.from_json),
    ]


@pytest.mark.usefixtures("high_recursion_limit")
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deep_json_is_refused_by_every_parser(opener: str) -> None:
    text = opener * 6_000  # under every size cap, far past every depth bound
    for name, parse in _parsers():
        with pytest.raises((ValueError, PaywireError)):  # a refusal, not a crash
            parse(text)
        assert name


def test_depth_counts_brackets_outside_strings_only() -> None:
    assert _json.json_depth('{"a": "[[[[[[", "b": [[1]]}') == 3
    assert _json.json_depth('"\\"[["') == 0
    assert _json.loads("[" * 64 + "]" * 64) is not None
    with pytest.raises(_json.JsonTooDeep):
        _json.loads("[" * 65 + "]" * 65)
