"""Withdrawals from the reserve: a hold on the wallet's ledger account, an EIP-3009
transfer by the reserve whose nonce is derived from the withdrawal id, then the hold
posted, or voided once that nonce is provably dead; never both."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from paywire.chain.base._values import ZERO_ADDRESS, Receipt
from paywire.chain.eip3009 import Authorization
from paywire.chain.errors import (
    ChainError,
    InvalidChainInput,
    TransactionPending,
    TransactionReverted,
    WithdrawalFailed,
    WithdrawalPending,
)
from paywire.chain.reserve._accounts import _address, withdrawal_nonce
from paywire.chain.reserve._base import ReserveBase
from paywire.ledger import HoldState, Transfer, TransferCode, hold, post, void
from paywire.ledger.model import check_id
from paywire.money import MAX_ATOMIC

# The package's logger: deposits and withdrawals log under one name.
log = logging.getLogger("paywire.chain.reserve")

MAX_WITHDRAWAL_ID_CHARS = 100
"""A withdrawal id with its ledger prefix and suffix must stay within a 128-char ledger id."""

WITHDRAWAL_VALIDITY_S = 600
"""How long the reserve's signed withdrawal transfer may be mined: long enough for a
congested chain, short enough that a stuck withdrawal resolves within minutes."""


# ----- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A finished withdrawal: the posted hold and the chain transfer that paid it."""

    id: str
    to: str
    value: int
    hold: Transfer
    post: Transfer
    tx_hash: str


class ReserveWithdrawals(ReserveBase):
    """The withdrawals of `Reserve`: never paid twice, never both paid and released."""

    # ----- withdrawals ---------------------------------------------------------------------

    def withdraw(
        self,
        withdrawal_id: str,
        wallet: str,
        value: int,
        *,
        to: str | None = None,
        authorization: str | None = None,
    ) -> Withdrawal:
        """Pay `value` from `wallet`'s ledger account to `to` (default: `wallet`) on chain.

        Idempotent by `withdrawal_id`: a retry finishes or reports the first attempt, never
        pays twice. `authorization` (the wallet's signed request, verbatim) is kept on the
        hold. Raises the ledger's `ExceedsCredits` when the wallet lacks the funds,
        `WithdrawalFailed` when the chain transfer cannot happen (the hold is voided:
        nothing lost), `WithdrawalPending` when its outcome is not known yet (the hold stays;
        retry with the same id).
        """
        if not isinstance(withdrawal_id, str) or len(withdrawal_id) > MAX_WITHDRAWAL_ID_CHARS:
            raise InvalidChainInput(
                f"a withdrawal id is text of at most {MAX_WITHDRAWAL_ID_CHARS} characters"
            )
        check_id(withdrawal_id, "withdrawal id")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_ATOMIC:
            raise InvalidChainInput(f"a withdrawal is 1..{MAX_ATOMIC} atomic units")
        payee = _address(wallet if to is None else to)
        if payee == ZERO_ADDRESS:
            raise InvalidChainInput("cannot withdraw to the zero address")
        nonce = withdrawal_nonce(self.chain.network, self.address, withdrawal_id)
        hold_id = f"withdrawal:{withdrawal_id}"
        held = self.ledger.submit(
            hold(
                hold_id,
                self.wallet_account(wallet),
                self.account_id,
                self.asset.atomic(value),
                code=TransferCode.WITHDRAWAL,
                metadata={
                    "network": self.chain.network,
                    "token": self.token.address,
                    "to": payee,
                    "nonce": "0x" + nonce.hex(),
                },
                authorization=authorization,
            )
        )
        status = self.ledger.hold_status(hold_id)
        if status.state is HoldState.POSTED:
            assert status.resolved_by is not None
            posted = self.ledger.transfer(status.resolved_by)
            return Withdrawal(
                withdrawal_id, payee, value, held, posted, str(posted.metadata.get("tx", ""))
            )
        if status.state is not HoldState.PENDING:
            raise WithdrawalFailed(
                f"withdrawal {withdrawal_id} was {status.state} earlier; use a new id to retry"
            )
        receipt = self._pay(withdrawal_id, payee, value, nonce)
        if receipt is None:
            self.ledger.submit(void(f"{hold_id}:void", hold_id, metadata={"nonce": nonce.hex()}))
            raise WithdrawalFailed(
                f"withdrawal {withdrawal_id} could not be paid on chain; "
                "the hold was released, the wallet's balance is unchanged"
            )
        posted = self.ledger.submit(
            post(
                f"{hold_id}:post",
                hold_id,
                metadata={"tx": receipt.tx_hash, "block": receipt.block_number},
            )
        )
        return Withdrawal(withdrawal_id, payee, value, held, posted, receipt.tx_hash)

    def _pay(self, withdrawal_id: str, payee: str, value: int, nonce: bytes) -> Receipt | None:
        """The receipt of the withdrawal's chain transfer, or None once it provably never
        happens. `WithdrawalPending` while that is not known."""
        if self.token.authorization_state(self.address, nonce):
            return self._paid(withdrawal_id, nonce)
        authorization = Authorization(
            from_=self.address,
            to=payee,
            value=value,
            valid_after=0,
            valid_before=int(time.time()) + WITHDRAWAL_VALIDITY_S,
            nonce=nonce,
        )
        signature = self.token.sign_transfer(self.key, authorization)
        try:
            tx_hash = self.token.send_transfer_with_authorization(
                authorization, signature, key=self.key
            )
        except TransactionReverted as error:
            log.warning("withdrawal %s refused by the token: %s", withdrawal_id, error.reason)
            return self._cancel(withdrawal_id, nonce)
        except ChainError as error:
            raise WithdrawalPending(
                f"withdrawal {withdrawal_id}: the chain did not take the transfer ({error}); "
                "retry with the same id"
            ) from None
        try:
            return self.token.confirm_transfer(
                tx_hash, authorization, confirmations=self.confirmations
            )
        except TransactionPending:
            raise WithdrawalPending(
                f"withdrawal {withdrawal_id}: transaction {tx_hash} is not confirmed yet; "
                "retry with the same id"
            ) from None
        except TransactionReverted:
            return self._cancel(withdrawal_id, nonce)

    def _paid(self, withdrawal_id: str, nonce: bytes) -> Receipt | None:
        used = self.token.authorization_used_log(self.address, nonce)
        if used is None:
            return None  # canceled by an earlier attempt: it never paid
        try:
            receipt = self.chain.wait(used.tx_hash, confirmations=self.confirmations)
        except TransactionPending:
            raise WithdrawalPending(
                f"withdrawal {withdrawal_id}: transaction {used.tx_hash} is not confirmed yet"
            ) from None
        return receipt

    def _cancel(self, withdrawal_id: str, nonce: bytes) -> Receipt | None:
        """Burn the withdrawal's nonce so no signed copy can ever pay it, then report None;
        if it turns out to be used after all, the receipt of the transfer that used it."""
        signature = self.token.sign_cancel(self.key, nonce)
        try:
            self.token.cancel_authorization(self.address, nonce, signature, key=self.key)
        except TransactionReverted:
            if self.token.authorization_state(self.address, nonce):
                return self._paid(withdrawal_id, nonce)
            raise WithdrawalPending(
                f"withdrawal {withdrawal_id}: its nonce could not be canceled; retry"
            ) from None
        except ChainError as error:
            raise WithdrawalPending(
                f"withdrawal {withdrawal_id}: canceling its nonce failed ({error}); retry"
            ) from None
        return None
