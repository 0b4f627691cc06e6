"""EIP-712 value encoders: one small callable per atomic type, array and struct.

Each encoder checks its value strictly (see the package docstring for where paywire is
stricter than eth_account) and charges what it encodes to the message's byte budget.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeAlias

from paywire.crypto.keys import InvalidAddress, address_bytes, keccak256
from paywire.errors import InvalidInput

MAX_ARRAY_LENGTH = 1024
"""Items in one array (dynamic, or the k of ``T[k]``): a signed message is not a bulk upload."""

MAX_MESSAGE_BYTES = 256 * 1024
"""Encoded size of one message (32 bytes per encoded value plus string and bytes contents).

Checked while hashing, so shared sub-objects or nested arrays cannot make a small input
explode into unbounded work."""

MAX_INTEGER_TEXT_CHARS = 80
"""Longest integer given as text: 2**256 has 78 decimal digits, 0x + 64 hex digits is 66."""


class InvalidTypedData(InvalidInput):
    """An EIP-712 type definition or message that cannot be hashed."""

    code = "invalid_typed_data"


# A compiled encoder: (value, budget) -> the 32-byte encodeData of the value. `budget` is a
# one-item list holding the bytes the message may still use (see MAX_MESSAGE_BYTES).
_Encoder: TypeAlias = Callable[[object, list[int]], bytes]


class _ValueProblem(Exception):
    """Raised inside encoders; the path to the bad value is added on the way out."""

    def __init__(self, reason: str, kind: type[InvalidInput] = InvalidTypedData) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.path: list[str] = []


def _show(value: object) -> str:
    """A short rendering of a value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({type(value).__name__})"


def _too_large() -> _ValueProblem:
    return _ValueProblem(f"the message is larger than {MAX_MESSAGE_BYTES} bytes once encoded")


# --- leaf encoders ----------------------------------------------------------------------------

_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")
_ZERO_PAD = bytes(32)
_TRUE = bytes(31) + b"\x01"
_FALSE = bytes(32)
_BOOL_TEXT = {
    "true": _TRUE,
    "false": _FALSE,
    "True": _TRUE,
    "False": _FALSE,
    "1": _TRUE,
    "0": _FALSE,
}


def _integer(value: object, type_name: str) -> int:
    """An int from an int, decimal text (as x402 JSON carries amounts) or 0x-hex text."""
    if isinstance(value, str):
        if len(value) <= MAX_INTEGER_TEXT_CHARS and value.isascii():
            if value.isdigit():
                return int(value)
            if value[:1] == "-" and value[1:].isdigit():
                return int(value)
            if value[:2] == "0x" and len(value) > 2 and _HEX_DIGITS.fullmatch(value, 2):
                return int(value[2:], 16)
        raise _ValueProblem(f"{_show(value)} is not a {type_name} (decimal or 0x-hex text)")
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise _ValueProblem(f"{type_name} needs an integer, got {_show(value)}")


def _uint_encoder(bits: int) -> _Encoder:
    top = (1 << bits) - 1
    name = f"uint{bits}"

    def encode_uint(value: object, budget: list[int]) -> bytes:
        if value.__class__ is int:
            if 0 <= value <= top:
                return value.to_bytes(32, "big")
            number = value
        elif (
            value.__class__ is str
            and len(value) <= MAX_INTEGER_TEXT_CHARS
            and value.isdigit()
            and value.isascii()
        ):  # x402 JSON carries amounts and times as decimal text
            number = int(value)
        else:
            number = _integer(value, name)
        if not 0 <= number <= top:
            raise _ValueProblem(f"{number} is out of range for {name} (0 to 2**{bits}-1)")
        return number.to_bytes(32, "big")

    return encode_uint


def _int_encoder(bits: int) -> _Encoder:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    name = f"int{bits}"

    def encode_int(value: object, budget: list[int]) -> bytes:
        number = _integer(value, name)
        if not low <= number <= high:
            raise _ValueProblem(f"{number} is out of range for {name}")
        return number.to_bytes(32, "big", signed=True)

    return encode_int


def _encode_bool(value: object, budget: list[int]) -> bytes:
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    if value.__class__ is int and (value == 0 or value == 1):
        return _TRUE if value else _FALSE
    if isinstance(value, str) and value in _BOOL_TEXT:
        return _BOOL_TEXT[value]
    raise _ValueProblem(f"bool needs true or false, got {_show(value)}")


def _encode_address(value: object, budget: list[int]) -> bytes:
    if isinstance(value, str):
        try:
            return _ZERO_PAD[:12] + address_bytes(value)
        except InvalidAddress as error:
            raise _ValueProblem(error.message, InvalidAddress) from None
    if isinstance(value, bytes | bytearray) and len(value) == 20:
        return _ZERO_PAD[:12] + bytes(value)
    raise _ValueProblem(f"address needs 0x + 40 hex digits or 20 bytes, got {_show(value)}")


def _byte_string(value: object, type_name: str, budget: list[int]) -> bytes:
    """Bytes from bytes or 0x-hex text, charged to the message budget."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
    elif isinstance(value, str):
        if len(value) // 2 > budget[0]:
            raise _too_large()
        if value[:2] != "0x" or len(value) % 2 or not _HEX_DIGITS.fullmatch(value, 2):
            raise _ValueProblem(f"{type_name} needs bytes or 0x-hex text, got {_show(value)}")
        raw = bytes.fromhex(value[2:])
    else:
        raise _ValueProblem(f"{type_name} needs bytes or 0x-hex text, got {_show(value)}")
    budget[0] -= len(raw)
    if budget[0] < 0:
        raise _too_large()
    return raw


def _fixed_bytes_encoder(size: int) -> _Encoder:
    name = f"bytes{size}"
    pad = bytes(32 - size)
    text_chars = 2 + 2 * size

    def encode_fixed_bytes(value: object, budget: list[int]) -> bytes:
        if value.__class__ is str and len(value) == text_chars:
            try:  # fast path for x402's 0x-hex nonce; fromhex refuses non-hex digits
                if value[:2] == "0x":
                    raw = bytes.fromhex(value[2:])
                    if len(raw) == size:  # fromhex skips spaces: a short result is refused
                        return raw + pad
            except ValueError:
                pass
        raw = _byte_string(value, name, budget)
        if len(raw) != size:
            raise _ValueProblem(f"{name} needs exactly {size} bytes, got {len(raw)}")
        return raw + pad

    return encode_fixed_bytes


def _encode_dynamic_bytes(value: object, budget: list[int]) -> bytes:
    return keccak256(_byte_string(value, "bytes", budget))


def _encode_string(value: object, budget: list[int]) -> bytes:
    if not isinstance(value, str):
        raise _ValueProblem(f"string needs text, got {_show(value)}")
    if len(value) > budget[0]:
        raise _too_large()
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise _ValueProblem("string holds characters that are not valid UTF-8") from None
    budget[0] -= len(raw)
    if budget[0] < 0:
        raise _too_large()
    return keccak256(raw)


def _atomic_encoders() -> dict[str, _Encoder]:
    encoders: dict[str, _Encoder] = {
        "address": _encode_address,
        "bool": _encode_bool,
        "bytes": _encode_dynamic_bytes,
        "string": _encode_string,
    }
    for bits in range(8, 257, 8):
        encoders[f"uint{bits}"] = _uint_encoder(bits)
        encoders[f"int{bits}"] = _int_encoder(bits)
    for size in range(1, 33):
        encoders[f"bytes{size}"] = _fixed_bytes_encoder(size)
    return encoders


_ATOMIC = _atomic_encoders()
# Names a struct may not take: the types above, and aliases other tools accept.
_RESERVED = frozenset(_ATOMIC) | {"uint", "int", "byte", "function", "fixed", "ufixed"}


# --- arrays and structs -------------------------------------------------------------------


def _array_encoder(element: _Encoder, length: int | None, type_name: str) -> _Encoder:
    """encodeData of an array: keccak of its items' encodings (32 bytes each), concatenated."""

    def encode_array(value: object, budget: list[int]) -> bytes:
        if not isinstance(value, list | tuple):
            raise _ValueProblem(f"{type_name} needs a list, got {_show(value)}")
        count = len(value)
        if length is None:
            if count > MAX_ARRAY_LENGTH:
                raise _ValueProblem(f"{count} items is more than {MAX_ARRAY_LENGTH}")
        elif count != length:
            raise _ValueProblem(f"{type_name} needs exactly {length} items, got {count}")
        budget[0] -= 32 * count
        if budget[0] < 0:
            raise _too_large()
        parts = []
        for index, item in enumerate(value):
            try:
                parts.append(element(item, budget))
            except _ValueProblem as problem:
                problem.path.append(f"[{index}]")
                raise
        return keccak256(b"".join(parts))

    return encode_array


def _struct_hasher(
    name: str, type_hash: bytes, fields: tuple[tuple[str, _Encoder], ...]
) -> _Encoder:
    """hashStruct: keccak(typeHash || encodeData of each field, in definition order)."""
    count = len(fields)
    cost = 32 * (count + 1)

    def hash_struct(value: object, budget: list[int]) -> bytes:
        if value.__class__ is not dict and not isinstance(value, Mapping):
            raise _ValueProblem(f"{name} needs an object with its fields, got {_show(value)}")
        budget[0] -= cost  # charged per struct: shared sub-objects cannot multiply work for free
        if budget[0] < 0:
            raise _too_large()
        if len(value) != count:
            raise _ValueProblem(_field_mismatch(name, fields, value))
        parts = [type_hash]
        key = ""
        try:
            for key, encode in fields:
                parts.append(encode(value[key], budget))
        except KeyError:
            raise _ValueProblem(_field_mismatch(name, fields, value)) from None
        except _ValueProblem as problem:
            problem.path.append(key)
            raise
        return keccak256(b"".join(parts))

    return hash_struct


def _field_mismatch(
    name: str, fields: tuple[tuple[str, _Encoder], ...], value: Mapping[object, object]
) -> str:
    expected = [key for key, _ in fields]
    missing = [key for key in expected if key not in value]
    extra = sorted(repr(key) for key in value if key not in expected)
    said = []
    if missing:
        said.append("missing " + ", ".join(missing))
    if extra:
        said.append("unexpected " + ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else ""))
    return f"{name} has fields {', '.join(expected)}: " + "; ".join(said)
