"""EIP-3009 authorizations: the messages a wallet signs to move a token without paying gas.

Signing and checking use paywire's fast EIP-712 path (`TypedMessage`, libsecp256k1), with
digests byte-identical to eth_account's ``encode_typed_data``. This module does not touch
a chain (and does not import web3), so the facilitator's hot path can use it.

The three EIP-3009 types, exactly as the standard and USDC define them::

    TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,
                              uint256 validBefore,bytes32 nonce)
    ReceiveWithAuthorization(...the same fields...)
    CancelAuthorization(address authorizer,bytes32 nonce)
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from paywire.chain._checks import NONCE_BYTES, check_address, check_amount, check_nonce
from paywire.chain.errors import InvalidAuthorization
from paywire.crypto import (
    TRANSFER_WITH_AUTHORIZATION,
    Eip712Domain,
    PrivateKey,
    StructType,
    TypedMessage,
    parse_signature,
)
from paywire.crypto.keys import SIGNATURE_BYTES

MAX_JSON_INTEGER_CHARS = 78
"""uint256's largest value has 78 decimal digits; longer text is refused before int()."""

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

_DECIMAL = re.compile(r"[0-9]+")
_NONCE_TEXT = re.compile(r"0x[0-9a-fA-F]{64}")

_AUTHORIZATION_FIELDS = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"},
    {"name": "nonce", "type": "bytes32"},
]

RECEIVE_WITH_AUTHORIZATION = StructType(
    "ReceiveWithAuthorization", {"ReceiveWithAuthorization": _AUTHORIZATION_FIELDS}
)
"""EIP-3009's authorization that only the payee (``to``) may submit: used for deposits."""

CANCEL_AUTHORIZATION = StructType(
    "CancelAuthorization",
    {
        "CancelAuthorization": [
            {"name": "authorizer", "type": "address"},
            {"name": "nonce", "type": "bytes32"},
        ]
    },
)
"""EIP-3009's cancellation of an unused nonce."""


class AuthorizationKind(enum.StrEnum):
    """Which EIP-3009 function an authorization is for (they hash differently)."""

    TRANSFER = "TransferWithAuthorization"
    RECEIVE = "ReceiveWithAuthorization"

    @property
    def struct(self) -> StructType:
        return (
            TRANSFER_WITH_AUTHORIZATION
            if self is AuthorizationKind.TRANSFER
            else RECEIVE_WITH_AUTHORIZATION
        )


def new_nonce() -> bytes:
    """A fresh random 32-byte nonce (the OS CSPRNG)."""
    return secrets.token_bytes(NONCE_BYTES)


def token_domain(name: str, version: str, chain_id: int, token: str) -> Eip712Domain:
    """The EIP-712 domain of an EIP-3009 token: (name, version, chainId, verifyingContract),
    the fields x402 carries in ``extra`` (name, version) and in the requirements."""
    return Eip712Domain(name=name, version=version, chain_id=chain_id, verifying_contract=token)


@dataclass(frozen=True, slots=True)
class Authorization:
    """The fields of an EIP-3009 authorization: `from_` lets `to` have `value` atomic units,
    valid strictly after `valid_after` and strictly before `valid_before` (unix seconds),
    once (`nonce`).

    Addresses are normalised to their checksummed form; a mixed-case address with a wrong
    checksum, a number outside uint256 or a nonce that is not 32 bytes is refused.
    """

    from_: str
    to: str
    value: int
    valid_after: int
    valid_before: int
    nonce: bytes

    def __post_init__(self) -> None:
        error = InvalidAuthorization
        object.__setattr__(self, "from_", check_address(self.from_, "authorization from", error))
        object.__setattr__(self, "to", check_address(self.to, "authorization to", error))
        for attribute in ("value", "valid_after", "valid_before"):
            check_amount(getattr(self, attribute), f"authorization {attribute}", error=error)
        check_nonce(self.nonce, error)

    def message(self) -> dict[str, object]:
        """The EIP-712 message (``from``, ``to``, ``value``, ``validAfter``...)."""
        return {
            "from": self.from_,
            "to": self.to,
            "value": self.value,
            "validAfter": self.valid_after,
            "validBefore": self.valid_before,
            "nonce": self.nonce,
        }

    def to_json(self) -> dict[str, str]:
        """The x402 ``authorization`` object: numbers as decimal text, nonce as 0x-hex."""
        return {
            "from": self.from_,
            "to": self.to,
            "value": str(self.value),
            "validAfter": str(self.valid_after),
            "validBefore": str(self.valid_before),
            "nonce": "0x" + self.nonce.hex(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Authorization:
        """Parse an x402 ``authorization`` object (numbers as decimal text or ints)."""
        if not isinstance(data, Mapping):
            raise InvalidAuthorization("an authorization is a JSON object")
        expected = {"from", "to", "value", "validAfter", "validBefore", "nonce"}
        missing = sorted(expected - set(data))
        if missing:
            raise InvalidAuthorization(f"the authorization lacks {', '.join(missing)}")
        extra = sorted(str(key)[:40] for key in data if key not in expected)
        if extra:
            raise InvalidAuthorization(f"unknown authorization fields: {', '.join(extra[:5])}")
        nonce = data["nonce"]
        if not isinstance(nonce, str) or not _NONCE_TEXT.fullmatch(nonce):
            raise InvalidAuthorization("the authorization nonce must be 0x and 64 hex digits")
        return cls(
            from_=_address_text(data["from"], "from"),
            to=_address_text(data["to"], "to"),
            value=_json_uint(data["value"], "value"),
            valid_after=_json_uint(data["validAfter"], "validAfter"),
            valid_before=_json_uint(data["validBefore"], "validBefore"),
            nonce=bytes.fromhex(nonce[2:]),
        )


def sign_authorization(
    domain: Eip712Domain,
    key: PrivateKey,
    authorization: Authorization,
    kind: AuthorizationKind = AuthorizationKind.TRANSFER,
) -> bytes:
    """The 65-byte signature (r || s || v, low s, v in {27, 28}) of `key` over the
    authorization. The key must be the authorization's ``from``."""
    if key.address != authorization.from_:
        raise InvalidAuthorization(
            f"the key of {key.address} cannot sign for {authorization.from_} "
            "(an EIP-3009 authorization is signed by its from address)"
        )
    return TypedMessage(domain, kind.struct).sign(authorization.message(), key)


def sign_cancel(domain: Eip712Domain, key: PrivateKey, nonce: bytes) -> bytes:
    """The signature of `key` cancelling its unused authorization `nonce`."""
    check_nonce(nonce, InvalidAuthorization)
    message = {"authorizer": key.address, "nonce": nonce}
    return TypedMessage(domain, CANCEL_AUTHORIZATION).sign(message, key)


def recover_authorizer(
    domain: Eip712Domain,
    authorization: Authorization,
    signature: bytes | str,
    kind: AuthorizationKind = AuthorizationKind.TRANSFER,
) -> str:
    """Who signed the authorization (checksummed); compare with ``from``."""
    return TypedMessage(domain, kind.struct).recover(authorization.message(), signature)


def split_signature(signature: bytes | str) -> tuple[int, bytes, bytes]:
    """(v, r, s) of a 65-byte signature, as ``transferWithAuthorization`` takes them.

    A v of 0 or 1 (the recovery id some signers emit) becomes 27 or 28. The contract checks
    the rest (low s, a recoverable key).
    """
    raw = parse_signature(signature) if isinstance(signature, str) else signature
    if not isinstance(raw, bytes) or len(raw) != SIGNATURE_BYTES:
        raise InvalidAuthorization(f"a signature is {SIGNATURE_BYTES} bytes (r || s || v)")
    v = raw[64]
    if v in (0, 1):
        v += 27
    return v, raw[:32], raw[32:64]


def _json_uint(value: object, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return check_amount(value, name, error=InvalidAuthorization)
    if (
        not isinstance(value, str)
        or len(value) > MAX_JSON_INTEGER_CHARS
        or not _DECIMAL.fullmatch(value)
    ):
        raise InvalidAuthorization(f"authorization {name} must be a decimal integer as text")
    return check_amount(int(value), name, error=InvalidAuthorization)


def _address_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidAuthorization(f"authorization {name} must be an address as text")
    return value
