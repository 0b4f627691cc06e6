"""The channel wire format: x402's `batch-settlement` scheme, as paywire speaks it.

A paid request carries, in `PAYMENT-SIGNATURE`, an x402 v2 `PaymentPayload` whose
`accepted` is a `batch-settlement` requirement and whose `payload` is a cumulative voucher:

    {"type": "voucher", "channelId": "0x<32 bytes>", "maxClaimableAmount": "<atomic>",
     "signature": "0x<65 bytes>"}

(the SDK's nested form, ``{"type": "voucher", "voucher": {...}, "channelConfig": {...}}``,
is read too; its channel config is ignored: paywire knows its channels). The signature is
EIP-712 over the SDK's type ``Voucher(bytes32 channelId,uint128 maxClaimableAmount)``:

- on the paywire ledger network in the domain ``{name: "paywire channels", version: "1",
  salt: keccak256(network "/" asset)}`` (as ``ledger_domain`` binds `exact` payments to
  one ledger and one asset);
- on an EVM chain in the channel contract's domain (``{name: "Paywire Channels",
  version: "1", chainId, verifyingContract}``).

Differences from the SDK's batch-settlement (x402 2.25), all deliberate:

1. The voucher payload is flat and carries no ``channelConfig``: a ledger channel is
   opened beforehand at the facilitator (`OpenChannel`, below), an EVM one in paywire's
   channel contract; the provider reads the channel by id (once, then from memory).
2. The channel id is not the EIP-712 hash of a ChannelConfig: on the ledger it is
   keccak256(domainSeparator || payer || receiver || salt) (the separator binds network
   and asset), on EVM the contract's keccak256(chainId, contract, token, payer, payee,
   salt).
3. A voucher must cover the charged total plus the request's price maximum
   (``maxClaimableAmount >= chargedTotal + amount``), not equal it: the provider charges
   what the work actually cost, at most the voucher's increase, and the next voucher
   continues from the charged total. One that does not is the corrective 402
   (`VOUCHER_BEHIND`), whose requirement carries the SDK's ``extra.channelState``
   (``chargedCumulativeAmount``, ``balance`` = the deposit, ``totalClaimed``) and
   ``extra.voucherState`` (the highest voucher the provider holds, which the client can
   check is its own).
4. Requests on one channel are served one at a time: a second waits for the first (up to
   a bound) instead of the SDK's immediate ``channel_busy``.
5. Claims are signed by the receiver itself (``ClaimBatch(ClaimEntry[] claims)`` with
   ``ClaimEntry(bytes32 channelId,uint128 maxClaimableAmount,uint128 totalClaimed,bool
   close)``: the SDK's entry plus a close flag), not by a separate receiverAuthorizer; on
   EVM the payee sends the claim transaction itself.
6. Refunds: no ``refund`` payload. A ledger channel ends at its expiry (the hold's
   timeout returns what was not claimed to the payer) or when the payee closes it; an
   EVM channel is closed by the payee or withdrawn by the payer after the challenge
   period (``withdrawDelay`` in ``extra``).
7. Error reasons are paywire's (``channel_*``, below), mapped in docs/protocol.md.

The settlement answer (`PAYMENT-RESPONSE`) carries ``extensions["paywire-channel"]`` =
``{"channelId", "chargedTotal", "deposit", "charged", "claimedTotal"}`` and, in ``extra``,
the SDK's ``chargedAmount`` and ``channelState``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from x402.schemas import PaymentRequirements

from paywire.chain.channels._voucher import VOUCHER
from paywire.crypto.eip712 import Eip712Domain, StructType, TypedMessage
from paywire.crypto.keys import (
    InvalidSignature,
    PrivateKey,
    address_bytes,
    keccak256,
    recover_address_bytes,
)
from paywire.money import MAX_ATOMIC
from paywire.protocol.errors import INVALID_PAYLOAD, PaymentProblem

SCHEME = "batch-settlement"
"""x402's scheme name for cumulative vouchers on a channel."""

LEDGER_DOMAIN_NAME = "paywire channels"
DOMAIN_VERSION = "1"

CHANNEL_EXTENSION = "paywire-channel"
"""The key of the channel's state in a `SettleResponse`'s `extensions`."""

VOUCHER_TYPE = VOUCHER
"""``Voucher(bytes32 channelId,uint128 maxClaimableAmount)``: the SDK's, and the contract's."""

VOUCHER_TYPEHASH = VOUCHER.type_hash

OPEN_CHANNEL = StructType(
    "OpenChannel",
    {
        "OpenChannel": [
            {"name": "receiver", "type": "address"},
            {"name": "deposit", "type": "uint128"},
            {"name": "salt", "type": "bytes32"},
            {"name": "expiry", "type": "uint64"},
        ]
    },
)
"""The payer's authorization of a ledger channel: hold `deposit` (in all, over the
channel's life: a larger one tops the channel up) for `receiver` until `expiry`."""

CLAIM_BATCH = StructType(
    "ClaimBatch",
    {
        "ClaimBatch": [{"name": "claims", "type": "ClaimEntry[]"}],
        "ClaimEntry": [
            {"name": "channelId", "type": "bytes32"},
            {"name": "maxClaimableAmount", "type": "uint128"},
            {"name": "totalClaimed", "type": "uint128"},
            {"name": "close", "type": "bool"},
        ],
    },
)
"""The receiver's claim of many ledger channels at once (each to `totalClaimed`, on the
payer's voucher for `maxClaimableAmount`; `close` ends the channel)."""

# Refusal reasons (x402 `invalidReason` / `errorReason`).
VOUCHER_BEHIND = "channel_voucher_behind"
"""The corrective 402: the voucher does not cover the charged total plus the price."""
VOUCHER_PAST_DEPOSIT = "channel_voucher_past_deposit"
VOUCHER_SIGNATURE = "channel_voucher_signature"
CHANNEL_UNKNOWN = "channel_unknown"
CHANNEL_CLOSED = "channel_closed"
CHANNEL_EXPIRING = "channel_expiring"
CHANNEL_BUSY = "channel_busy"
CHANNEL_PAYEE = "channel_payee_mismatch"
CHANNEL_UNAVAILABLE = "channel_unavailable"
CHARGE_EXCEEDS_VOUCHER = "channel_charge_exceeds_voucher"
OPEN_SIGNATURE = "channel_open_signature"
OPEN_REFUSED = "channel_open_refused"
CLAIM_REFUSED = "channel_claim_refused"

BYTES32_HEX = re.compile(r"0x[0-9a-fA-F]{64}")
SIGNATURE_HEX = re.compile(r"0x[0-9a-fA-F]{130}")
DECIMAL = re.compile(r"0|[1-9][0-9]{0,38}")

DOMAIN_CACHE_SIZE = 256
"""(network, asset) domains kept compiled."""


def bad(message: str) -> PaymentProblem:
    """A payment that is not one: HTTP 400."""
    return PaymentProblem(INVALID_PAYLOAD, message, status=400)


def uint(value: object, what: str, bound: int = MAX_ATOMIC) -> int:
    """A decimal string (or JSON integer) in 0..bound."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and DECIMAL.fullmatch(value):
        number = int(value)
    else:
        raise bad(f"{what} must be a decimal integer string")
    if not 0 <= number <= bound:
        raise bad(f"{what} is out of range (0..{bound})")
    return number


def hex32(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not BYTES32_HEX.fullmatch(value):
        raise bad(f"{what} must be 0x and 32 bytes of hex")
    return bytes.fromhex(value[2:])


def signature_bytes(value: object, what: str = "signature") -> bytes:
    if not isinstance(value, str) or not SIGNATURE_HEX.fullmatch(value):
        raise bad(f"{what} must be 0x and 65 bytes of hex")
    return bytes.fromhex(value[2:])


@functools.lru_cache(maxsize=DOMAIN_CACHE_SIZE)
def ledger_channel_domain(network: str, asset_code: str) -> Eip712Domain:
    """The EIP-712 domain of channels on a paywire ledger `network` in `asset_code`."""
    salt = keccak256(f"{network}/{asset_code}".encode())
    return Eip712Domain(name=LEDGER_DOMAIN_NAME, version=DOMAIN_VERSION, salt=salt)


def ledger_channel_id(domain: Eip712Domain, payer: str, receiver: str, salt: bytes) -> bytes:
    """A ledger channel's id: keccak256(domainSeparator || payer || receiver || salt)."""
    return keccak256(domain.separator + address_bytes(payer) + address_bytes(receiver) + salt)


@functools.lru_cache(maxsize=DOMAIN_CACHE_SIZE)
def typed(domain: Eip712Domain, struct: StructType) -> TypedMessage:
    return TypedMessage(domain, struct)


# ----- vouchers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedVoucher:
    """A voucher as it travels: channel `channel_id` may pay up to `max_claimable` in all."""

    channel_id: bytes
    max_claimable: int
    signature: bytes

    @property
    def channel_hex(self) -> str:
        return "0x" + self.channel_id.hex()

    def to_payload(self) -> dict[str, str]:
        """The x402 `payload` object of a paid request."""
        return {
            "type": "voucher",
            "channelId": self.channel_hex,
            "maxClaimableAmount": str(self.max_claimable),
            "signature": "0x" + self.signature.hex(),
        }


def parse_voucher(payload: Mapping[str, Any]) -> SignedVoucher:
    """The voucher of a `batch-settlement` payload (flat, or the SDK's nested form); a 400
    `PaymentProblem` says what is wrong."""
    if payload.get("type") != "voucher":
        raise bad('a batch-settlement payment is {"type": "voucher", ...}')
    fields = payload.get("voucher", payload)
    if not isinstance(fields, Mapping):
        raise bad("payload.voucher must be an object")
    channel = fields.get("channelId")
    most = fields.get("maxClaimableAmount")
    signature = fields.get("signature")
    # The hot path: one regex per field, then the conversions.
    if not isinstance(channel, str) or not BYTES32_HEX.fullmatch(channel):
        raise bad("channelId must be 0x and 32 bytes of hex")
    if not isinstance(signature, str) or not SIGNATURE_HEX.fullmatch(signature):
        raise bad("signature must be 0x and 65 bytes of hex")
    return SignedVoucher(
        bytes.fromhex(channel[2:]),
        uint(most, "maxClaimableAmount"),
        bytes.fromhex(signature[2:]),
    )


def voucher_prefix(domain: Eip712Domain) -> bytes:
    """``0x19 0x01 || domainSeparator``: what every voucher digest of `domain` starts with."""
    return b"\x19\x01" + domain.separator


def voucher_digest(prefix: bytes, channel_id: bytes, max_claimable: int) -> bytes:
    """The EIP-712 digest of a voucher (equal to `TypedMessage.digest`, two hashes, no
    generic encoder: this is the provider's hot path)."""
    return keccak256(
        prefix + keccak256(VOUCHER_TYPEHASH + channel_id + max_claimable.to_bytes(32, "big"))
    )


def voucher_signer(prefix: bytes, voucher: SignedVoucher) -> bytes:
    """The 20 address bytes that signed `voucher`; a `PaymentProblem` if it recovers none."""
    digest = voucher_digest(prefix, voucher.channel_id, voucher.max_claimable)
    try:
        return recover_address_bytes(digest, voucher.signature)
    except InvalidSignature as error:
        raise PaymentProblem(VOUCHER_SIGNATURE, f"the voucher's {error.message}") from None


def sign_voucher(
    domain: Eip712Domain, key: PrivateKey, channel_id: bytes, most: int
) -> SignedVoucher:
    """The payer's (`key`'s) voucher for up to `most` in all on `channel_id` of `domain`."""
    message = {"channelId": channel_id, "maxClaimableAmount": most}
    return SignedVoucher(channel_id, most, typed(domain, VOUCHER).sign(message, key))


# ----- requirements and state -----------------------------------------------------------------


def channel_requirements(
    *,
    network: str,
    asset: str,
    amount: int,
    pay_to: str,
    domain: Eip712Domain,
    max_timeout_s: int,
    min_deposit: int,
    withdraw_delay_s: int = 0,
    more: Mapping[str, Any] | None = None,
) -> PaymentRequirements:
    """A `batch-settlement` option of a 402: `amount` is the most one request may be
    charged; ``extra`` says what the client needs to open a channel and sign vouchers (the
    SDK's ``receiverAuthorizer``, ``withdrawDelay``, ``name``, ``version``, ``minDeposit``,
    plus paywire's ``domain`` and where to open: `more`)."""
    extra: dict[str, Any] = {
        "receiverAuthorizer": pay_to,
        "withdrawDelay": withdraw_delay_s,
        "name": domain.name,
        "version": domain.version,
        "minDeposit": str(min_deposit),
        "domain": domain.to_json(),
    }
    extra.update(more or {})
    return PaymentRequirements(
        scheme=SCHEME,
        network=network,
        asset=asset,
        amount=str(amount),
        pay_to=pay_to,
        max_timeout_seconds=max_timeout_s,
        extra=extra,
    )


def state_dict(
    channel_id: str,
    *,
    charged: int,
    deposit: int,
    claimed: int,
    voucher_max: int = 0,
    voucher_signature: bytes = b"",
) -> dict[str, Any]:
    """A channel's state as the provider tells it (corrective 402, settlement answer)."""
    state: dict[str, Any] = {
        "channelId": channel_id,
        "chargedTotal": str(charged),
        "deposit": str(deposit),
        "claimedTotal": str(claimed),
    }
    if voucher_signature:
        state["signedMaxClaimable"] = str(voucher_max)
        state["signature"] = "0x" + voucher_signature.hex()
    return state


def sdk_channel_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """`state_dict` in the SDK's ``channelState`` shape (ChannelStateExtra)."""
    return {
        "channelId": state["channelId"],
        "balance": state["deposit"],
        "totalClaimed": state["claimedTotal"],
        "withdrawRequestedAt": 0,
        "refundNonce": "0",
        "chargedCumulativeAmount": state["chargedTotal"],
    }


def corrective_accepts(
    accepts: list[PaymentRequirements], problem: PaymentProblem
) -> list[PaymentRequirements]:
    """The 402's options with the refused channel's state in the `batch-settlement` ones'
    ``extra`` (``channelState``, ``voucherState``, as the SDK's corrective 402 has them),
    so the client can re-sign from the charged total."""
    state = getattr(problem, "channel_state", None)
    if not isinstance(state, Mapping):
        return accepts
    out = []
    for option in accepts:
        if option.scheme == SCHEME:
            extra = dict(option.extra or {})
            extra["channelState"] = sdk_channel_state(state)
            if "signature" in state:
                extra["voucherState"] = {
                    "signedMaxClaimable": state["signedMaxClaimable"],
                    "signature": state["signature"],
                }
            option = option.model_copy(update={"extra": extra})
        out.append(option)
    return out


class ChannelProblem(PaymentProblem):
    """A refused voucher that carries its channel's state (`channel_state`): the
    corrective 402, a voucher past the deposit, a channel that ended."""

    def __init__(self, reason: str, message: str, channel_state: dict[str, Any]) -> None:
        super().__init__(reason, message)
        self.channel_state = channel_state
