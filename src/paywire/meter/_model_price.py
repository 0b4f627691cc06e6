"""The price of one model (`ModelPrice`), exact prices read from text (`parse_price`), and
what a model id may look like."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from paywire.meter._errors import InvalidPriceBook
from paywire.money import Asset, format_atomic

PICO_DECIMALS = 12
PICO_PER_ATOMIC = 1_000_000_000_000
assert PICO_PER_ATOMIC == 10**PICO_DECIMALS
"""Prices are whole pico-atomic units per token: 10^12 of them make one atomic unit."""

PRICE_EXTRA_DECIMALS = 6
"""A price per million tokens may have this many decimals more than its asset (10^6 tokens
times 10^-12 atomic units per token is 10^-6 atomic units per million tokens)."""

MAX_PRICE_PICO = 10**36
"""Bound of a per-token price (10^24 atomic units a token): with `MAX_TOKENS` of each kind a
charge still fits an `Amount` (< 2^128)."""

MAX_PRICE_TEXT_CHARS = 64
"""Longest price text read; a sane price has a few dozen digits at most."""


MAX_MODEL_ID_CHARS = 128
"""Model ids such as ``meta-llama/Llama-3.1-8B-Instruct`` or ``gpt-4o-2024-08-06``."""

MODEL_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
"""What a model id, or an alias, may look like: printable, no spaces, no wildcards."""

WILDCARD_PATTERN = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,126})?\*")
"""A price book key that prices every model id starting with what precedes its ``*``."""
_BOOK_DIGEST = re.compile(r"(?:[0-9a-f]{64})?")
_PRICE_TEXT = re.compile(r"(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?")

PriceKind = Literal["input", "output", "cached_input"]


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """The price of one model: whole pico-atomic units of `asset` per token, by token kind.

    `model` is the id the price was asked for; `priced_as` is the price book entry that
    matched it (the same id, an entry an alias points to, or a wildcard such as ``gpt-4o-*``);
    `book` is the digest of that price book (empty for a price made by hand).
    """

    model: str
    priced_as: str
    asset: Asset
    input_pico: int
    output_pico: int
    cached_input_pico: int
    book: str = ""

    def __post_init__(self) -> None:
        for name in ("input_pico", "output_pico", "cached_input_pico"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidPriceBook(f"{name} must be an integer, not {value!r}")
            if not 0 <= value <= MAX_PRICE_PICO:
                raise InvalidPriceBook(f"{name} {value} is outside 0..{MAX_PRICE_PICO}")
        if not isinstance(self.asset, Asset):
            raise InvalidPriceBook(f"asset must be an Asset, not {self.asset!r}")
        for name in ("model", "priced_as"):
            if not is_price_key(getattr(self, name)):
                raise InvalidPriceBook(
                    f"{name} must be a model id or a wildcard such as 'gpt-4o-*'"
                )
        if not isinstance(self.book, str) or not _BOOK_DIGEST.fullmatch(self.book):
            raise InvalidPriceBook("book must be a SHA-256 hex digest, or empty")

    @classmethod
    def parse(
        cls,
        model: str,
        asset: Asset,
        *,
        input_per_mtok: str | int,
        output_per_mtok: str | int,
        cached_input_per_mtok: str | int | None = None,
    ) -> ModelPrice:
        """A price from per-million-token prices in whole units (``"0.10"`` or ``2``)."""
        where = f"model {_check_model_id(model, 'model')!r}"
        input_pico = parse_price(input_per_mtok, asset, f"{where} input_per_mtok")
        cached = input_pico
        if cached_input_per_mtok is not None:
            cached = parse_price(cached_input_per_mtok, asset, f"{where} cached_input_per_mtok")
        return cls(
            model=model,
            priced_as=model,
            asset=asset,
            input_pico=input_pico,
            output_pico=parse_price(output_per_mtok, asset, f"{where} output_per_mtok"),
            cached_input_pico=cached,
        )

    def pico(self, kind: PriceKind) -> int:
        """The per-token price of one kind of token, in pico-atomic units."""
        if kind == "input":
            return self.input_pico
        if kind == "output":
            return self.output_pico
        return self.cached_input_pico

    def per_mtok(self, kind: PriceKind) -> str:
        """The price per million tokens of one kind, in whole units, as exact decimal text."""
        return format_atomic(self.pico(kind), self.asset.decimals + PRICE_EXTRA_DECIMALS)


def is_price_key(value: object) -> bool:
    """Whether `value` is a model id or a wildcard key (``gpt-4o-*``)."""
    return isinstance(value, str) and bool(
        MODEL_ID_PATTERN.fullmatch(value) or WILDCARD_PATTERN.fullmatch(value)
    )


def parse_price(value: object, asset: Asset, where: str = "price") -> int:
    """Read a price per million tokens in whole units of `asset` (``"0.10"``, ``"2"`` or the
    integer ``2``) as whole pico-atomic units per token. Floats are refused, not rounded."""
    if isinstance(value, float | _JsonFloat):
        shown = value.text if isinstance(value, _JsonFloat) else repr(value)
        raise InvalidPriceBook(
            f"{where} is a floating-point number ({shown}), which cannot hold prices exactly; "
            f'write it as text: "{shown}"'
        )
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidPriceBook(
            f'{where} must be text such as "0.10" or an integer, not {type(value).__name__}'
        )
    text = str(value) if isinstance(value, int) else value
    if len(text) > MAX_PRICE_TEXT_CHARS:
        raise InvalidPriceBook(f"{where} is longer than {MAX_PRICE_TEXT_CHARS} characters")
    if text.startswith("-"):
        raise InvalidPriceBook(f"{where} is negative ({text}); prices are zero or more")
    match = _PRICE_TEXT.fullmatch(text)
    if match is None:
        raise InvalidPriceBook(
            f'{where} {text!r} is not a plain decimal number; write e.g. "0.10" (no sign, '
            "unit, exponent or spaces)"
        )
    frac = match["frac"] or ""
    scale = asset.decimals + PRICE_EXTRA_DECIMALS
    if len(frac) > scale:
        raise InvalidPriceBook(
            f"{where} {text!r} has {len(frac)} decimals; a price per million tokens of "
            f"{asset.code} may have at most {scale} ({asset.decimals} + "
            f"{PRICE_EXTRA_DECIMALS}), i.e. 10^-12 atomic units per token"
        )
    pico = int(match["int"] + frac.ljust(scale, "0"))
    if pico > MAX_PRICE_PICO:
        raise InvalidPriceBook(f"{where} {text!r} is past the bound of prices")
    return pico


class _JsonFloat:
    """A JSON number with a fraction or exponent, kept as its text so that it can be refused
    with a clear message (it is not a `str`, so no other field takes it for text)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _check_model_id(model: object, where: str) -> str:
    if not isinstance(model, str) or not MODEL_ID_PATTERN.fullmatch(model):
        raise InvalidPriceBook(
            f"{where} is not a model id: 1-{MAX_MODEL_ID_CHARS} letters, digits or ._:/@+- "
            "starting with a letter or digit"
        )
    return model
