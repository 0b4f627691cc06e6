"""The carried forms of mandates: canonical JSON and base64url, parsed strictly.

JSON keys are camelCase, as in the EIP-712 types; amounts are decimal strings (JSON numbers
lose precision past 2**53 in JavaScript), times and window lengths are integers, bytes are
``0x`` + lower-case hex. The canonical text has no spaces, keys in a fixed order and lists
in canonical order; parsing refuses what is not exactly a document of the known shape:
unknown or duplicate keys, wrong types, floats, non-canonical list order, and any input
past its size cap, before it is parsed.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Self

from paywire import _json
from paywire.crypto.keys import address_bytes
from paywire.mandate._errors import (
    InvalidMandate,
    MandateTooLarge,
    MandateUnknownField,
    MandateVersionUnsupported,
)
from paywire.mandate._fields import (
    check_address,
    check_network_pattern,
    parse_origin,
    show,
)
from paywire.mandate._model import (
    MANDATE_VERSION,
    MAX_ASSET_LIMITS,
    MAX_NETWORKS,
    MAX_ORIGINS,
    MAX_PAYEES,
    MAX_WINDOWS,
    AssetLimit,
    Mandate,
    Window,
)

MAX_MANDATE_JSON_BYTES = 32 * 1024
"""One signed mandate as JSON. The largest valid one (every list full, the purpose in
4-byte characters) is about 20 KiB; a cap keeps hostile input from costing more."""

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,38}")  # MAX_ATOMIC has 39 digits
_HEX = re.compile(r"0x[0-9a-fA-F]*")
_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*={0,2}")

MANDATE_KEYS = (
    "v",
    "issuer",
    "agent",
    "parent",
    "limits",
    "payees",
    "origins",
    "networks",
    "validAfter",
    "validBefore",
    "purpose",
    "taskId",
    "nonce",
)
_MOST_ITEMS = max(MAX_ASSET_LIMITS, MAX_WINDOWS, MAX_PAYEES, MAX_ORIGINS, MAX_NETWORKS)
_LIMIT_KEYS = ("network", "asset", "total", "perPayment", "windows")
_WINDOW_KEYS = ("seconds", "limit")


# --- text, JSON and base64 --------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Two readers could take different values: the signed one and another.
            raise InvalidMandate(f"the key {show(key)} appears twice in one object")
        result[key] = value
    return result


def _no_float(text: str) -> float:
    raise InvalidMandate(
        f"{show(text)} is a fractional number: amounts are decimal strings of atomic units, "
        "times and windows whole seconds"
    )


def _no_constant(text: str) -> float:
    raise InvalidMandate(f"{text} is not valid in a mandate")


def load_json(data: str | bytes, max_bytes: int, what: str) -> object:
    """Parse JSON text strictly (size first, then UTF-8, duplicates, floats, nesting)."""
    if isinstance(data, str):
        if len(data) > max_bytes:  # cheap first test: a character is at least one byte
            raise MandateTooLarge(f"{what} is {len(data)} characters, more than {max_bytes}")
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidMandate(f"{what} holds characters that are not valid UTF-8") from None
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        raise InvalidMandate(f"{what} must be JSON text, got {type(data).__name__}")
    if len(raw) > max_bytes:
        raise MandateTooLarge(f"{what} is {len(raw)} bytes, more than {max_bytes}")
    try:
        text = raw.decode("utf-8")
        return _json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_constant,
        )
    except UnicodeDecodeError:
        raise InvalidMandate(f"{what} is not UTF-8 text") from None
    except RecursionError:
        raise InvalidMandate(f"{what} nests too deeply to be a mandate") from None
    except ValueError as error:  # JSONDecodeError, and int() past its digit limit
        raise InvalidMandate(f"{what} is not valid JSON ({error})") from None


def dump_json(value: object) -> str:
    """Canonical JSON text: no spaces, keys in the order built, non-ASCII kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode_base64(text: str) -> str:
    """base64url of the UTF-8 text, without padding (safe in URLs, headers, shells)."""
    return base64.urlsafe_b64encode(text.encode("utf-8")).rstrip(b"=").decode("ascii")


def decode_base64(data: str | bytes, max_json_bytes: int, what: str) -> bytes:
    """The bytes of base64url text (padding optional, surrounding whitespace ignored)."""
    if isinstance(data, str):
        if not data.isascii():
            raise InvalidMandate(f"{what} must be base64url text (A-Z, a-z, 0-9, - and _)")
        data = data.encode("ascii")
    if not isinstance(data, bytes | bytearray):
        raise InvalidMandate(f"{what} must be base64url text, got {type(data).__name__}")
    most = (max_json_bytes + 2) // 3 * 4 + 64  # room for padding and a stray line break
    if len(data) > most:
        raise MandateTooLarge(f"{what} is {len(data)} characters, more than {most}")
    data = bytes(data).strip()
    if not _BASE64URL.fullmatch(data) or len(data) % 4 == 1:
        raise InvalidMandate(
            f"{what} is not base64url text (A-Z, a-z, 0-9, - and _, as paywire writes it)"
        )
    try:
        return base64.urlsafe_b64decode(data.rstrip(b"=") + b"=" * (-len(data.rstrip(b"=")) % 4))
    except (binascii.Error, ValueError):
        raise InvalidMandate(f"{what} is not valid base64url") from None


# --- field decoders ---------------------------------------------------------------------------


def expect_object(value: object, keys: Sequence[str], where: str) -> Mapping[str, object]:
    """A JSON object with exactly `keys`: unknown keys (unsigned data riding along) and
    missing ones are refused, naming them."""
    if not isinstance(value, dict):
        raise InvalidMandate(f"must be a JSON object, got {show(value)}", where)
    unknown = sorted(key for key in value if key not in keys)
    if unknown:
        raise MandateUnknownField(
            f"unknown field(s) {', '.join(map(show, unknown[:5]))}; the known fields are "
            + ", ".join(keys),
            where,
        )
    missing = [key for key in keys if key not in value]
    if missing:
        raise InvalidMandate(f"missing field(s) {', '.join(missing)}", where)
    return value


def json_int(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidMandate(f"must be a JSON integer, got {show(value)}", where)
    return value


def json_amount(value: object, where: str) -> int:
    """Atomic units as a decimal string, such as ``"1000000"``."""
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        hint = " (JSON numbers lose precision)" if isinstance(value, int) else ""
        raise InvalidMandate(
            f'must be atomic units as a decimal string such as "1000000"{hint}; got {show(value)}',
            where,
        )
    return int(value)


def json_text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidMandate(f"must be a JSON string, got {show(value)}", where)
    return value


def json_hex(value: object, size: int, where: str) -> bytes:
    """Exactly `size` bytes as ``0x`` + hex digits."""
    if not isinstance(value, str) or len(value) != 2 + 2 * size or not _HEX.fullmatch(value):
        raise InvalidMandate(f"must be 0x and {size} bytes of hex, got {show(value)}", where)
    return bytes.fromhex(value[2:])


def json_list(
    value: object, where: str, item: Callable[[object, str], Any], key: Callable[[Any], Any]
) -> list[Any]:
    """A JSON list, each item decoded, in canonical (sorted, unique) order."""
    if not isinstance(value, list):
        raise InvalidMandate(f"must be a JSON list, got {show(value)}", where)
    if len(value) > _MOST_ITEMS:  # a cheap first bound; the model checks each list's own
        raise InvalidMandate(f"has {len(value)} items, too many", where)
    items = [item(element, f"{where}[{index}]") for index, element in enumerate(value)]
    keys = [key(element) for element in items]
    if any(first >= second for first, second in itertools.pairwise(keys)):
        raise InvalidMandate(
            "must be in canonical order: sorted, each item once (as paywire writes it; the "
            "signature covers this order)",
            where,
        )
    return items


# --- mandates ---------------------------------------------------------------------------------


def mandate_to_dict(mandate: Mandate) -> dict[str, object]:
    """The JSON object of a mandate (without a signature)."""
    return {
        "v": mandate.version,
        "issuer": mandate.issuer,
        "agent": mandate.agent,
        "parent": "0x" + mandate.parent.hex(),
        "limits": [
            {
                "network": limit.network,
                "asset": limit.asset,
                "total": str(limit.total_atomic),
                "perPayment": str(limit.per_payment_atomic),
                "windows": [
                    {"seconds": window.window_s, "limit": str(window.limit_atomic)}
                    for window in limit.windows
                ],
            }
            for limit in mandate.limits
        ],
        "payees": list(mandate.payees),
        "origins": list(mandate.origins),
        "networks": list(mandate.networks),
        "validAfter": mandate.valid_after,
        "validBefore": mandate.valid_before,
        "purpose": mandate.purpose,
        "taskId": mandate.task_id,
        "nonce": "0x" + mandate.nonce.hex(),
    }


def check_version(value: Mapping[str, object], where: str = "") -> None:
    version = value.get("v")
    if version != MANDATE_VERSION or isinstance(version, bool):
        field = f"{where}.v" if where else "v"
        raise MandateVersionUnsupported(
            f"format version {show(version)} is not supported; this paywire reads version "
            f"{MANDATE_VERSION} (upgrade paywire for newer documents)",
            field,
        )


def mandate_from_dict(value: Mapping[str, object]) -> Mandate:
    """A mandate from the fields of its JSON object (checked for exact keys by the caller)."""
    check_version(value)
    limits = json_list(
        value["limits"], "limits", _limit_from_json, lambda limit: (limit.asset, limit.network)
    )
    payees = json_list(value["payees"], "payees", check_address, address_bytes)
    origins = json_list(value["origins"], "origins", _canonical_origin, lambda text: text)
    networks = json_list(value["networks"], "networks", check_network_pattern, lambda text: text)
    return Mandate(
        issuer=json_text(value["issuer"], "issuer"),
        agent=json_text(value["agent"], "agent"),
        parent=json_hex(value["parent"], 32, "parent"),
        limits=tuple(limits),
        payees=tuple(payees),
        origins=tuple(origins),
        networks=tuple(networks),
        valid_after=json_int(value["validAfter"], "validAfter"),
        valid_before=json_int(value["validBefore"], "validBefore"),
        purpose=json_text(value["purpose"], "purpose"),
        task_id=json_text(value["taskId"], "taskId"),
        nonce=json_hex(value["nonce"], 32, "nonce"),
    )


def _canonical_origin(value: object, where: str) -> str:
    origin = parse_origin(value, where)
    if origin != value:
        raise InvalidMandate(f"write {show(value)} in its canonical form {origin}", where)
    return origin


def _limit_from_json(value: object, where: str) -> AssetLimit:
    fields = expect_object(value, _LIMIT_KEYS, where)
    windows = json_list(
        fields["windows"], f"{where}.windows", _window_from_json, lambda window: window.window_s
    )
    asset = json_text(fields["asset"], f"{where}.asset")
    try:
        limit = AssetLimit(
            network=json_text(fields["network"], f"{where}.network"),
            asset=asset,
            total_atomic=json_amount(fields["total"], f"{where}.total"),
            per_payment_atomic=json_amount(fields["perPayment"], f"{where}.perPayment"),
            windows=tuple(windows),
        )
    except InvalidMandate as error:
        if error.field.startswith(where):
            raise
        raise error.within(where) from None
    if limit.asset != asset:  # signed as text: another spelling would be another signature
        raise InvalidMandate(
            f"write the token address {asset} checksummed, as {limit.asset}", f"{where}.asset"
        )
    return limit


def _window_from_json(value: object, where: str) -> Window:
    fields = expect_object(value, _WINDOW_KEYS, where)
    try:
        return Window(
            window_s=json_int(fields["seconds"], f"{where}.seconds"),
            limit_atomic=json_amount(fields["limit"], f"{where}.limit"),
        )
    except InvalidMandate as error:
        if error.field.startswith(where):
            raise
        raise error.within(where) from None


class JsonForms:
    """The carried forms of a signed document, for a class that has `to_dict` and
    `from_dict`: canonical JSON text and one base64url token, parsed with the class's
    size cap (`JSON_MAX_BYTES`) and named in errors as `JSON_WHAT`."""

    __slots__ = ()
    JSON_MAX_BYTES: ClassVar[int]
    JSON_WHAT: ClassVar[str]

    def to_dict(self) -> dict[str, object]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, value: object) -> Self:
        raise NotImplementedError

    def to_json(self) -> str:
        """Canonical JSON text: compact, keys in a fixed order, ``{"v":1,...}``."""
        return dump_json(self.to_dict())

    @classmethod
    def from_json(cls, data: str | bytes) -> Self:
        """Parse JSON text (at most `JSON_MAX_BYTES`) strictly; see `from_dict`."""
        return cls.from_dict(load_json(data, cls.JSON_MAX_BYTES, cls.JSON_WHAT))

    def to_base64(self) -> str:
        """The canonical JSON as base64url without padding: one token to carry around."""
        return encode_base64(self.to_json())

    @classmethod
    def from_base64(cls, data: str | bytes) -> Self:
        """Parse the base64url form (padding optional); see `from_json`."""
        return cls.from_json(decode_base64(data, cls.JSON_MAX_BYTES, cls.JSON_WHAT))
