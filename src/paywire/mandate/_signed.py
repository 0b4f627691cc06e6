"""`SignedMandate`: a mandate and its issuer's signature, in the forms an agent carries."""

from __future__ import annotations

from dataclasses import dataclass

from paywire.crypto.keys import (
    SIGNATURE_BYTES,
    InvalidSignature,
    PrivateKey,
    recover_address_bytes,
)
from paywire.crypto.keys import address_bytes as _address_bytes
from paywire.mandate._codec import (
    MANDATE_KEYS,
    MAX_MANDATE_JSON_BYTES,
    JsonForms,
    check_version,
    expect_object,
    json_hex,
    mandate_from_dict,
    mandate_to_dict,
)
from paywire.mandate._errors import InvalidMandate, MandateSignatureInvalid
from paywire.mandate._model import Mandate

_SIGNED_KEYS = (*MANDATE_KEYS, "signature")


@dataclass(frozen=True, slots=True)
class SignedMandate(JsonForms):
    """A `Mandate` with the 65-byte signature (``r || s || v``) of its issuer over its id.

    Building one checks the shapes only; `verify` checks the signature, and
    `MandateChain.verify` everything else (parents, limits, time, revocation).
    """

    JSON_MAX_BYTES = MAX_MANDATE_JSON_BYTES
    JSON_WHAT = "a mandate"

    mandate: Mandate
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.mandate, Mandate):
            raise InvalidMandate(f"needs a Mandate, got {type(self.mandate).__name__}")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_BYTES:
            raise InvalidMandate(f"a signature is {SIGNATURE_BYTES} bytes", "signature")

    @classmethod
    def sign(cls, mandate: Mandate, key: PrivateKey) -> SignedMandate:
        """`mandate` signed by `key`, which must be the mandate's issuer."""
        if key.address != mandate.issuer:
            raise InvalidMandate(
                f"the key of {key.address} cannot sign a mandate issued by {mandate.issuer}; "
                "sign with the issuer's key",
                "issuer",
            )
        return cls(mandate, key.sign_digest(mandate.digest))

    @property
    def id(self) -> str:
        """The mandate's id (its EIP-712 digest, ``0x``-hex)."""
        return self.mandate.id

    def verify(self) -> None:
        """Check that the mandate's issuer made the signature; raises
        `MandateSignatureInvalid` naming the mandate and who signed instead."""
        try:
            signer = recover_address_bytes(self.mandate.digest, self.signature)
        except InvalidSignature as error:
            raise MandateSignatureInvalid(
                f"the signature is invalid ({error.message})", mandate_id=self.id, field="signature"
            ) from None
        if signer != _address_bytes(self.mandate.issuer):
            raise MandateSignatureInvalid(
                f"the signature is by 0x{signer.hex()}, not by the issuer {self.mandate.issuer} "
                "(the mandate was altered, or signed by the wrong key)",
                mandate_id=self.id,
                field="signature",
            )

    # --- carried forms -------------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """The JSON object: the mandate's fields and ``signature`` (``0x``-hex)."""
        return {**mandate_to_dict(self.mandate), "signature": "0x" + self.signature.hex()}

    @classmethod
    def from_dict(cls, value: object) -> SignedMandate:
        """Parse the JSON object strictly; raises `InvalidMandate` (or a subclass) naming the
        field. Does not check the signature: call `verify` (or `MandateChain.verify`)."""
        if isinstance(value, dict) and "v" in value:
            check_version(value)  # before the key check: a newer format has other keys
        fields = expect_object(value, _SIGNED_KEYS, "")
        signature = json_hex(fields["signature"], SIGNATURE_BYTES, "signature")
        return cls(mandate_from_dict(fields), signature)
