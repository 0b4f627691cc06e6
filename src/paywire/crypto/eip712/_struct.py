"""EIP-712 type definitions: checked and compiled once into a `StructType`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from paywire.crypto.eip712._encode import (
    _ATOMIC,
    _RESERVED,
    MAX_ARRAY_LENGTH,
    MAX_MESSAGE_BYTES,
    InvalidTypedData,
    _array_encoder,
    _Encoder,
    _show,
    _struct_hasher,
    _ValueProblem,
)
from paywire.crypto.keys import keccak256

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

EIP712_DOMAIN = "EIP712Domain"
"""The name of the domain struct type, defined by EIP-712 itself."""

TypesJson: TypeAlias = Mapping[str, Sequence[Mapping[str, str]]]
"""Type definitions in the JSON form: ``{"Mail": [{"name": "from", "type": "Person"}]}``."""

# A definition, normalised and hashable: ((struct name, ((field name, field type), ...)), ...)
_Definition: TypeAlias = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


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
