"""EIP-712 typed structured data: compile a type once, hash each message fast.

A paid request carries an EIP-712 signature (EIP-3009 ``TransferWithAuthorization`` on a
chain, a paywire transfer authorization on the ledger network); the facilitator hashes the
message and recovers the signer. `StructType` parses and checks a type definition once and
compiles it into one small encoder callable per field, so hashing a message does no
type-string parsing; `TypedMessage` binds it to an `Eip712Domain` whose separator is
precomputed. Digests are byte-identical to ``eth_account.messages.encode_typed_data``.

Where eth_account is lenient, paywire is strict, so that what is hashed is what the signer
saw and the same JSON hashes the same in every wallet:

- a missing field is an error (eth_account hashes a missing struct or string as zeros);
- an extra field is an error (eth_account ignores it: unsigned data riding along);
- ``bytesN`` takes exactly N bytes (eth_account right-pads shorter values);
- ``T[k]`` takes exactly k items (eth_account does not check);
- ``bytes``/``bytesN`` text must be ``0x`` hex (eth_account hashes other text as UTF-8);
- ``bool`` takes only true/false (also 0/1 and "true"/"false"; eth_account takes any truthy);
- integer text is plain decimal or ``0x`` hex (eth_account takes whatever ``int()`` does);
- ``EIP712Domain`` in a JSON ``types`` must list its fields in the canonical order and
  types (eth_account silently reorders them, so wallets that follow the list disagree);
- recursive types and types not used by the primary type are refused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

from paywire.crypto.keys import (
    InvalidAddress,
    PrivateKey,
    address_bytes,
    keccak256,
    parse_address,
    parse_signature,
    recover_address,
    verify_signer,
)
from paywire.errors import InvalidInput

MAX_STRUCT_TYPES = 64
"""Struct types in one definition; real protocols use a handful (Mail has 2, EIP-3009 1)."""

MAX_FIELDS_PER_STRUCT = 64
"""Fields in one struct: more is a generated or hostile definition, not a protocol."""

MAX_TOTAL_FIELDS = 256
"""Fields over all struct types of one definition: bounds the work of compiling it."""

MAX_NAME_CHARS = 64
"""Longest type or field name; keeps encodeType strings and error messages short."""

MAX_ARRAY_DIMENSIONS = 4
"""Nesting of arrays in one field type (``T[][]`` is 2); deeper is not a real message."""

MAX_ARRAY_LENGTH = 1024
"""Items in one array (dynamic, or the k of ``T[k]``): a signed message is not a bulk upload."""

MAX_MESSAGE_BYTES = 256 * 1024
"""Encoded size of one message (32 bytes per encoded value plus string and bytes contents).

Checked while hashing, so shared sub-objects or nested arrays cannot make a small input
explode into unbounded work."""

MAX_INTEGER_TEXT_CHARS = 80
"""Longest integer given as text: 2**256 has 78 decimal digits, 0x + 64 hex digits is 66."""

COMPILED_TYPE_CACHE_SIZE = 256
"""Type definitions `digest_typed_data` keeps compiled; a service sees a few shapes."""

DOMAIN_CACHE_SIZE = 256
"""Domains (token contracts, chains) `digest_typed_data` keeps separators of."""

EIP712_DOMAIN = "EIP712Domain"
"""The name of the domain struct type, defined by EIP-712 itself."""

DOMAIN_FIELDS: tuple[tuple[str, str], ...] = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
)
"""EIP712Domain's possible fields, in the order EIP-712 gives them (and eth_account uses)."""


class InvalidTypedData(InvalidInput):
    """An EIP-712 type definition or message that cannot be hashed."""

    code = "invalid_typed_data"


TypesJson: TypeAlias = Mapping[str, Sequence[Mapping[str, str]]]
"""Type definitions in the JSON form: ``{"Mail": [{"name": "from", "type": "Person"}]}``."""

# A definition, normalised and hashable: ((struct name, ((field name, field type), ...)), ...)
_Definition: TypeAlias = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]

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


# --- definitions ----------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_FIELD_TYPE = re.compile(r"(?P<base>[A-Za-z_$][A-Za-z0-9_$]*)(?P<dims>(?:\[(?:[1-9][0-9]*)?\])*)")
_DIMENSION = re.compile(r"\[([0-9]*)\]")


def _normalise(types: object) -> _Definition:
    """Check the JSON shape of a types mapping; return it as a hashable tuple."""
    if not isinstance(types, Mapping):
        raise InvalidTypedData(f"types must be an object of struct definitions, got {_show(types)}")
    if len(types) > MAX_STRUCT_TYPES:
        raise InvalidTypedData(f"{len(types)} struct types is more than {MAX_STRUCT_TYPES}")
    definition = []
    total = 0
    for name, fields in types.items():
        if (
            not isinstance(name, str)
            or not _IDENTIFIER.fullmatch(name)
            or len(name) > MAX_NAME_CHARS
        ):
            raise InvalidTypedData(
                f"struct name {_show(name)} must be an identifier of at most {MAX_NAME_CHARS} chars"
            )
        if isinstance(fields, str | bytes) or not isinstance(fields, Sequence):
            raise InvalidTypedData(f"struct {name} must be a list of fields, got {_show(fields)}")
        if len(fields) > MAX_FIELDS_PER_STRUCT:
            raise InvalidTypedData(
                f"struct {name} has {len(fields)} fields, more than {MAX_FIELDS_PER_STRUCT}"
            )
        total += len(fields)
        if total > MAX_TOTAL_FIELDS:
            raise InvalidTypedData(f"the types have more than {MAX_TOTAL_FIELDS} fields in all")
        members = []
        for member in fields:
            if (
                not isinstance(member, Mapping)
                or set(member) != {"name", "type"}
                or not isinstance(member["name"], str)
                or not isinstance(member["type"], str)
            ):
                raise InvalidTypedData(
                    f"a field of {name} must be {{'name': ..., 'type': ...}} with text values, "
                    f"got {_show(member)}"
                )
            members.append((member["name"], member["type"]))
        definition.append((name, tuple(members)))
    return tuple(definition)


@dataclass(frozen=True, slots=True)
class _FieldType:
    base: str
    dimensions: tuple[int | None, ...]  # innermost first: T[2][] is (2, None)


def _parse_field_type(struct: str, field_name: str, text: str) -> _FieldType:
    match = _FIELD_TYPE.fullmatch(text)
    if match is None or len(text) > MAX_NAME_CHARS + 8 * MAX_ARRAY_DIMENSIONS:
        raise InvalidTypedData(
            f"{struct}.{field_name}: type {_show(text)} is not a type name, optionally followed "
            "by [] or [k] (k >= 1)"
        )
    dimensions = tuple(int(size) if size else None for size in _DIMENSION.findall(match["dims"]))
    if len(dimensions) > MAX_ARRAY_DIMENSIONS:
        raise InvalidTypedData(
            f"{struct}.{field_name}: {text} nests arrays deeper than {MAX_ARRAY_DIMENSIONS}"
        )
    for size in dimensions:
        if size is not None and size > MAX_ARRAY_LENGTH:
            raise InvalidTypedData(
                f"{struct}.{field_name}: {text} has more than {MAX_ARRAY_LENGTH} items"
            )
    return _FieldType(match["base"], dimensions)


@dataclass(frozen=True, slots=True)
class _Compiled:
    encode_type: str
    type_hash: bytes
    hasher: _Encoder


def _compile(primary_type: str, definition: _Definition) -> _Compiled:
    """Check a normalised definition and compile the encoder of `primary_type`."""
    structs = dict(definition)
    if len(structs) != len(definition):
        raise InvalidTypedData("a struct type is defined twice")
    if primary_type not in structs:
        raise InvalidTypedData(
            f"primary type {_show(primary_type)} is not among the defined types "
            f"({', '.join(sorted(structs)) or 'none'})"
        )
    parsed: dict[str, tuple[tuple[str, _FieldType], ...]] = {}
    for name, members in definition:
        if name in _RESERVED:
            raise InvalidTypedData(f"struct name {name} is reserved for an atomic type")
        seen: set[str] = set()
        fields = []
        for field_name, type_text in members:
            if not _IDENTIFIER.fullmatch(field_name) or len(field_name) > MAX_NAME_CHARS:
                raise InvalidTypedData(
                    f"{name}: field name {_show(field_name)} must be an identifier of at most "
                    f"{MAX_NAME_CHARS} chars"
                )
            if field_name in seen:
                raise InvalidTypedData(f"{name}: field {field_name} is defined twice")
            seen.add(field_name)
            field_type = _parse_field_type(name, field_name, type_text)
            if field_type.base not in _ATOMIC and field_type.base not in structs:
                hint = {"uint": "uint256", "int": "int256", "byte": "bytes1"}.get(field_type.base)
                raise InvalidTypedData(
                    f"{name}.{field_name}: type {field_type.base} is not defined"
                    + (f" (write {hint})" if hint else "")
                )
            fields.append((field_name, field_type))
        parsed[name] = tuple(fields)

    # Dependencies, refusing cycles (EIP-712 allows recursion in theory; no protocol needs it
    # and it would make the size of a message's encoding depend on its values alone).
    dependencies: dict[str, frozenset[str]] = {}

    def visit(name: str, trail: tuple[str, ...]) -> frozenset[str]:
        if name in trail:
            cycle = " -> ".join((*trail[trail.index(name) :], name))
            raise InvalidTypedData(f"recursive types are not supported: {cycle}")
        if name in dependencies:
            return dependencies[name]
        found: set[str] = set()
        for _, field_type in parsed[name]:
            if field_type.base in structs:
                found.add(field_type.base)
                found |= visit(field_type.base, (*trail, name))
        dependencies[name] = frozenset(found)
        return dependencies[name]

    used = visit(primary_type, ()) | {primary_type}
    unused = sorted(set(structs) - used)
    if unused:
        raise InvalidTypedData(
            f"types {', '.join(unused)} are defined but not used by {primary_type} "
            "(wallets refuse such definitions)"
        )

    def own(name: str) -> str:
        members = ",".join(f"{type_text} {field_name}" for field_name, type_text in structs[name])
        return f"{name}({members})"

    compiled: dict[str, _Compiled] = {}

    def build(name: str) -> _Compiled:
        if name in compiled:
            return compiled[name]
        encode_type = own(name) + "".join(own(dep) for dep in sorted(dependencies[name]))
        type_hash = keccak256(encode_type.encode("utf-8"))
        encoders = []
        for field_name, field_type in parsed[name]:
            if field_type.base in structs:
                encoder = build(field_type.base).hasher
            else:
                encoder = _ATOMIC[field_type.base]
            type_text = field_type.base
            for size in field_type.dimensions:
                type_text += f"[{size or ''}]"
                encoder = _array_encoder(encoder, size, type_text)
            encoders.append((field_name, encoder))
        result = _Compiled(encode_type, type_hash, _struct_hasher(name, type_hash, tuple(encoders)))
        compiled[name] = result
        return result

    return build(primary_type)


def _run(compiled: _Compiled, primary_type: str, message: object) -> bytes:
    """Hash `message` with a compiled struct; turn a value problem into a typed error."""
    try:
        return compiled.hasher(message, [MAX_MESSAGE_BYTES])
    except _ValueProblem as problem:
        where = primary_type + "".join(
            part if part.startswith("[") else f".{part}" for part in reversed(problem.path)
        )
        raise problem.kind(f"{where}: {problem.reason}") from None


class StructType:
    """An EIP-712 struct type, checked and compiled once; `hash_struct` hashes messages.

    `types` is in the JSON form wallets and eth_account use::

        StructType("Mail", {"Mail": [{"name": "from", "type": "Person"}, ...], "Person": [...]})

    Every type in `types` must be used by `primary_type` (an ``EIP712Domain`` entry is
    ignored: the domain is `Eip712Domain`'s business). Raises `InvalidTypedData` for unknown
    types, recursive types, bad names, and definitions past the MAX_* limits.
    """

    __slots__ = ("_compiled", "_definition", "encode_type", "primary_type", "type_hash")

    primary_type: str
    encode_type: str
    """encodeType of the primary type, e.g. ``Mail(Person from,...)Person(string name,...)``."""
    type_hash: bytes
    """keccak256 of `encode_type`."""
    _definition: _Definition
    _compiled: _Compiled

    def __init__(self, primary_type: str, types: TypesJson) -> None:
        definition = _normalise(types)
        definition = tuple(item for item in definition if item[0] != EIP712_DOMAIN)
        self._init(primary_type, definition)

    @classmethod
    def _from_definition(cls, primary_type: str, definition: _Definition) -> StructType:
        struct = cls.__new__(cls)
        struct._init(primary_type, definition)
        return struct

    def _init(self, primary_type: str, definition: _Definition) -> None:
        if not isinstance(primary_type, str):
            raise InvalidTypedData(f"the primary type is a name, got {_show(primary_type)}")
        compiled = _compile(primary_type, definition)
        set_attribute = object.__setattr__
        set_attribute(self, "primary_type", primary_type)
        set_attribute(self, "_definition", definition)
        set_attribute(self, "_compiled", compiled)
        set_attribute(self, "encode_type", compiled.encode_type)
        set_attribute(self, "type_hash", compiled.type_hash)

    def hash_struct(self, message: Mapping[str, object]) -> bytes:
        """hashStruct(message): 32 bytes. Raises `InvalidInput` naming the bad field."""
        return _run(self._compiled, self.primary_type, message)

    def types_json(self) -> dict[str, list[dict[str, str]]]:
        """The definition in the JSON form (without ``EIP712Domain``)."""
        return {
            name: [{"name": field_name, "type": type_text} for field_name, type_text in members]
            for name, members in self._definition
        }

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a StructType is immutable (cannot set {name})")

    def __repr__(self) -> str:
        return f"StructType({self.encode_type!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StructType):
            return NotImplemented
        return self.primary_type == other.primary_type and self._definition == other._definition

    def __hash__(self) -> int:
        return hash((self.primary_type, self._definition))


# --- the domain -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=len(DOMAIN_FIELDS) ** 2)
def _domain_struct(names: tuple[str, ...]) -> _Compiled:
    members = tuple(item for item in DOMAIN_FIELDS if item[0] in names)
    return _compile(EIP712_DOMAIN, ((EIP712_DOMAIN, members),))


@dataclass(frozen=True, slots=True)
class Eip712Domain:
    """An EIP-712 domain: who the signature is for. Only the fields given enter the
    ``EIP712Domain`` type, in EIP-712's order; `separator` is computed once.

    `verifying_contract` is normalised to its checksummed form (a mixed-case address with a
    wrong checksum is refused).
    """

    name: str | None = None
    version: str | None = None
    chain_id: int | None = None
    verifying_contract: str | None = None
    salt: bytes | None = None
    separator: bytes = field(init=False, repr=False, compare=False)
    """domainSeparator = hashStruct(EIP712Domain), 32 bytes."""

    _JSON_NAMES: ClassVar[dict[str, str]] = {
        "name": "name",
        "version": "version",
        "chain_id": "chainId",
        "verifying_contract": "verifyingContract",
        "salt": "salt",
    }

    def __post_init__(self) -> None:
        for attribute in ("name", "version"):
            value = getattr(self, attribute)
            if value is not None and not isinstance(value, str):
                raise InvalidTypedData(f"domain {attribute} must be text, got {_show(value)}")
        chain_id = self.chain_id
        if chain_id is not None and (
            not isinstance(chain_id, int)
            or isinstance(chain_id, bool)
            or not 0 <= chain_id < 2**256
        ):
            raise InvalidTypedData(f"domain chain_id must be a uint256, got {_show(chain_id)}")
        if self.verifying_contract is not None:
            object.__setattr__(self, "verifying_contract", parse_address(self.verifying_contract))
        if self.salt is not None and (not isinstance(self.salt, bytes) or len(self.salt) != 32):
            raise InvalidTypedData(f"domain salt must be 32 bytes, got {_show(self.salt)}")
        values = self.to_json()
        object.__setattr__(
            self, "separator", _run(_domain_struct(tuple(values)), EIP712_DOMAIN, values)
        )

    @classmethod
    def from_json(cls, domain: Mapping[str, object]) -> Eip712Domain:
        """A domain from its JSON form (``chainId``, ``verifyingContract``...).

        ``chainId`` may be an int or decimal/0x-hex text; ``salt`` bytes or 0x-hex text.
        """
        if not isinstance(domain, Mapping):
            raise InvalidTypedData(f"the domain must be an object, got {_show(domain)}")
        known = cls._JSON_NAMES.values()
        unknown = sorted(repr(key) for key in domain if key not in known)
        if unknown:
            raise InvalidTypedData(
                f"unknown domain fields {', '.join(unknown[:5])}; EIP712Domain has "
                + ", ".join(name for name, _ in DOMAIN_FIELDS)
            )
        try:
            chain_id = domain.get("chainId")
            salt = domain.get("salt")
            contract = domain.get("verifyingContract")
            if isinstance(contract, bytes | bytearray):
                contract = "0x" + bytes(contract).hex()
            budget = [MAX_MESSAGE_BYTES]
            return cls(
                name=domain.get("name"),  # type: ignore[arg-type]
                version=domain.get("version"),  # type: ignore[arg-type]
                chain_id=None if chain_id is None else _integer(chain_id, "uint256"),
                verifying_contract=contract,  # type: ignore[arg-type]
                salt=None if salt is None else _byte_string(salt, "bytes32", budget),
            )
        except _ValueProblem as problem:
            raise problem.kind(f"domain: {problem.reason}") from None

    def to_json(self) -> dict[str, object]:
        """The fields that are set, under their JSON names (salt as 0x-hex)."""
        result: dict[str, object] = {}
        for attribute, json_name in self._JSON_NAMES.items():
            value = getattr(self, attribute)
            if value is not None:
                result[json_name] = "0x" + value.hex() if isinstance(value, bytes) else value
        return result

    def types_json(self) -> list[dict[str, str]]:
        """The ``EIP712Domain`` type of this domain in the JSON form."""
        present = self.to_json()
        return [{"name": name, "type": kind} for name, kind in DOMAIN_FIELDS if name in present]


# --- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TypedMessage:
    """A struct type in a domain: what a signer signs, ready to digest, sign and recover."""

    domain: Eip712Domain
    struct: StructType
    _prefix: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.domain, Eip712Domain) or not isinstance(self.struct, StructType):
            raise InvalidTypedData("a TypedMessage needs an Eip712Domain and a StructType")
        object.__setattr__(self, "_prefix", b"\x19\x01" + self.domain.separator)

    def digest(self, message: Mapping[str, object]) -> bytes:
        """keccak256(0x1901 || domainSeparator || hashStruct(message)): what is signed."""
        return keccak256(
            self._prefix + _run(self.struct._compiled, self.struct.primary_type, message)
        )

    def sign(self, message: Mapping[str, object], key: PrivateKey) -> bytes:
        """The 65-byte signature of `key` over `message` (v in {27, 28}, low s)."""
        return key.sign_digest(self.digest(message))

    def recover(self, message: Mapping[str, object], signature: bytes | str) -> str:
        """The checksummed address that signed `message`; `signature` is 65 bytes or 0x-hex.

        Raises `InvalidSignature` (malformed, malleable) or `InvalidInput` (bad message).
        """
        if isinstance(signature, str):
            signature = parse_signature(signature)
        return recover_address(self.digest(message), signature)

    def verify(self, message: Mapping[str, object], signature: bytes | str, signer: str) -> None:
        """Check that `signer` signed `message` (the facilitator's question, answered without
        building checksummed text). Raises `WrongSigner`, `InvalidSignature`, `InvalidInput`.
        """
        if isinstance(signature, str):
            signature = parse_signature(signature)
        verify_signer(self.digest(message), signature, signer)

    def full_message(self, message: Mapping[str, object]) -> dict[str, object]:
        """The whole typed data in the JSON form of ``eth_signTypedData_v4`` and eth_account."""
        return {
            "types": {EIP712_DOMAIN: self.domain.types_json(), **self.struct.types_json()},
            "primaryType": self.struct.primary_type,
            "domain": self.domain.to_json(),
            "message": dict(message),
        }


TRANSFER_WITH_AUTHORIZATION = StructType(
    "TransferWithAuthorization",
    {
        "TransferWithAuthorization": [
            {"name": "from", "type": "address"},
            {"name": "to", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "validAfter", "type": "uint256"},
            {"name": "validBefore", "type": "uint256"},
            {"name": "nonce", "type": "bytes32"},
        ]
    },
)
"""EIP-3009's authorization, as USDC and x402's ``exact`` scheme on EVM sign it."""


# --- the generic JSON form ------------------------------------------------------------------

_FULL_MESSAGE_KEYS = frozenset({"types", "primaryType", "domain", "message"})


@functools.lru_cache(maxsize=COMPILED_TYPE_CACHE_SIZE)
def _cached_struct(primary_type: str, definition: _Definition) -> StructType:
    return StructType._from_definition(primary_type, definition)


@functools.lru_cache(maxsize=DOMAIN_CACHE_SIZE)
def _cached_domain(items: tuple[tuple[str, type, object], ...]) -> Eip712Domain:
    return Eip712Domain.from_json({name: value for name, _, value in items})


def _derive_primary_type(definition: _Definition) -> str:
    """The one struct no other struct uses, as eth_account and ethers derive it."""
    used = {
        type_text.split("[", 1)[0]
        for name, members in definition
        for _, type_text in members
        if type_text.split("[", 1)[0] != name
    }
    roots = [name for name, _ in definition if name not in used]
    if len(roots) != 1:
        raise InvalidTypedData(
            f"cannot tell the primary type (candidates: {', '.join(roots) or 'none'}); "
            "give primaryType"
        )
    return roots[0]


def typed_message_from_json(full_message: Mapping[str, object]) -> tuple[TypedMessage, object]:
    """The `TypedMessage` and the message of typed data in the JSON form.

    Compiled types and domains are cached (LRU), so payloads of a known shape skip
    compilation. Raises `InvalidTypedData` for anything malformed.
    """
    if not isinstance(full_message, Mapping):
        raise InvalidTypedData(f"typed data must be an object, got {_show(full_message)}")
    unknown = sorted(repr(key) for key in full_message if key not in _FULL_MESSAGE_KEYS)
    if unknown:
        raise InvalidTypedData(
            f"unknown typed-data keys {', '.join(unknown[:5])}; "
            "expected types, primaryType, domain, message"
        )
    for required in ("types", "domain", "message"):
        if required not in full_message:
            raise InvalidTypedData(f"typed data has no {required}")
    definition = _normalise(full_message["types"])
    domain_json = full_message["domain"]
    if not isinstance(domain_json, Mapping):
        raise InvalidTypedData(f"the domain must be an object, got {_show(domain_json)}")
    # The value's type is part of the key: True == 1 must not reuse the entry of chainId 1.
    domain_key = tuple((key, type(value), value) for key, value in domain_json.items())
    try:
        hash(domain_key)
    except TypeError:  # an unhashable value: not a domain value anyway
        raise InvalidTypedData(
            f"domain values must be text, numbers or bytes: {_show(domain_json)}"
        ) from None
    domain = _cached_domain(domain_key)
    message_types = []
    for name, members in definition:
        if name != EIP712_DOMAIN:
            message_types.append((name, members))
            continue
        expected = tuple((key, kind) for key, kind in DOMAIN_FIELDS if key in domain_json)
        if members != expected:
            raise InvalidTypedData(
                "types.EIP712Domain must list exactly the domain's fields, in EIP-712 order and "
                f"with their standard types: {', '.join(f'{k} {n}' for n, k in expected)}"
            )
    message_definition = tuple(message_types)
    primary = full_message.get("primaryType")
    if primary is None:
        primary = _derive_primary_type(message_definition)
    if not isinstance(primary, str):
        raise InvalidTypedData(f"primaryType must be a type name, got {_show(primary)}")
    struct = _cached_struct(primary, message_definition)
    return TypedMessage(domain, struct), full_message["message"]


def digest_typed_data(full_message: Mapping[str, object]) -> bytes:
    """The EIP-712 digest of typed data in the JSON form (types, primaryType, domain,
    message), identical to eth_account's ``encode_typed_data(full_message=...)``."""
    typed, message = typed_message_from_json(full_message)
    return typed.digest(message)  # type: ignore[arg-type]


def recover_typed_data(full_message: Mapping[str, object], signature: bytes | str) -> str:
    """The checksummed address that signed typed data in the JSON form."""
    typed, message = typed_message_from_json(full_message)
    return typed.recover(message, signature)  # type: ignore[arg-type]
