"""EIP-712 domains and messages: `Eip712Domain`, `TypedMessage`, and typed data in the
JSON form wallets and eth_account use."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from paywire.crypto.eip712._encode import (
    MAX_MESSAGE_BYTES,
    InvalidTypedData,
    _byte_string,
    _integer,
    _show,
    _ValueProblem,
)
from paywire.crypto.eip712._struct import (
    EIP712_DOMAIN,
    StructType,
    _compile,
    _Compiled,
    _Definition,
    _normalise,
    _run,
)
from paywire.crypto.keys import (
    PrivateKey,
    keccak256,
    parse_address,
    parse_signature,
    recover_address,
    verify_signer,
)

COMPILED_TYPE_CACHE_SIZE = 256
"""Type definitions `digest_typed_data` keeps compiled; a service sees a few shapes."""

DOMAIN_CACHE_SIZE = 256
"""Domains (token contracts, chains) `digest_typed_data` keeps separators of."""

DOMAIN_FIELDS: tuple[tuple[str, str], ...] = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
)
"""EIP712Domain's possible fields, in the order EIP-712 gives them (and eth_account uses)."""


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
