"""The ledger's limits, and the checks of what requests carry: ids, metadata, codes."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TypeAlias

from paywire.ledger.errors import InvalidRequest

JsonValue: TypeAlias = bool | int | str | list["JsonValue"] | dict[str, "JsonValue"] | None
Metadata: TypeAlias = Mapping[str, JsonValue]

MAX_ID_CHARS = 128
"""Ids are idempotency keys: long enough for a UUID, a ULID or a hash with a prefix."""

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,127}")
"""Printable, shell- and URL-safe; '~' is kept back for ids the ledger makes itself."""

MAX_METADATA_BYTES = 4096
"""Metadata is for tags (task, request, model, tokens), not documents."""

MAX_METADATA_DEPTH = 4
"""Nesting deeper than this is a mistake or an attack on the parser."""

MAX_METADATA_KEY_CHARS = 64
"""Keys are names, not data."""

MAX_METADATA_INT = 2**63 - 1
"""Integers in metadata fit a signed 64-bit column in every store and language."""

MAX_AUTHORIZATION_BYTES = 16384
"""A signed payment payload with a mandate chain of depth 3 fits with room to spare."""

MAX_OWNER_CHARS = 128
"""An owner is an address or a short name."""

MAX_CODE = 65535
"""Transfer codes are u16, as in TigerBeetle."""

MAX_TIMEOUT_S = 366 * 24 * 3600
"""A hold longer than a year is not a hold; escrow that long should be a posted transfer."""


def check_id(value: object, what: str) -> str:
    """Validate a user-chosen id (account or transfer) and return it."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} must be text, not {type(value).__name__}")
    if not ID_PATTERN.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise InvalidRequest(
            f"{what} {shown!r} must be 1-{MAX_ID_CHARS} characters of letters, digits "
            "and . _ : / @ + = -, starting with a letter or digit"
        )
    return value


def check_metadata(value: object) -> dict[str, JsonValue]:
    """Validate metadata: JSON without floats, bounded in size and depth."""
    return canonical_metadata(value)[0]


def canonical_metadata(value: object) -> tuple[dict[str, JsonValue], str]:
    """Validated metadata and its canonical JSON text (sorted keys, no spaces, ASCII), which
    the log entry and the idempotency fingerprint reuse."""
    if value is None:
        return {}, ""
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"metadata must be a mapping, not {type(value).__name__}")
    checked = _check_json(value, depth=1)
    assert isinstance(checked, dict)
    if not checked:
        return {}, ""
    text = json.dumps(checked, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    if len(text) > MAX_METADATA_BYTES:
        raise InvalidRequest(f"metadata is {len(text)} bytes; the limit is {MAX_METADATA_BYTES}")
    return checked, text


def _check_json(value: object, depth: int) -> JsonValue:
    if depth > MAX_METADATA_DEPTH:
        raise InvalidRequest(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_METADATA_INT:
            raise InvalidRequest("metadata integers must fit in 64 bits; write big numbers as text")
        return value
    if isinstance(value, float):
        raise InvalidRequest("metadata must not hold floats (money is integers); use text")
    if isinstance(value, Mapping):
        out: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not 0 < len(key) <= MAX_METADATA_KEY_CHARS:
                raise InvalidRequest(
                    f"metadata keys must be text of 1-{MAX_METADATA_KEY_CHARS} characters"
                )
            out[key] = _check_json(item, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_check_json(item, depth + 1) for item in value]
    raise InvalidRequest(f"metadata cannot hold a {type(value).__name__}")


def _check_code(code: object) -> int:
    if not isinstance(code, int) or isinstance(code, bool) or not 1 <= code <= MAX_CODE:
        raise InvalidRequest(f"code must be an integer from 1 to {MAX_CODE}, not {code!r}")
    return int(code)
