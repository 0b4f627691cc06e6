"""The channel contract's refusals as typed errors, mapped from its revert reasons.

Each is a `TransactionReverted` (the contract refused, or would refuse: paywire raises the
same class before sending when it can tell, e.g. when checking a voucher off chain), with
the contract's `reason` kept verbatim and, for a batch of claims, the `index` of the
voucher that was refused. No web3 here: the voucher checks on the hot path use these.
"""

from __future__ import annotations

from paywire.chain.errors import InvalidChainInput, TransactionReverted


class InvalidChannelInput(InvalidChainInput):
    """A channel call that can never succeed: a zero deposit, a batch too big or empty,
    a payee that is the payer, a voucher that is not one."""

    code = "invalid_channel_input"


class ChannelRefused(TransactionReverted):
    """The channel contract refused the call (or would: checked before sending).

    `reason` is the contract's revert reason ("" when paywire refused it first), `index`
    the position of the refused voucher in a batch of claims (None outside a batch or when
    the batch as a whole was refused).
    """

    code = "channel_refused"

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        tx_hash: str | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message, reason=reason, tx_hash=tx_hash)
        self.index = index


class UnknownChannel(ChannelRefused):
    """No channel has this id (on this contract)."""

    code = "channel_unknown"


class ChannelExists(ChannelRefused):
    """A channel with this id was opened before (pick another salt)."""

    code = "channel_exists"


class ChannelClosed(ChannelRefused):
    """The channel is closed (cooperatively or by the payer's withdrawal): nothing more can
    be claimed, deposited or withdrawn."""

    code = "channel_closed"


class NotPayee(ChannelRefused):
    """Only the channel's payee may claim or close it cooperatively."""

    code = "channel_not_payee"


class NotPayer(ChannelRefused):
    """Only the channel's payer may top it up, request a withdrawal or withdraw."""

    code = "channel_not_payer"


class VoucherPastDeposit(ChannelRefused):
    """The voucher's maximum (or the total claimed on it) is more than the channel's
    deposit."""

    code = "voucher_past_deposit"


class VoucherNotAboveClaimed(ChannelRefused):
    """The total claimed is not above what was already claimed: an old voucher replayed,
    or a claim that adds nothing."""

    code = "voucher_not_above_claimed"


class ClaimExceedsVoucher(ChannelRefused):
    """The total claimed is more than the voucher's maximum (a payee may claim what it
    charged, up to what the payer signed, never more)."""

    code = "claim_exceeds_voucher"


class VoucherBelowCharged(ChannelRefused):
    """The voucher does not cover what the payee has charged so far (an off-chain check of
    the payee: the next voucher must continue from the charged total)."""

    code = "voucher_below_charged"


class BadVoucherSignature(ChannelRefused):
    """The voucher's signature is malformed, malleable (high s), or not the payer's over
    this channel id, this contract and this chain."""

    code = "voucher_bad_signature"


class ChallengePeriodNotOver(ChannelRefused):
    """The payer asked to withdraw too recently: the payee still has time to claim."""

    code = "channel_challenge_period_not_over"


class WithdrawalNotRequested(ChannelRefused):
    """The payer must request a withdrawal (and wait the challenge period) first."""

    code = "channel_withdrawal_not_requested"


class WithdrawalAlreadyRequested(ChannelRefused):
    """A withdrawal is already requested: the deposit is frozen until it completes."""

    code = "channel_withdrawal_requested"


class ChannelFundingFailed(ChannelRefused):
    """The token refused to move the deposit: too small an allowance or balance."""

    code = "channel_funding_failed"


# Revert reasons (a fragment each) -> the error raised for them; the first match wins.
_REVERTS: tuple[tuple[str, type[ChannelRefused]], ...] = (
    ("no such channel", UnknownChannel),
    ("channel exists", ChannelExists),
    ("channel is closed", ChannelClosed),
    ("caller is not the payee", NotPayee),
    ("caller is not the payer", NotPayer),
    ("voucher exceeds the deposit", VoucherPastDeposit),
    ("voucher is not above the claimed total", VoucherNotAboveClaimed),
    ("voucher is below the claimed total", VoucherNotAboveClaimed),
    ("claim exceeds the voucher", ClaimExceedsVoucher),
    ("invalid signature", BadVoucherSignature),
    ("challenge period is not over", ChallengePeriodNotOver),
    ("no withdrawal requested", WithdrawalNotRequested),
    ("withdrawal already requested", WithdrawalAlreadyRequested),
    ("exceeds allowance", ChannelFundingFailed),
    ("exceeds balance", ChannelFundingFailed),
    ("deposit overflows", ChannelFundingFailed),
)


def channel_error(
    reason: str,
    *,
    tx_hash: str | None = None,
    index: int | None = None,
    what: str = "the channel contract refused the call",
) -> ChannelRefused:
    """The typed error for a revert `reason` of the channel contract (or of its token)."""
    lowered = reason.lower()
    kind = next((error for fragment, error in _REVERTS if fragment in lowered), ChannelRefused)
    where = "" if index is None else f" (voucher {index} of the batch)"
    message = f"{what}{where}: {reason}" if reason else f"{what}{where}"
    return kind(message, reason=reason, tx_hash=tx_hash, index=index)
