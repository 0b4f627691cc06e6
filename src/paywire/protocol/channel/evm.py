"""`EvmChannelBackend`: a provider's channels in paywire's channel contract on an EVM chain.

Vouchers are the contract's (EIP-712 ``Voucher(bytes32 channelId,uint128
maxClaimableAmount)`` in its domain), so the provider verifies them as on the ledger, in
memory; the chain is read once per channel (and again only when a voucher passes the
deposit it knew: a top-up). Claims go out as one ``claim_many`` transaction for up to
`MAX_CLAIM_BATCH` channels (paid to the payee in one token transfer); a claim the contract
refuses is named by its index, dropped, and the rest sent again, so one bad channel costs
the others nothing. A close is one ``close`` transaction per channel.

A channel whose payer asked to withdraw must be claimed before the challenge period ends:
its `ChannelInfo.expires_at` is then the time the payer may withdraw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from paywire.chain.channels import (
    MAX_CLAIM_BATCH,
    BadVoucherSignature,
    ChannelClosed,
    ChannelContract,
    ChannelRefused,
    ClaimExceedsVoucher,
    NotPayee,
    UnknownChannel,
    Voucher,
    VoucherPastDeposit,
)
from paywire.crypto.keys import PrivateKey
from paywire.money import Asset
from paywire.protocol.channel.backends import ChannelInfo
from paywire.protocol.channel.ledger_wire import ClaimEntry, ClaimOutcome
from paywire.protocol.channel.wire import (
    CHANNEL_CLOSED,
    CHANNEL_PAYEE,
    CHANNEL_UNKNOWN,
    CHARGE_EXCEEDS_VOUCHER,
    CLAIM_REFUSED,
    VOUCHER_PAST_DEPOSIT,
    VOUCHER_SIGNATURE,
)

_REASONS: tuple[tuple[type[ChannelRefused], str], ...] = (
    (UnknownChannel, CHANNEL_UNKNOWN),
    (ChannelClosed, CHANNEL_CLOSED),
    (NotPayee, CHANNEL_PAYEE),
    (VoucherPastDeposit, VOUCHER_PAST_DEPOSIT),
    (BadVoucherSignature, VOUCHER_SIGNATURE),
    (ClaimExceedsVoucher, CHARGE_EXCEEDS_VOUCHER),
)


def _reason(error: ChannelRefused) -> str:
    return next((reason for kind, reason in _REASONS if isinstance(error, kind)), CLAIM_REFUSED)


class EvmChannelBackend:
    """The channels of `contract` paying `payee_key`'s address, in `asset` (the ledger
    asset the contract's token counts as)."""

    max_claims = MAX_CLAIM_BATCH

    def __init__(self, contract: ChannelContract, payee_key: PrivateKey, asset: Asset) -> None:
        self.contract = contract
        self._key = payee_key
        self.network = contract.chain.network
        self.asset = asset
        self.asset_id = contract.token.address
        self.receiver = payee_key.address
        self.domain = contract.domain
        self.withdraw_delay_s = contract.challenge_period_s

    def requirements_extra(self) -> dict[str, Any]:
        return {"channelContract": self.contract.address}

    async def channel(self, channel_id: str) -> ChannelInfo | None:
        return await asyncio.to_thread(self._channel, channel_id)

    def _channel(self, channel_id: str) -> ChannelInfo | None:
        found = self.contract.find_channel(bytes.fromhex(channel_id[2:]))
        if found is None:
            return None
        return ChannelInfo(
            channel_id=channel_id,
            network=self.network,
            asset=self.asset,
            asset_id=self.asset_id,
            payer=found.payer,
            receiver=found.payee,
            deposit=found.deposit,
            claimed=found.claimed,
            expires_at=self.contract.withdrawable_at(found),
            closed=found.closed,
            domain=self.domain,
        )

    async def claim(self, claims: Sequence[ClaimEntry]) -> list[ClaimOutcome]:
        return await asyncio.to_thread(self._claim, list(claims))

    def _claim(self, claims: list[ClaimEntry]) -> list[ClaimOutcome]:
        outcomes: dict[int, ClaimOutcome] = {}
        pending: list[int] = []
        for index, entry in enumerate(claims):
            cid = "0x" + entry.channel_id.hex()
            state = self.contract.find_channel(entry.channel_id)
            if state is None:
                outcomes[index] = ClaimOutcome(cid, False, 0, reason=CHANNEL_UNKNOWN)
            elif state.closed or (entry.total <= state.claimed and not entry.close):
                ok = entry.total <= state.claimed
                outcomes[index] = ClaimOutcome(
                    cid,
                    ok,
                    state.claimed,
                    state.deposit,
                    closed=state.closed,
                    reason=None if ok else CHANNEL_CLOSED,
                )
            elif entry.close:
                outcomes[index] = self._close(entry, state.deposit, state.claimed)
            else:
                pending.append(index)
        while pending:
            batch = [claims[i] for i in pending]
            vouchers = [
                Voucher(self.domain, e.channel_id, e.max_claimable, e.voucher_signature)
                for e in batch
            ]
            try:
                result = self.contract.claim_many(self._key, vouchers, [e.total for e in batch])
            except ChannelRefused as error:
                culprit = pending[error.index] if error.index is not None else pending[0]
                entry = claims[culprit]
                outcomes[culprit] = ClaimOutcome(
                    "0x" + entry.channel_id.hex(),
                    False,
                    0,
                    reason=_reason(error),
                    message=error.message,
                )
                pending.remove(culprit)
                continue
            for index, entry in zip(pending, batch, strict=True):
                outcomes[index] = ClaimOutcome(
                    "0x" + entry.channel_id.hex(),
                    True,
                    entry.total,
                    transfer=result.receipt.tx_hash,
                )
            pending = []
        return [outcomes[index] for index in range(len(claims))]

    def _close(self, entry: ClaimEntry, deposit: int, claimed: int) -> ClaimOutcome:
        cid = "0x" + entry.channel_id.hex()
        voucher = Voucher(
            self.domain, entry.channel_id, entry.max_claimable, entry.voucher_signature
        )
        try:
            if entry.total <= claimed:  # nothing more to claim: no voucher needed
                closed = self.contract.close(self._key, entry.channel_id)
            else:
                closed = self.contract.close(self._key, entry.channel_id, voucher, entry.total)
        except ChannelRefused as error:
            return ClaimOutcome(cid, False, 0, reason=_reason(error), message=error.message)
        return ClaimOutcome(
            cid, True, closed.claimed, deposit, closed=True, transfer=closed.receipt.tx_hash
        )

    async def aclose(self) -> None:
        return None
