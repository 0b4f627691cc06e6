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
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from paywire.errors import InvalidInput
from paywire.meter._errors import InvalidPriceBook, UnknownModel
from paywire.money import KNOWN_ASSETS, Asset, format_atomic

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

MAX_PRICE_BOOK_BYTES = 1 << 20
"""A price book file of more than 1 MiB is not a price book."""

MAX_MODELS = 4096
"""Entries (models and wildcards) in one price book."""

MAX_ALIASES = 32
"""Aliases of one entry."""

MAX_MODEL_ID_CHARS = 128
"""Model ids such as ``meta-llama/Llama-3.1-8B-Instruct`` or ``gpt-4o-2024-08-06``."""

MODEL_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
"""What a model id, or an alias, may look like: printable, no spaces, no wildcards."""

WILDCARD_PATTERN = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,126})?\*")
"""A price book key that prices every model id starting with what precedes its ``*``."""
_BOOK_DIGEST = re.compile(r"(?:[0-9a-f]{64})?")
_PRICE_TEXT = re.compile(r"(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?")

PriceKind = Literal["input", "output", "cached_input"]

_ENTRY_KEYS = ("asset", "input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "aliases")
_TOP_KEYS = ("models", "assets")


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
            mapping = json.loads(
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


class _JsonFloat:
    """A JSON number with a fraction or exponent, kept as its text so that it can be refused
    with a clear message (it is not a `str`, so no other field takes it for text)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number a price book may hold")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def _decoded(text: str | bytes) -> str:
    if isinstance(text, bytes):
        if len(text) > MAX_PRICE_BOOK_BYTES:
            raise InvalidPriceBook(f"price book is larger than {MAX_PRICE_BOOK_BYTES} bytes")
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidPriceBook("price book is not UTF-8 text") from None
    if not isinstance(text, str):
        raise InvalidPriceBook(f"price book must be text, not {type(text).__name__}")
    if len(text) > MAX_PRICE_BOOK_BYTES:
        raise InvalidPriceBook(f"price book is larger than {MAX_PRICE_BOOK_BYTES} characters")
    return text


def _check_model_id(model: object, where: str) -> str:
    if not isinstance(model, str) or not MODEL_ID_PATTERN.fullmatch(model):
        raise InvalidPriceBook(
            f"{where} is not a model id: 1-{MAX_MODEL_ID_CHARS} letters, digits or ._:/@+- "
            "starting with a letter or digit"
        )
    return model


def _check_keys(table: Mapping[str, object], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise InvalidPriceBook(
            f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(allowed)}"
        )


def _read_assets(table: object, given: Mapping[str, Asset] | None) -> dict[str, Asset]:
    known = dict(KNOWN_ASSETS)
    if given:
        known.update(given)
    if table is None:
        return known
    if not isinstance(table, Mapping):
        raise InvalidPriceBook("'assets' must be a table of code = decimals")
    if len(table) > MAX_MODELS:
        raise InvalidPriceBook(f"'assets' has more than {MAX_MODELS} entries")
    for code, decimals in table.items():
        if isinstance(decimals, bool) or not isinstance(decimals, int):
            raise InvalidPriceBook(f"asset {code!r} decimals must be an integer")
        try:
            asset = Asset(code, decimals)
        except InvalidInput as error:
            raise InvalidPriceBook(f"asset {code!r}: {error}") from None
        if code in known and known[code] != asset:
            raise InvalidPriceBook(
                f"asset {code} has {known[code].decimals} decimals, not {decimals}"
            )
        known[code] = asset
    return known


def _read_book(
    mapping: Mapping[str, Any], given: Mapping[str, Asset] | None
) -> tuple[tuple[tuple[ModelPrice, tuple[str, ...]], ...], dict[str, Asset]]:
    if not isinstance(mapping, Mapping):
        raise InvalidPriceBook("a price book is a table with a 'models' table")
    _check_keys(mapping, _TOP_KEYS, "the price book")
    known = _read_assets(mapping.get("assets"), given)
    models = mapping.get("models")
    if not isinstance(models, Mapping) or not models:
        raise InvalidPriceBook("the price book needs a non-empty 'models' table")
    if len(models) > MAX_MODELS:
        raise InvalidPriceBook(f"the price book has more than {MAX_MODELS} models")
    entries: list[tuple[ModelPrice, tuple[str, ...]]] = []
    seen: dict[str, str] = {}
    for key, table in models.items():
        entry, aliases = _read_entry(key, table, known)
        for name in (key, *aliases):
            lowered = name.lower()
            if lowered in seen:
                raise InvalidPriceBook(
                    f"model name {name!r} is priced twice (also by {seen[lowered]!r}); "
                    "names are matched without regard to case"
                )
            seen[lowered] = key
        entries.append((entry, aliases))
    return tuple(entries), known


def _read_entry(
    key: object, table: object, known: Mapping[str, Asset]
) -> tuple[ModelPrice, tuple[str, ...]]:
    if not isinstance(key, str) or not is_price_key(key):
        shown = key[:MAX_MODEL_ID_CHARS] if isinstance(key, str) else key
        raise InvalidPriceBook(
            f"model {shown!r} is not a model id (1-{MAX_MODEL_ID_CHARS} letters, digits or "
            "._:/@+-) nor a prefix ending in '*'"
        )
    where = f"model {key!r}"
    if not isinstance(table, Mapping):
        raise InvalidPriceBook(f"{where} must be a table of prices")
    _check_keys(table, _ENTRY_KEYS, where)
    for required in ("asset", "input_per_mtok", "output_per_mtok"):
        if required not in table:
            raise InvalidPriceBook(f"{where} has no {required!r}")
    code = table["asset"]
    if not isinstance(code, str) or code not in known:
        raise InvalidPriceBook(
            f"{where} asset {code!r} is unknown; known: {', '.join(sorted(known))} "
            "(declare others in [assets])"
        )
    asset = known[code]
    input_pico = parse_price(table["input_per_mtok"], asset, f"{where} input_per_mtok")
    cached_pico = input_pico
    if "cached_input_per_mtok" in table:
        cached_pico = parse_price(
            table["cached_input_per_mtok"], asset, f"{where} cached_input_per_mtok"
        )
    price = ModelPrice(
        model=key,
        priced_as=key,
        asset=asset,
        input_pico=input_pico,
        output_pico=parse_price(table["output_per_mtok"], asset, f"{where} output_per_mtok"),
        cached_input_pico=cached_pico,
    )
    aliases_value = table.get("aliases", [])
    if not isinstance(aliases_value, list):
        raise InvalidPriceBook(f"{where} aliases must be a list of model ids")
    if len(aliases_value) > MAX_ALIASES:
        raise InvalidPriceBook(f"{where} has more than {MAX_ALIASES} aliases")
    if aliases_value and key.endswith("*"):
        raise InvalidPriceBook(f"{where} is a wildcard; a wildcard has no aliases")
    aliases = tuple(_check_model_id(alias, f"{where} alias {alias!r}") for alias in aliases_value)
    return price, aliases


def _to_mapping(
    entries: tuple[tuple[ModelPrice, tuple[str, ...]], ...], known: Mapping[str, Asset]
) -> dict[str, Any]:
    models: dict[str, Any] = {}
    for entry, aliases in entries:
        table: dict[str, Any] = {
            "asset": entry.asset.code,
            "input_per_mtok": entry.per_mtok("input"),
            "output_per_mtok": entry.per_mtok("output"),
            "cached_input_per_mtok": entry.per_mtok("cached_input"),
        }
        if aliases:
            table["aliases"] = list(aliases)
        models[entry.priced_as] = table
    used = {entry.asset.code for entry, _ in entries}
    declared = {
        code: known[code].decimals for code in sorted(used) if KNOWN_ASSETS.get(code) != known[code]
    }
    out: dict[str, Any] = {"models": models}
    if declared:
        out["assets"] = declared
    return out


def _digest(mapping: Mapping[str, Any]) -> str:
    text = json.dumps(mapping, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()
