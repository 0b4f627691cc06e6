"""The `exact` payment authorization: who pays whom how much, in which window, once.

The same shape as x402's EVM `exact` payload (EIP-3009), so one parser and one signer
serve both networks:

    {"signature": "0x<65 bytes>",
     "authorization": {"from": "0x..", "to": "0x..", "value": "1000",
                       "validAfter": "0", "validBefore": "1763935500",
                       "nonce": "0x<32 bytes>"}}

Numbers are decimal strings (JSON loses integers past 2^53); times are Unix seconds.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paywire.crypto.eip712 import TRANSFER_WITH_AUTHORIZATION, Eip712Domain, TypedMessage
from paywire.crypto.keys import PrivateKey, parse_address
from paywire.errors import PaywireError
from paywire.money import MAX_ATOMIC
from paywire.protocol.errors import INVALID_PAYLOAD, PaymentProblem

MAX_UINT256 = 2**256 - 1
NONCE_BYTES = 32

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,77}")
_NONCE = re.compile(r"0x[0-9a-fA-F]{64}")
_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")
_FIELDS = {"from", "to", "value", "validAfter", "validBefore", "nonce"}


@dataclass(frozen=True, slots=True)
class Authorization:
    """An EIP-3009 style transfer authorization and its signature."""

    payer: str
    payee: str
    value: int
    valid_after: int
    valid_before: int
    nonce: bytes
    signature: bytes

    def message(self) -> dict[str, object]:
        """The EIP-712 message (field names as EIP-3009 has them)."""
        return {
            "from": self.payer,
            "to": self.payee,
            "value": self.value,
            "validAfter": self.valid_after,
            "validBefore": self.valid_before,
            "nonce": self.nonce,
        }

    def to_payload(self) -> dict[str, Any]:
        """The x402 `payload` object."""
        return {
            "signature": "0x" + self.signature.hex(),
            "authorization": {
                "from": self.payer,
                "to": self.payee,
                "value": str(self.value),
                "validAfter": str(self.valid_after),
                "validBefore": str(self.valid_before),
                "nonce": "0x" + self.nonce.hex(),
            },
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Authorization:
        """Parse an x402 `payload` strictly; a `PaymentProblem` (400) names what is wrong."""
        signature = payload.get("signature")
        authorization = payload.get("authorization")
        if not isinstance(signature, str) or not _SIGNATURE.fullmatch(signature):
            raise _bad("payload.signature must be 0x and 65 bytes of hex")
        if not isinstance(authorization, Mapping) or set(authorization) != _FIELDS:
            raise _bad(f"payload.authorization must have exactly {sorted(_FIELDS)}")
        nonce = authorization["nonce"]
        if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
            raise _bad("authorization.nonce must be 0x and 32 bytes of hex")
        try:
            payer = parse_address(_text(authorization, "from"))
            payee = parse_address(_text(authorization, "to"))
        except PaywireError as error:
            raise _bad(f"authorization: {error}") from None
        value = _uint(authorization, "value")
        if not 0 < value <= MAX_ATOMIC:
            raise _bad("authorization.value must be above 0 and below 2^128")
        return cls(
            payer=payer,
            payee=payee,
            value=value,
            valid_after=_uint(authorization, "validAfter"),
            valid_before=_uint(authorization, "validBefore"),
            nonce=bytes.fromhex(nonce[2:]),
            signature=bytes.fromhex(signature[2:]),
        )


def _bad(message: str) -> PaymentProblem:
    return PaymentProblem(INVALID_PAYLOAD, message, status=400)


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields[name]
    if not isinstance(value, str):
        raise _bad(f"authorization.{name} must be text")
    return value


def _uint(fields: Mapping[str, Any], name: str) -> int:
    value = fields[name]
    # x402 sends numbers as decimal strings; accept JSON integers too, never floats.
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = int(value)
    else:
        raise _bad(f"authorization.{name} must be a decimal integer string")
    if not 0 <= number <= MAX_UINT256:
        raise _bad(f"authorization.{name} is out of range")
    return number


@functools.lru_cache(maxsize=256)
def transfer_message(domain: Eip712Domain) -> TypedMessage:
    """EIP-3009's TransferWithAuthorization in `domain`."""
    return TypedMessage(domain, TRANSFER_WITH_AUTHORIZATION)


def sign_authorization(
    key: PrivateKey,
    domain: Eip712Domain,
    *,
    payee: str,
    value: int,
    valid_after: int,
    valid_before: int,
    nonce: bytes | None = None,
) -> Authorization:
    """Sign a transfer authorization with a fresh random nonce (unless one is given)."""
    chosen = os.urandom(NONCE_BYTES) if nonce is None else nonce
    unsigned = Authorization(
        payer=key.address,
        payee=parse_address(payee),
        value=value,
        valid_after=valid_after,
        valid_before=valid_before,
        nonce=chosen,
        signature=b"",
    )
    signature = transfer_message(domain).sign(unsigned.message(), key)
    return Authorization(
        unsigned.payer,
        unsigned.payee,
        value,
        valid_after,
        valid_before,
        chosen,
        signature,
    )
