"""What travels between payer, provider and facilitator for a ledger channel: the payer's
signed `OpenChannelRequest` and the receiver's signed `ClaimBatch`, with their JSON forms.

Opening (``POST /channels/open``) takes an x402 v2 `PaymentPayload` whose `accepted` is the
provider's `batch-settlement` requirement and whose `payload` is

    {"type": "open", "payer": "0x..", "deposit": "<atomic>", "salt": "0x<32 bytes>",
     "expiry": "<unix s>", "signature": "0x<65 bytes>"}

signed over ``OpenChannel(address receiver,uint128 deposit,bytes32 salt,uint64 expiry)``
in the channel domain; the payment's ``paywire-mandate`` extension carries the payer's
mandate chain, if any. The same request with a larger deposit or a later expiry tops the
channel up (the deposit is cumulative, as vouchers are).

Claiming (``POST /channels/claim``):

    {"asset": "USDC", "signature": "0x..", "claims": [{"channelId": "0x..",
     "maxClaimableAmount": "..", "voucherSignature": "0x..", "totalClaimed": "..",
     "close": false, "metadata": {...}}]}

``signature`` is the receiver's over ``ClaimBatch`` (see `wire.CLAIM_BATCH`); ``metadata``
(what the charges were for, summarized) is not signed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from paywire.crypto.eip712 import Eip712Domain
from paywire.crypto.keys import PrivateKey, parse_address
from paywire.errors import PaywireError
from paywire.money import MAX_ATOMIC
from paywire.protocol.channel.wire import (
    CLAIM_BATCH,
    OPEN_CHANNEL,
    bad,
    hex32,
    signature_bytes,
    typed,
    uint,
)

MAX_EXPIRY = 2**63 - 1
MAX_CLAIMS_PER_BATCH = 256
"""Claims in one request to the facilitator (each is one linked ledger write)."""

_OPEN_FIELDS = frozenset({"type", "payer", "deposit", "salt", "expiry", "signature"})


def _address(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise bad(f"{what} must be an address")
    try:
        return parse_address(value)
    except PaywireError as error:
        raise bad(f"{what}: {error}") from None


@dataclass(frozen=True, slots=True)
class OpenChannelRequest:
    """The payer's authorization to hold `deposit` (in all) for `receiver` until `expiry`."""

    payer: str
    receiver: str
    deposit: int
    salt: bytes
    expiry: int
    signature: bytes

    def message(self) -> dict[str, object]:
        return {
            "receiver": self.receiver,
            "deposit": self.deposit,
            "salt": self.salt,
            "expiry": self.expiry,
        }

    def to_payload(self) -> dict[str, str]:
        return {
            "type": "open",
            "payer": self.payer,
            "deposit": str(self.deposit),
            "salt": "0x" + self.salt.hex(),
            "expiry": str(self.expiry),
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], receiver: str) -> OpenChannelRequest:
        """Parse an open payload for `receiver` (the requirement's payTo); a 400 otherwise."""
        if payload.get("type") != "open" or set(payload) != _OPEN_FIELDS:
            raise bad(f"an open payload has exactly {sorted(_OPEN_FIELDS)}, type 'open'")
        deposit = uint(payload["deposit"], "deposit")
        if deposit == 0:
            raise bad("deposit must be at least 1 atomic unit")
        return cls(
            payer=_address(payload["payer"], "payer"),
            receiver=_address(receiver, "payTo"),
            deposit=deposit,
            salt=hex32(payload["salt"], "salt"),
            expiry=uint(payload["expiry"], "expiry", MAX_EXPIRY),
            signature=signature_bytes(payload["signature"]),
        )

    def verify(self, domain: Eip712Domain) -> None:
        """Check that `payer` signed it in `domain`; raises `InvalidSignature`."""
        typed(domain, OPEN_CHANNEL).verify(self.message(), self.signature, self.payer)


def sign_open(
    key: PrivateKey,
    domain: Eip712Domain,
    *,
    receiver: str,
    deposit: int,
    expiry: int,
    salt: bytes | None = None,
) -> OpenChannelRequest:
    """The payer's (`key`'s) signed request to open (or top up) a channel."""
    unsigned = OpenChannelRequest(
        key.address, parse_address(receiver), deposit, salt or os.urandom(32), expiry, b""
    )
    signature = typed(domain, OPEN_CHANNEL).sign(unsigned.message(), key)
    return OpenChannelRequest(
        unsigned.payer,
        unsigned.receiver,
        deposit,
        unsigned.salt,
        expiry,
        signature,
    )


@dataclass(frozen=True, slots=True)
class ClaimEntry:
    """Claim `total` on channel `channel_id`, on the payer's voucher for `max_claimable`;
    `close` ends the channel (what was not claimed goes back to the payer)."""

    channel_id: bytes
    max_claimable: int
    voucher_signature: bytes
    total: int
    close: bool = False
    metadata: Mapping[str, Any] | None = field(default=None, compare=False)

    def message(self) -> dict[str, object]:
        return {
            "channelId": self.channel_id,
            "maxClaimableAmount": self.max_claimable,
            "totalClaimed": self.total,
            "close": self.close,
        }

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "channelId": "0x" + self.channel_id.hex(),
            "maxClaimableAmount": str(self.max_claimable),
            "voucherSignature": "0x" + self.voucher_signature.hex(),
            "totalClaimed": str(self.total),
            "close": self.close,
        }
        if self.metadata:
            data["metadata"] = dict(self.metadata)
        return data

    @classmethod
    def from_json(cls, data: object) -> ClaimEntry:
        if not isinstance(data, Mapping):
            raise bad("a claim is a JSON object")
        close = data.get("close", False)
        metadata = data.get("metadata")
        if not isinstance(close, bool):
            raise bad("close must be true or false")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise bad("metadata must be an object")
        return cls(
            hex32(data.get("channelId"), "channelId"),
            uint(data.get("maxClaimableAmount"), "maxClaimableAmount", MAX_ATOMIC),
            signature_bytes(data.get("voucherSignature"), "voucherSignature"),
            uint(data.get("totalClaimed"), "totalClaimed", MAX_ATOMIC),
            close,
            metadata,
        )


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    """Claims on channels of one receiver in one asset, signed by that receiver."""

    asset: str
    claims: tuple[ClaimEntry, ...]
    signature: bytes

    def message(self) -> dict[str, object]:
        return {"claims": [entry.message() for entry in self.claims]}

    def signer(self, domain: Eip712Domain) -> str:
        """Who signed the batch (raises `InvalidSignature`)."""
        return typed(domain, CLAIM_BATCH).recover(self.message(), self.signature)

    def to_json(self) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "claims": [entry.to_json() for entry in self.claims],
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: object) -> ClaimBatch:
        if not isinstance(data, Mapping):
            raise bad("a claim batch is a JSON object")
        claims = data.get("claims")
        asset = data.get("asset")
        if not isinstance(asset, str) or not 0 < len(asset) <= 64:
            raise bad("asset must be the asset's code")
        if not isinstance(claims, list) or not 0 < len(claims) <= MAX_CLAIMS_PER_BATCH:
            raise bad(f"claims must be a list of 1..{MAX_CLAIMS_PER_BATCH} claims")
        return cls(
            asset,
            tuple(ClaimEntry.from_json(entry) for entry in claims),
            signature_bytes(data.get("signature")),
        )


def sign_claims(
    key: PrivateKey, domain: Eip712Domain, asset: str, claims: Sequence[ClaimEntry]
) -> ClaimBatch:
    """The receiver's (`key`'s) signed batch of claims."""
    unsigned = ClaimBatch(asset, tuple(claims), b"")
    return ClaimBatch(
        asset, unsigned.claims, typed(domain, CLAIM_BATCH).sign(unsigned.message(), key)
    )


@dataclass(frozen=True, slots=True)
class ClaimOutcome:
    """What one claim did: `ok` with the channel's `claimed` total now, or refused with an
    x402-style `reason`. `closed` once the channel has ended (closed, spent or expired)."""

    channel_id: str
    ok: bool
    claimed: int
    deposit: int = 0
    closed: bool = False
    transfer: str | None = None
    reason: str | None = None
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "channelId": self.channel_id,
            "ok": self.ok,
            "claimedTotal": str(self.claimed),
            "deposit": str(self.deposit),
            "closed": self.closed,
        }
        for key, value in (
            ("transfer", self.transfer),
            ("error", self.reason),
            ("message", self.message),
        ):
            if value is not None:
                data[key] = value
        return data

    @classmethod
    def from_json(cls, data: object) -> ClaimOutcome:
        if not isinstance(data, Mapping):
            raise bad("a claim outcome is a JSON object")
        transfer, reason, message = data.get("transfer"), data.get("error"), data.get("message")
        return cls(
            channel_id=str(data.get("channelId")),
            ok=data.get("ok") is True,
            claimed=uint(data.get("claimedTotal", "0"), "claimedTotal"),
            deposit=uint(data.get("deposit", "0"), "deposit"),
            closed=data.get("closed") is True,
            transfer=transfer if isinstance(transfer, str) else None,
            reason=reason if isinstance(reason, str) else None,
            message=message if isinstance(message, str) else None,
        )
