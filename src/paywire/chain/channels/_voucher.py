"""Vouchers: what a payer signs as it is served, and what the payee claims.

A voucher says "channel `channel_id` may pay its payee up to `max_claimable_amount` in
all". It is the EIP-712 struct ``Voucher(bytes32 channelId,uint128 maxClaimableAmount)``
(x402 batch-settlement's type, field for field) under the channel contract's domain
(name "Paywire Channels", version "1", the chain id, the contract), so a voucher for
another channel, contract or chain recovers another signer there. Hashing,
signing and recovery use paywire's fast EIP-712 path (libsecp256k1); digests are
byte-identical to eth_account's ``encode_typed_data`` and to the contract's own. No web3
here: the payee checks a voucher on every paid request.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from paywire.chain._checks import check_amount
from paywire.chain.channels._errors import (
    BadVoucherSignature,
    ChannelClosed,
    InvalidChannelInput,
    VoucherBelowCharged,
    VoucherNotAboveClaimed,
    VoucherPastDeposit,
)
from paywire.chain.channels._state import Channel, check_channel_id
from paywire.crypto import (
    Eip712Domain,
    InvalidSignature,
    PrivateKey,
    StructType,
    TypedMessage,
    parse_signature,
)
from paywire.crypto.keys import SIGNATURE_BYTES

CHANNELS_NAME = "Paywire Channels"
"""The EIP-712 domain name of the channel contract."""

CHANNELS_VERSION = "1"
"""The EIP-712 domain version of the channel contract."""

MAX_JSON_INTEGER_CHARS = 39
"""uint128's largest value has 39 decimal digits; longer text is refused before int()."""

MAX_CLAIMABLE = 2**128 - 1
"""A voucher's maximum is a uint128, as the paywire ledger's amounts."""

VOUCHER = StructType(
    "Voucher",
    {
        "Voucher": [
            {"name": "channelId", "type": "bytes32"},
            {"name": "maxClaimableAmount", "type": "uint128"},
        ]
    },
)
"""The voucher's EIP-712 type, as the contract's ``VOUCHER_TYPEHASH`` names it."""

_DECIMAL = re.compile(r"[0-9]+")
_BYTES32_TEXT = re.compile(r"0x[0-9a-fA-F]{64}")
_JSON_FIELDS = frozenset({"channelId", "maxClaimableAmount", "signature"})


def voucher_domain(chain_id: int, contract: str) -> Eip712Domain:
    """The EIP-712 domain vouchers of the channel contract at `contract` are signed under."""
    return Eip712Domain(
        name=CHANNELS_NAME, version=CHANNELS_VERSION, chain_id=chain_id, verifying_contract=contract
    )


@functools.lru_cache(maxsize=64)
def _typed(domain: Eip712Domain) -> TypedMessage:
    return TypedMessage(domain, VOUCHER)


@dataclass(frozen=True, slots=True)
class Voucher:
    """The payer's promise that channel `channel_id` may pay up to `max_claimable_amount` in all,
    under `domain` (one channel contract on one chain); `signature` once signed.

    Build one with `ChannelContract.voucher`, or with `voucher_domain` for a contract known
    by address; `sign` returns the signed copy.
    """

    domain: Eip712Domain
    channel_id: bytes
    max_claimable_amount: int
    signature: bytes | None = None
    """65 bytes r || s || v (low s, v in {27, 28}), or None while unsigned."""

    def __post_init__(self) -> None:
        if not isinstance(self.domain, Eip712Domain):
            raise InvalidChannelInput("a voucher's domain is an Eip712Domain (voucher_domain)")
        check_channel_id(self.channel_id)
        check_amount(
            self.max_claimable_amount,
            "voucher maxClaimableAmount",
            bound=MAX_CLAIMABLE,
            error=InvalidChannelInput,
        )
        signature = self.signature
        if signature is not None and (
            not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES
        ):
            raise InvalidChannelInput(f"a voucher signature is {SIGNATURE_BYTES} bytes")

    def message(self) -> dict[str, object]:
        """The EIP-712 message: ``channelId`` and ``maxClaimableAmount``."""
        return {"channelId": self.channel_id, "maxClaimableAmount": self.max_claimable_amount}

    def digest(self) -> bytes:
        """What the payer signs: keccak256(0x1901 || domainSeparator || hashStruct)."""
        return _typed(self.domain).digest(self.message())

    def sign(self, key: PrivateKey) -> Voucher:
        """This voucher signed by `key` (the channel's payer): a new, signed `Voucher`."""
        return replace(self, signature=_typed(self.domain).sign(self.message(), key))

    def recover(self) -> str:
        """Who signed the voucher (checksummed). `BadVoucherSignature` when unsigned,
        malformed or malleable."""
        signature = self._signature()
        try:
            return _typed(self.domain).recover(self.message(), signature)
        except InvalidSignature as problem:
            raise BadVoucherSignature(f"the voucher's {problem.message}") from None

    def verify(self, payer: str) -> None:
        """Check that `payer` signed this voucher (under its domain); `BadVoucherSignature`
        otherwise."""
        signature = self._signature()
        try:
            _typed(self.domain).verify(self.message(), signature, payer)
        except InvalidSignature as problem:
            raise BadVoucherSignature(f"the voucher's {problem.message}") from None

    def typed_data(self) -> dict[str, object]:
        """The full EIP-712 typed data (``eth_signTypedData_v4`` / eth_account form)."""
        return _typed(self.domain).full_message(
            {
                "channelId": "0x" + self.channel_id.hex(),
                "maxClaimableAmount": self.max_claimable_amount,
            }
        )

    def to_json(self) -> dict[str, str]:
        """The wire form (x402 batch-settlement's field names): channel id and signature as
        0x-hex, maxClaimableAmount as decimal text."""
        data = {
            "channelId": "0x" + self.channel_id.hex(),
            "maxClaimableAmount": str(self.max_claimable_amount),
        }
        if self.signature is not None:
            data["signature"] = "0x" + self.signature.hex()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object], domain: Eip712Domain) -> Voucher:
        """Parse the wire form (see `to_json`) of a voucher for the contract of `domain`."""
        if not isinstance(data, Mapping):
            raise InvalidChannelInput("a voucher is a JSON object")
        unknown = sorted(str(key)[:40] for key in data if key not in _JSON_FIELDS)
        if unknown:
            raise InvalidChannelInput(f"unknown voucher fields: {', '.join(unknown[:5])}")
        channel_id, most = data.get("channelId"), data.get("maxClaimableAmount")
        if not isinstance(channel_id, str) or not _BYTES32_TEXT.fullmatch(channel_id):
            raise InvalidChannelInput("a voucher's channelId is 0x and 64 hex digits")
        if isinstance(most, int) and not isinstance(most, bool):
            amount = most
        elif (
            isinstance(most, str)
            and len(most) <= MAX_JSON_INTEGER_CHARS
            and _DECIMAL.fullmatch(most)
        ):
            amount = int(most)
        else:
            raise InvalidChannelInput("a voucher's maxClaimableAmount is a decimal integer as text")
        signature = data.get("signature")
        if signature is not None:
            if not isinstance(signature, str):
                raise InvalidChannelInput("a voucher's signature is 0x-hex text")
            try:
                signature = parse_signature(signature)
            except InvalidSignature as problem:
                raise InvalidChannelInput(f"voucher signature: {problem.message}") from None
        return cls(domain, bytes.fromhex(channel_id[2:]), amount, signature)

    def _signature(self) -> bytes:
        if self.signature is None:
            raise BadVoucherSignature("the voucher is not signed")
        return self.signature


def check_voucher(
    voucher: Voucher, channel: Channel, domain: Eip712Domain, *, charged: int = 0
) -> None:
    """The payee's check of a voucher before serving on it, without calling the chain:
    for this contract and chain (`domain`) and this `channel` (as last read), open, within
    the deposit, covering what was `charged` so far (and what was claimed), signed by the
    payer. Raises the `ChannelRefused` subclass the contract's claim would (or
    `VoucherBelowCharged`, which only the payee can know)."""
    if not isinstance(voucher, Voucher):
        raise InvalidChannelInput("expected a Voucher")
    if voucher.domain != domain:
        raise BadVoucherSignature(
            "the voucher is signed for another channel contract or chain "
            f"({voucher.domain.verifying_contract} on chain {voucher.domain.chain_id})"
        )
    if voucher.channel_id != channel.channel_id:
        raise BadVoucherSignature(
            f"the voucher is for channel 0x{voucher.channel_id.hex()}, "
            f"not 0x{channel.channel_id.hex()}"
        )
    if channel.closed:
        raise ChannelClosed(f"channel 0x{channel.channel_id.hex()} is closed")
    most = voucher.max_claimable_amount
    if most > channel.deposit:
        raise VoucherPastDeposit(f"the voucher's {most} exceeds the deposit of {channel.deposit}")
    if most < charged:
        raise VoucherBelowCharged(f"the voucher's {most} is below the {charged} charged so far")
    if most < channel.claimed:
        raise VoucherNotAboveClaimed(
            f"the voucher's {most} is below the {channel.claimed} already claimed"
        )
    voucher.verify(channel.payer)
