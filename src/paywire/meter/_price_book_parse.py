"""Reading a price book: its text decoded, its tables validated into `ModelPrice` entries,
and its canonical mapping and digest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from paywire.errors import InvalidInput
from paywire.meter._errors import InvalidPriceBook
from paywire.meter._model_price import (
    MAX_MODEL_ID_CHARS,
    ModelPrice,
    _check_model_id,
    is_price_key,
    parse_price,
)
from paywire.money import KNOWN_ASSETS, Asset

MAX_PRICE_BOOK_BYTES = 1 << 20
"""A price book file of more than 1 MiB is not a price book."""

MAX_MODELS = 4096
"""Entries (models and wildcards) in one price book."""

MAX_ALIASES = 32
"""Aliases of one entry."""


_ENTRY_KEYS = ("asset", "input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "aliases")
_TOP_KEYS = ("models", "assets")


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
