"""Revocations: a signed word that a mandate (and with it its whole subtree) no longer holds.

The principal may revoke any mandate of its tree; an agent that delegated may revoke what
it issued and everything below. Said with chains: the issuers of a mandate and of each
of its ancestors may revoke it. A revocation takes effect when the enforcer learns of it
(payments already settled stand); `at_s`, the time it was signed, is for the record.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from paywire.crypto.eip712 import StructType, TypedMessage
from paywire.crypto.keys import (
    SIGNATURE_BYTES,
    InvalidSignature,
    PrivateKey,
    address_bytes,
    recover_address_bytes,
)
from paywire.mandate._chain import MandateChain
from paywire.mandate._codec import (
    JsonForms,
    check_version,
    expect_object,
    json_hex,
    json_int,
    json_text,
)
from paywire.mandate._errors import InvalidMandate, MandateSignatureInvalid
from paywire.mandate._fields import check_address, check_int, show
from paywire.mandate._model import MANDATE_DOMAIN, MANDATE_VERSION, MAX_TIME_S, Mandate
from paywire.mandate._signed import SignedMandate

MAX_REVOCATION_JSON_BYTES = 1024
"""A signed revocation as JSON is about 300 bytes."""

REVOCATION_MESSAGE = TypedMessage(
    MANDATE_DOMAIN,
    StructType(
        "Revocation",
        {
            "Revocation": [
                {"name": "mandateId", "type": "bytes32"},
                {"name": "revoker", "type": "address"},
                {"name": "at", "type": "uint64"},
            ]
        },
    ),
)
"""The `TypedMessage` a revocation is signed as (in the mandates' domain)."""

_MANDATE_ID = re.compile(r"0x[0-9a-f]{64}")
_KEYS = ("v", "mandateId", "revoker", "at", "signature")


@dataclass(frozen=True, slots=True)
class Revocation:
    """`revoker` revokes the mandate `mandate_id` (and its subtree), signed at `at_s`."""

    mandate_id: str
    revoker: str
    at_s: int
    digest: bytes = field(init=False, repr=False, compare=False)
    """The EIP-712 digest that is signed."""

    def __post_init__(self) -> None:
        mandate_id = self.mandate_id.lower() if isinstance(self.mandate_id, str) else None
        if mandate_id is None or not _MANDATE_ID.fullmatch(mandate_id):
            raise InvalidMandate(
                f"must be a mandate id (0x + 64 hex digits), got {show(self.mandate_id)}",
                "mandateId",
            )
        object.__setattr__(self, "mandate_id", mandate_id)
        object.__setattr__(self, "revoker", check_address(self.revoker, "revoker"))
        check_int(self.at_s, "at", 0, MAX_TIME_S)
        message = {
            "mandateId": bytes.fromhex(mandate_id[2:]),
            "revoker": self.revoker,
            "at": self.at_s,
        }
        object.__setattr__(self, "digest", REVOCATION_MESSAGE.digest(message))


@dataclass(frozen=True, slots=True)
class SignedRevocation(JsonForms):
    """A `Revocation` with its revoker's 65-byte signature."""

    JSON_MAX_BYTES = MAX_REVOCATION_JSON_BYTES
    JSON_WHAT = "a revocation"

    revocation: Revocation
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.revocation, Revocation):
            raise InvalidMandate(f"needs a Revocation, got {type(self.revocation).__name__}")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_BYTES:
            raise InvalidMandate(f"a signature is {SIGNATURE_BYTES} bytes", "signature")

    @classmethod
    def sign(cls, revocation: Revocation, key: PrivateKey) -> SignedRevocation:
        """`revocation` signed by `key`, which must be the revoker's."""
        if key.address != revocation.revoker:
            raise InvalidMandate(
                f"the key of {key.address} cannot sign a revocation by {revocation.revoker}",
                "revoker",
            )
        return cls(revocation, key.sign_digest(revocation.digest))

    def verify(self) -> None:
        """Check that the revoker made the signature; raises `MandateSignatureInvalid`."""
        mandate_id = self.revocation.mandate_id
        try:
            signer = recover_address_bytes(self.revocation.digest, self.signature)
        except InvalidSignature as error:
            raise MandateSignatureInvalid(
                f"the revocation's signature is invalid ({error.message})",
                mandate_id=mandate_id,
                field="signature",
            ) from None
        if signer != address_bytes(self.revocation.revoker):
            raise MandateSignatureInvalid(
                f"the revocation is signed by 0x{signer.hex()}, not by the revoker "
                f"{self.revocation.revoker}",
                mandate_id=mandate_id,
                field="signature",
            )

    def to_dict(self) -> dict[str, object]:
        """The JSON object ``{"v": 1, "mandateId", "revoker", "at", "signature"}``."""
        return {
            "v": MANDATE_VERSION,
            "mandateId": self.revocation.mandate_id,
            "revoker": self.revocation.revoker,
            "at": self.revocation.at_s,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_dict(cls, value: object) -> SignedRevocation:
        """Parse the JSON object strictly; does not check the signature (see `verify`)."""
        if isinstance(value, dict) and "v" in value:
            check_version(value)
        fields = expect_object(value, _KEYS, "")
        revocation = Revocation(
            mandate_id=json_text(fields["mandateId"], "mandateId"),
            revoker=json_text(fields["revoker"], "revoker"),
            at_s=json_int(fields["at"], "at"),
        )
        return cls(revocation, json_hex(fields["signature"], SIGNATURE_BYTES, "signature"))


def verify_revocation(
    revocation: SignedRevocation, chain: MandateChain | Sequence[SignedMandate | Mandate]
) -> bool:
    """Whether `revocation` is a valid revocation of a mandate of `chain` (root first):
    signed by its revoker, naming a mandate of the chain, by the issuer of that mandate
    or of one of its ancestors (the principal, or an agent above it that delegated).

    The chain's issuers are taken as written: verify the chain first
    (`MandateChain.verify`), or they are only claims.
    """
    try:
        revocation.verify()
    except MandateSignatureInvalid:
        return False
    mandates = [
        item.mandate if isinstance(item, SignedMandate) else item
        for item in (chain.mandates if isinstance(chain, MandateChain) else chain)
    ]
    issuers = set()
    for mandate in mandates:
        issuers.add(mandate.issuer)
        if mandate.id == revocation.revocation.mandate_id:
            return revocation.revocation.revoker in issuers
    return False
