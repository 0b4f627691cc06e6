"""`ChannelContract`: payment channels on an EVM chain. The payer opens, tops up, signs
vouchers and (if its payee is gone) withdraws after the challenge period; the payee checks
vouchers off chain, then claims them, one or many per transaction (simulate, send,
confirm), or closes the channel cooperatively."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from paywire.chain._checks import check_address, check_amount
from paywire.chain.base._values import Receipt
from paywire.chain.channels._errors import (
    BadVoucherSignature,
    ChannelRefused,
    ClaimExceedsVoucher,
    InvalidChannelInput,
)
from paywire.chain.channels._handle import (
    CLAIM_MANY_BASE_GAS,
    CLAIM_MANY_GAS_PER_VOUCHER,
    GAS_BOUNDS,
    ChannelsHandle,
)
from paywire.chain.channels._state import (
    CHANNEL_OPENED_TOPIC,
    Channel,
    ClaimedLog,
    check_channel_id,
    claimed_logs,
    closed_log,
    compute_channel_id,
    new_salt,
)
from paywire.chain.channels._voucher import Voucher, check_voucher
from paywire.chain.errors import ChainError, TransferMismatch
from paywire.crypto import PrivateKey

MAX_DEPOSIT = 2**128 - 1
"""A channel's deposit is a uint128 in the contract, as the paywire ledger's amounts."""

MAX_CLAIM_BATCH = 64
"""Claims in one ``claim_many`` (the contract's bound): ~1.3M gas, well inside a block."""


@dataclass(frozen=True, slots=True)
class Opened:
    """A channel just opened: its id, who pays whom, the deposit, and the receipt."""

    channel_id: bytes
    payer: str
    payee: str
    deposit: int
    receipt: Receipt


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """Claims settled in one transaction: `total` paid to the payee, one `ClaimedLog` per
    voucher, in the order given."""

    total: int
    claims: tuple[ClaimedLog, ...]
    receipt: Receipt


@dataclass(frozen=True, slots=True)
class Closed:
    """A channel closed: `claimed` went to the payee over its life, `refunded` back to the
    payer at the end; `cooperative` when the payee closed it (else the payer withdrew)."""

    channel_id: bytes
    claimed: int
    refunded: int
    cooperative: bool
    receipt: Receipt


class ChannelContract(ChannelsHandle):
    """The paywire channel contract at `address` on `chain` (or `ChannelContract.deploy`).

    Writes take the key of whoever the contract requires (payer or payee) and wait for the
    receipt; refusals raise the `ChannelRefused` subclass of the contract's revert reason
    before any gas is spent (calls are simulated first).
    """

    # ----- vouchers (no chain call) --------------------------------------------------------

    def channel_id(self, payer: str, payee: str, salt: bytes) -> bytes:
        """The id `payer`'s channel to `payee` with `salt` gets (known before it is open)."""
        return compute_channel_id(
            self.chain.chain_id, self.address, self.token.address, payer, payee, salt
        )

    def voucher(self, channel_id: bytes, max_claimable_amount: int) -> Voucher:
        """An unsigned voucher for up to `max_claimable_amount` in all on `channel_id`."""
        return Voucher(self.domain, channel_id, max_claimable_amount)

    def sign_voucher(
        self, key: PrivateKey, channel_id: bytes, max_claimable_amount: int
    ) -> Voucher:
        """The payer's (`key`'s) signed voucher for up to `max_claimable_amount` in all on
        `channel_id`."""
        return self.voucher(channel_id, max_claimable_amount).sign(key)

    def check_voucher(
        self, voucher: Voucher, channel: Channel | None = None, *, charged: int = 0
    ) -> Channel:
        """The payee's check before serving on `voucher` (see `check_voucher`): against
        `channel` as given, or as read now. Returns the channel checked against."""
        if channel is None:
            channel = self.channel(voucher.channel_id)
        check_voucher(voucher, channel, self.domain, charged=charged)
        return channel

    # ----- the payer -----------------------------------------------------------------------

    def open(
        self,
        key: PrivateKey,
        payee: str,
        amount: int,
        *,
        salt: bytes | None = None,
        approve: bool = True,
    ) -> Opened:
        """Open a channel from `key` to `payee` with `amount` (atomic units of the token).

        With `approve`, `key` first approves the contract for `amount` if its allowance is
        short (a second transaction). `salt` defaults to a fresh random one.
        """
        key = self._signer(key)
        payee = check_address(payee, "payee", InvalidChannelInput)
        deposit = self._positive(amount, "deposit")
        if payee == key.address:
            raise InvalidChannelInput("a channel's payee cannot be its payer")
        salt = new_salt() if salt is None else salt
        channel_id = self.channel_id(key.address, payee, salt)
        if approve:
            self._approve(key, deposit)
        receipt = self._transact(
            key, "open", ["address", "uint256", "bytes32"], [payee, deposit, salt]
        )
        if not any(
            log.address == self.address and log.topics[:2] == (CHANNEL_OPENED_TOPIC, channel_id)
            for log in receipt.logs
        ):
            raise ChainError(
                f"transaction {receipt.tx_hash} opened no channel 0x{channel_id.hex()}"
            )
        return Opened(channel_id, key.address, payee, deposit, receipt)

    def top_up(
        self, key: PrivateKey, channel_id: bytes, amount: int, *, approve: bool = True
    ) -> Receipt:
        """Add `amount` to `key`'s open channel (refused once a withdrawal is requested)."""
        added = self._positive(amount, "top-up")
        check_channel_id(channel_id)
        if approve:
            self._approve(key, added)
        return self._transact(key, "top_up", ["bytes32", "uint256"], [channel_id, added])

    def request_withdrawal(self, key: PrivateKey, channel_id: bytes) -> Receipt:
        """Start the challenge period, after which the payer (`key`) may `withdraw`."""
        return self._transact(
            key, "request_withdrawal", ["bytes32"], [check_channel_id(channel_id)]
        )

    def withdraw(self, key: PrivateKey, channel_id: bytes) -> Closed:
        """After the challenge period: close the channel, refunding the payer (`key`) what
        was not claimed."""
        receipt = self._transact(key, "withdraw", ["bytes32"], [check_channel_id(channel_id)])
        return self._closed(receipt, channel_id)

    # ----- the payee -----------------------------------------------------------------------
    #
    # A claim is a voucher and the total to claim on it (`totals`, one per voucher; None:
    # each voucher's maximum): the payee claims what it charged, at most what was signed.

    def simulate_claim(
        self,
        payee: str,
        vouchers: Voucher | Sequence[Voucher],
        totals: Sequence[int] | None = None,
    ) -> int:
        """What claiming `vouchers` (up to `totals`) now would pay `payee` (one ``eth_call``
        from the payee, which holds gas money as it must to claim), or the typed refusal
        (with the `index` of the refused claim of a batch)."""
        batch = self._batch(vouchers, totals)
        sender = check_address(payee, "payee", InvalidChannelInput)
        try:
            result = self._simulate(sender, self._claim_data(batch))
        except ChannelRefused as error:
            raise self._culprit(sender, batch, error) from None
        return int.from_bytes(result[:32], "big")

    def send_claim(
        self,
        key: PrivateKey,
        vouchers: Voucher | Sequence[Voucher],
        totals: Sequence[int] | None = None,
    ) -> str:
        """Broadcast the claim of one voucher (``claim``) or several (``claim_many``, all or
        nothing) by the payee `key`; the tx hash, without waiting."""
        batch = self._batch(vouchers, totals)
        gas = (
            GAS_BOUNDS["claim"]
            if len(batch) == 1
            else CLAIM_MANY_BASE_GAS + CLAIM_MANY_GAS_PER_VOUCHER * len(batch)
        )
        try:
            return self._send(key, self._claim_data(batch), gas)
        except ChannelRefused as error:
            raise self._culprit(key.address, batch, error) from None

    def confirm_claim(
        self,
        tx_hash: str,
        payee: str,
        vouchers: Voucher | Sequence[Voucher],
        totals: Sequence[int] | None = None,
        *,
        confirmations: int | None = None,
        timeout_s: float | None = None,
    ) -> ClaimResult:
        """Wait for a claim sent by `send_claim` and check its receipt: one Claimed event
        per claim (same channel, same total, in order) and the token's Transfer of their
        sum to `payee`; `TransferMismatch` otherwise."""
        batch = self._batch(vouchers, totals)
        receipt = self._confirm(
            tx_hash,
            payee,
            self._claim_data(batch),
            confirmations=confirmations,
            timeout_s=timeout_s,
        )
        claims = tuple(claimed_logs(receipt.logs, self.address))
        if len(claims) != len(batch) or any(
            (log.channel_id, log.claimed, log.payee) != (v.channel_id, total, payee)
            for log, (v, total) in zip(claims, batch, strict=False)
        ):
            raise TransferMismatch(
                f"transaction {tx_hash} does not carry the Claimed events of its vouchers"
            )
        paid = sum(log.amount for log in claims)
        self.token.check_transfer(receipt, self.address, payee, paid)
        return ClaimResult(paid, claims, receipt)

    def claim(self, key: PrivateKey, voucher: Voucher, total: int | None = None) -> ClaimResult:
        """Claim `total` (None: the voucher's maximum) on one voucher as the payee `key`:
        send, wait, check."""
        totals = None if total is None else [total]
        tx_hash = self.send_claim(key, voucher, totals)
        return self.confirm_claim(tx_hash, key.address, voucher, totals)

    def claim_many(
        self, key: PrivateKey, vouchers: Sequence[Voucher], totals: Sequence[int] | None = None
    ) -> ClaimResult:
        """Claim on up to `MAX_CLAIM_BATCH` vouchers in one transaction, all or nothing, as
        the payee `key` of every channel; paid in one transfer."""
        if isinstance(vouchers, Voucher):
            raise InvalidChannelInput("claim_many takes a sequence of vouchers")
        tx_hash = self.send_claim(key, vouchers, totals)
        return self.confirm_claim(tx_hash, key.address, vouchers, totals)

    def close(
        self,
        key: PrivateKey,
        channel_id: bytes,
        voucher: Voucher | None = None,
        total: int | None = None,
    ) -> Closed:
        """Close the channel as its payee (`key`): claim `total` (None: the voucher's
        maximum) on `voucher` (None: claim nothing more) and refund the rest of the deposit
        to the payer."""
        check_channel_id(channel_id)
        if voucher is None:
            claimed = self.channel(channel_id).claimed
            most, claimed_total, signature = claimed, claimed, b""
        else:
            self._check_signed(voucher)
            if voucher.channel_id != channel_id:
                raise BadVoucherSignature("the voucher is for another channel")
            most, signature = voucher.max_claimable_amount, voucher.signature or b""
            claimed_total = most if total is None else self._total(voucher, total, None)
        receipt = self._transact(
            key,
            "close",
            ["bytes32", "uint128", "uint128", "bytes"],
            [channel_id, most, claimed_total, signature],
        )
        return self._closed(receipt, channel_id)

    # ----- plumbing ------------------------------------------------------------------------

    def _positive(self, amount: object, what: str) -> int:
        value = check_amount(amount, what, bound=MAX_DEPOSIT, error=InvalidChannelInput)
        if value == 0:
            raise InvalidChannelInput(f"a {what} is at least 1 atomic unit")
        return value

    def _approve(self, key: PrivateKey, amount: int) -> None:
        if self.token.allowance(key.address, self.address) < amount:
            self.token.approve(key, self.address, amount)

    def _check_signed(self, voucher: Voucher) -> None:
        if not isinstance(voucher, Voucher):
            raise InvalidChannelInput("expected a Voucher")
        if voucher.domain != self.domain:
            raise BadVoucherSignature(
                f"the voucher is signed for another contract or chain, not {self.address} "
                f"on {self.chain.network}"
            )
        if voucher.signature is None:
            raise BadVoucherSignature("the voucher is not signed")

    def _total(self, voucher: Voucher, total: object, index: int | None) -> int:
        value = check_amount(total, "claim total", bound=MAX_DEPOSIT, error=InvalidChannelInput)
        if value > voucher.max_claimable_amount:
            where = "" if index is None else f" (claim {index} of the batch)"
            raise ClaimExceedsVoucher(
                f"the claim of {value}{where} exceeds the voucher's {voucher.max_claimable_amount}",
                index=index,
            )
        return value

    def _batch(
        self, vouchers: Voucher | Sequence[Voucher], totals: Sequence[int] | None
    ) -> tuple[tuple[Voucher, int], ...]:
        batch = (vouchers,) if isinstance(vouchers, Voucher) else tuple(vouchers)
        if not 1 <= len(batch) <= MAX_CLAIM_BATCH:
            raise InvalidChannelInput(f"claim 1..{MAX_CLAIM_BATCH} vouchers at a time")
        for voucher in batch:
            self._check_signed(voucher)
        if totals is None:
            return tuple((v, v.max_claimable_amount) for v in batch)
        if isinstance(totals, int) or len(totals) != len(batch):
            raise InvalidChannelInput("give one claim total per voucher")
        return tuple(
            (v, self._total(v, total, None if len(batch) == 1 else index))
            for index, (v, total) in enumerate(zip(batch, totals, strict=True))
        )

    def _claim_data(self, batch: tuple[tuple[Voucher, int], ...]) -> bytes:
        if len(batch) == 1:
            ((v, total),) = batch
            return self._data(
                "claim",
                ["bytes32", "uint128", "uint128", "bytes"],
                [v.channel_id, v.max_claimable_amount, total, v.signature],
            )
        return self._data(
            "claim_many",
            ["bytes32[]", "uint128[]", "uint128[]", "bytes[]"],
            [
                [v.channel_id for v, _ in batch],
                [v.max_claimable_amount for v, _ in batch],
                [total for _, total in batch],
                [v.signature for v, _ in batch],
            ],
        )

    def _culprit(
        self, sender: str, batch: tuple[tuple[Voucher, int], ...], error: ChannelRefused
    ) -> ChannelRefused:
        """For a refused batch: the refusal of the first claim refused on its own, with
        its index (else the batch's own error: e.g. one channel twice, not increasing)."""
        if len(batch) == 1:
            return error
        for index, claim in enumerate(batch):
            try:
                self._simulate(sender, self._claim_data((claim,)), index=index)
            except ChannelRefused as single:
                single.tx_hash = error.tx_hash
                return single
        return error

    def _closed(self, receipt: Receipt, channel_id: bytes) -> Closed:
        log = closed_log(receipt.logs, self.address, channel_id)
        if log is None:
            raise ChainError(f"transaction {receipt.tx_hash} closed no channel")
        return Closed(channel_id, log.claimed, log.refunded, log.cooperative, receipt)
