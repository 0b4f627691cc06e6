"""Price books: what a million AI tokens of each model cost, exactly.

The operator writes one file, TOML or JSON, and controls it::

    [models."smollm2-135m-instruct"]
    asset = "USDC"
    input_per_mtok = "0.10"          # whole USDC per million input tokens
    output_per_mtok = "0.40"
    cached_input_per_mtok = "0.05"   # optional; the input price when absent
    aliases = ["smollm2"]            # optional; other names of this model

    [models."gpt-4o-*"]              # a trailing '*' prices every model id with that prefix
    asset = "USDC"
    input_per_mtok = "2.50"
    output_per_mtok = 10             # an integer is whole units

    [assets]                         # optional: assets beyond USDC, EURC and ETH
    PUSD = 6                         # code = decimals

Prices are text or integers, never floats: TOML reads ``0.10`` as a binary float, so the file
must say ``"0.10"``. A price may be finer than the asset's atomic unit (USDC 0.10 per million
tokens is 0.1 atomic units per token), so prices are kept as whole **pico-atomic units per
token** (10^-12 atomic units; `PICO_PER_ATOMIC`): a price per million tokens may carry up to
`PRICE_EXTRA_DECIMALS` (6) decimals more than its asset, and is then an exact integer. All
cost arithmetic is integer arithmetic on these; nothing is rounded until a charge
(`paywire.meter.cost`).

Model ids are matched without regard to case: an exact id or alias first, then the longest
wildcard prefix. A model the book does not price is `UnknownModel`, never a default price.

The parts: the price of one model and exact price text (`_model_price`), reading and
validating a book (`_price_book_parse`), and here the book and its lookup.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from paywire import _json
from paywire.meter._errors import InvalidPriceBook, UnknownModel
from paywire.meter._model_price import (
    MAX_MODEL_ID_CHARS,
    MAX_PRICE_PICO,
    MAX_PRICE_TEXT_CHARS,
    MODEL_ID_PATTERN,
    PICO_DECIMALS,
    PICO_PER_ATOMIC,
    PRICE_EXTRA_DECIMALS,
    WILDCARD_PATTERN,
    ModelPrice,
    PriceKind,
    _JsonFloat,
    is_price_key,
    parse_price,
)
from paywire.meter._price_book_parse import (
    MAX_ALIASES,
    MAX_MODELS,
    MAX_PRICE_BOOK_BYTES,
    _decoded,
    _digest,
    _read_book,
    _refuse_constant,
    _to_mapping,
    _unique_keys,
)
from paywire.money import Asset

__all__ = [
    "MAX_ALIASES",
    "MAX_MODELS",
    "MAX_MODEL_ID_CHARS",
    "MAX_PRICE_BOOK_BYTES",
    "MAX_PRICE_PICO",
    "MAX_PRICE_TEXT_CHARS",
    "MODEL_ID_PATTERN",
    "PICO_DECIMALS",
    "PICO_PER_ATOMIC",
    "PRICE_EXTRA_DECIMALS",
    "WILDCARD_PATTERN",
    "ModelPrice",
    "PriceBook",
    "PriceKind",
    "is_price_key",
    "parse_price",
]


class PriceBook:
    """Prices per model, read from a file the operator controls. Immutable once made.

    `digest` is the SHA-256 of the book's canonical JSON (`to_mapping`): the same prices give
    the same digest whatever the file's format, order or comments, and every charge records
    it, so which prices applied can be shown later.
    """

    __slots__ = ("_by_name", "_digest", "_entries", "_wildcards")

    def __init__(self, mapping: Mapping[str, Any], *, assets: Mapping[str, Asset] | None = None):
        """Validate a parsed price book (the shape of the TOML file, see the module doc)."""
        read, known = _read_book(mapping, assets)
        self._digest = _digest(_to_mapping(read, known))
        self._entries = tuple((replace(entry, book=self._digest), names) for entry, names in read)
        by_name: dict[str, ModelPrice] = {}
        wildcards: list[tuple[str, ModelPrice]] = []
        for entry, aliases in self._entries:
            if entry.priced_as.endswith("*"):
                wildcards.append((entry.priced_as[:-1].lower(), entry))
                continue
            for name in (entry.priced_as, *aliases):
                by_name[name.lower()] = entry
        wildcards.sort(key=lambda item: len(item[0]), reverse=True)
        self._by_name = by_name
        self._wildcards = tuple(wildcards)

    @classmethod
    def from_toml(
        cls, text: str | bytes, *, assets: Mapping[str, Asset] | None = None
    ) -> PriceBook:
        """A price book from TOML text."""
        decoded = _decoded(text)
        try:
            mapping = tomllib.loads(decoded)
        except tomllib.TOMLDecodeError as error:
            raise InvalidPriceBook(f"price book is not valid TOML: {error}") from None
        return cls(mapping, assets=assets)

    @classmethod
    def from_json(
        cls, text: str | bytes, *, assets: Mapping[str, Asset] | None = None
    ) -> PriceBook:
        """A price book from JSON text; numbers with a fraction or exponent are refused."""
        decoded = _decoded(text)
        try:
            mapping = _json.loads(
                decoded,
                parse_float=_JsonFloat,
                parse_constant=_refuse_constant,
                object_pairs_hook=_unique_keys,
            )
        except json.JSONDecodeError as error:
            raise InvalidPriceBook(f"price book is not valid JSON: {error}") from None
        except (ValueError, RecursionError) as error:
            raise InvalidPriceBook(f"price book JSON is refused: {error}") from None
        if not isinstance(mapping, dict):
            raise InvalidPriceBook("a price book is a JSON object with a 'models' object")
        return cls(mapping, assets=assets)

    @classmethod
    def load(cls, path: str | Path, *, assets: Mapping[str, Asset] | None = None) -> PriceBook:
        """A price book from a ``.toml`` or ``.json`` file."""
        file = Path(path)
        kind = file.suffix.lower()
        if kind not in (".toml", ".json"):
            raise InvalidPriceBook(f"price book {file} must be a .toml or .json file")
        try:
            with file.open("rb") as handle:
                data = handle.read(MAX_PRICE_BOOK_BYTES + 1)
        except OSError as error:
            raise InvalidPriceBook(f"cannot read price book {file}: {error.strerror}") from None
        if kind == ".toml":
            return cls.from_toml(data, assets=assets)
        return cls.from_json(data, assets=assets)

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the canonical JSON of the book."""
        return self._digest

    def price(self, model: str) -> ModelPrice:
        """The price of `model`: its entry or alias, else the longest matching wildcard."""
        if not isinstance(model, str) or not MODEL_ID_PATTERN.fullmatch(model):
            shown = model[:MAX_MODEL_ID_CHARS] if isinstance(model, str) else model
            raise UnknownModel(f"{shown!r} is not a model id, so it has no price")
        key = model.lower()
        found = self._by_name.get(key)
        if found is None:
            for prefix, wildcard in self._wildcards:
                if key.startswith(prefix):
                    found = wildcard
                    break
        if found is None:
            raise UnknownModel(f"the price book has no price for model {model!r}")
        return replace(found, model=model)

    def __contains__(self, model: object) -> bool:
        try:
            self.price(model)  # type: ignore[arg-type]
        except UnknownModel:
            return False
        return True

    def __iter__(self) -> Iterator[ModelPrice]:
        """The entries, in file order (wildcards with their pattern as `model`)."""
        return (entry for entry, _ in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def to_mapping(self) -> dict[str, Any]:
        """The book in the file's shape, prices as exact text (``PriceBook(book.to_mapping())``
        is the same book)."""
        known = {entry.asset.code: entry.asset for entry, _ in self._entries}
        return _to_mapping(self._entries, known)

    def __repr__(self) -> str:
        return f"PriceBook({len(self._entries)} entries, digest={self._digest[:12]})"
