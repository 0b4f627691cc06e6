"""Payment channels on an EVM chain: pay per AI token with one deposit and many vouchers.

The contract (``paywire_channels.vy``, one deployment per token) holds each channel's
deposit. The payer signs cumulative vouchers, EIP-712 ``Voucher(bytes32 channelId,uint128
maxClaimableAmount)`` (x402 batch-settlement's type); the payee claims, on the latest, the
total it charged (at most the voucher's maximum) whenever it likes (one transaction for up
to `MAX_CLAIM_BATCH` channels), or closes the channel cooperatively; a payer whose payee is
gone requests a withdrawal and takes back what was not claimed after the challenge period,
during which the payee's claims still win.

- `Voucher`, `voucher_domain`, `check_voucher`: signing and checking vouchers (fast EIP-712,
  no chain call, no web3), for the payer's client and the payee's hot path.
- `ChannelContract`: deploy or attach, read channels, and every write, with typed errors
  (`ChannelRefused` and its subclasses) mapped from the contract's revert reasons.

`ChannelContract` and its results import web3 (through the chain layer), so they are
imported on first use; the rest does not.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from paywire.chain.channels._errors import (
    BadVoucherSignature,
    ChallengePeriodNotOver,
    ChannelClosed,
    ChannelExists,
    ChannelFundingFailed,
    ChannelRefused,
    ClaimExceedsVoucher,
    InvalidChannelInput,
    NotPayee,
    NotPayer,
    UnknownChannel,
    VoucherBelowCharged,
    VoucherNotAboveClaimed,
    VoucherPastDeposit,
    WithdrawalAlreadyRequested,
    WithdrawalNotRequested,
    channel_error,
)
from paywire.chain.channels._state import (
    CHANNEL_CLOSED_TOPIC,
    CHANNEL_OPENED_TOPIC,
    CHANNEL_TOPPED_UP_TOPIC,
    CLAIMED_TOPIC,
    WITHDRAWAL_REQUESTED_TOPIC,
    Channel,
    ClaimedLog,
    ClosedLog,
    compute_channel_id,
    new_salt,
)
from paywire.chain.channels._voucher import (
    CHANNELS_NAME,
    CHANNELS_VERSION,
    MAX_CLAIMABLE,
    VOUCHER,
    Voucher,
    check_voucher,
    voucher_domain,
)

if TYPE_CHECKING:
    from paywire.chain.channels._contract import (
        MAX_CLAIM_BATCH,
        MAX_DEPOSIT,
        ChannelContract,
        ClaimResult,
        Closed,
        Opened,
    )
    from paywire.chain.channels._handle import (
        DEFAULT_CHALLENGE_PERIOD_S,
        GAS_BOUNDS,
        MAX_CHALLENGE_PERIOD_S,
        SELECTORS,
    )

_LAZY = {
    "MAX_CLAIM_BATCH": "paywire.chain.channels._contract",
    "MAX_DEPOSIT": "paywire.chain.channels._contract",
    "ChannelContract": "paywire.chain.channels._contract",
    "ClaimResult": "paywire.chain.channels._contract",
    "Closed": "paywire.chain.channels._contract",
    "Opened": "paywire.chain.channels._contract",
    "DEFAULT_CHALLENGE_PERIOD_S": "paywire.chain.channels._handle",
    "GAS_BOUNDS": "paywire.chain.channels._handle",
    "MAX_CHALLENGE_PERIOD_S": "paywire.chain.channels._handle",
    "SELECTORS": "paywire.chain.channels._handle",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paywire.chain.channels' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


__all__ = [
    "CHANNELS_NAME",
    "CHANNELS_VERSION",
    "CHANNEL_CLOSED_TOPIC",
    "CHANNEL_OPENED_TOPIC",
    "CHANNEL_TOPPED_UP_TOPIC",
    "CLAIMED_TOPIC",
    "DEFAULT_CHALLENGE_PERIOD_S",
    "GAS_BOUNDS",
    "MAX_CHALLENGE_PERIOD_S",
    "MAX_CLAIMABLE",
    "MAX_CLAIM_BATCH",
    "MAX_DEPOSIT",
    "SELECTORS",
    "VOUCHER",
    "WITHDRAWAL_REQUESTED_TOPIC",
    "BadVoucherSignature",
    "ChallengePeriodNotOver",
    "Channel",
    "ChannelClosed",
    "ChannelContract",
    "ChannelExists",
    "ChannelFundingFailed",
    "ChannelRefused",
    "ClaimExceedsVoucher",
    "ClaimResult",
    "ClaimedLog",
    "Closed",
    "ClosedLog",
    "InvalidChannelInput",
    "NotPayee",
    "NotPayer",
    "Opened",
    "UnknownChannel",
    "Voucher",
    "VoucherBelowCharged",
    "VoucherNotAboveClaimed",
    "VoucherPastDeposit",
    "WithdrawalAlreadyRequested",
    "WithdrawalNotRequested",
    "channel_error",
    "check_voucher",
    "compute_channel_id",
    "new_salt",
    "voucher_domain",
]
