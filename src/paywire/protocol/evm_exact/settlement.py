"""Settlement of EVM `exact` payments: send ``transferWithAuthorization``, wait for the
receipt, check its Transfer event.

The facilitator's settling key pays the gas. Replay protection is the token's
``authorizationState``: the chain refuses a second use of a nonce, across processes.
Within a process, settlements of one (token, payer, nonce) are serialized, so N
concurrent submissions send one transaction and report one success. A transaction sent
whose receipt is not seen in time answers ``settlement_pending``; settling the same
payment again waits for that transaction instead of sending another.

Every outcome is told to the token's `ChainView`: sending (the money is in flight),
settled in block N (the view subtracts it until it reads that block), refused (nothing
moved: the view forgets it and reads the payer again).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from paywire.chain.errors import (
    ChainError,
    TransactionPending,
    TransactionReverted,
    TransferMismatch,
)
from paywire.crypto.keys import PrivateKey
from paywire.protocol import errors
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.evm_exact.checks import Checked
from paywire.protocol.evm_exact.view import ChainView

if TYPE_CHECKING:
    from paywire.chain.base import Receipt

MAX_PENDING_SETTLEMENTS = 10_000
"""Sent transactions whose receipt was not seen in time, remembered (oldest dropped) so a
retried settle waits for them instead of sending again."""

SettleKey = tuple[str, str, bytes]
"""(token, payer, nonce): one EIP-3009 authorization."""


class _KeyLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class Settler:
    """Sends and confirms settlements with `signer`'s key, one at a time per authorization."""

    def __init__(
        self,
        signer: PrivateKey,
        *,
        confirmations: int | None = None,
        receipt_timeout_s: float | None = None,
    ) -> None:
        self.signer = signer
        self.confirmations = confirmations
        self.receipt_timeout_s = receipt_timeout_s
        self._guard = threading.Lock()
        self._locks: dict[SettleKey, _KeyLock] = {}
        self._pending: OrderedDict[SettleKey, str] = OrderedDict()

    def settle(self, checked: Checked, view: ChainView) -> tuple[str, Receipt]:
        """The transaction hash and receipt of the settled payment; `PaymentProblem` with
        x402's reason if it did not settle (``settlement_pending``: sent, not yet seen)."""
        authorization, token = checked.authorization, checked.known.token
        key = (token.address, authorization.payer, authorization.nonce)
        with self._exclusive(key):
            view.sending(authorization)
            try:
                tx_hash, receipt = self._send_and_confirm(key, checked)
            except PaymentProblem as problem:
                if problem.reason != errors.SETTLEMENT_PENDING:
                    view.refused(authorization)
                raise
            view.settled(authorization, receipt.block_number)
            return tx_hash, receipt

    def _send_and_confirm(self, key: SettleKey, checked: Checked) -> tuple[str, Receipt]:
        from paywire.chain.token import revert_code

        token, on_chain = checked.known.token, checked.on_chain()
        tx_hash = self._pending_tx(key)
        if tx_hash is None:
            try:
                tx_hash = token.send_transfer_with_authorization(
                    on_chain, checked.authorization.signature, key=self.signer
                )
            except TransactionReverted as error:
                raise PaymentProblem(
                    revert_code(error.reason),
                    f"the token refused the transfer: {error.reason or 'reverted'}",
                ) from None
            except ChainError as error:
                raise PaymentProblem(
                    errors.TRANSACTION_FAILED, f"the chain did not take the transfer: {error}"
                ) from None
        try:
            receipt = token.confirm_transfer(
                tx_hash,
                on_chain,
                confirmations=self.confirmations,
                timeout_s=self.receipt_timeout_s,
            )
        except TransactionPending:
            self._remember_pending(key, tx_hash)
            raise PaymentProblem(
                errors.SETTLEMENT_PENDING,
                f"transaction {tx_hash} was sent but is not confirmed yet; settle the same "
                "payment again to wait for it",
            ) from None
        except TransactionReverted as error:
            self._forget_pending(key)
            reason = revert_code(error.reason) if error.reason else errors.TRANSACTION_FAILED
            raise PaymentProblem(
                reason, f"transaction {tx_hash} reverted: {error.reason or 'no reason'}"
            ) from None
        except TransferMismatch as error:
            self._forget_pending(key)
            raise PaymentProblem(errors.EVM_TRANSFER_EVENT, str(error)) from None
        except ChainError as error:
            # Sent, outcome unknown: as pending, so a retry looks at this transaction.
            self._remember_pending(key, tx_hash)
            raise PaymentProblem(
                errors.SETTLEMENT_PENDING,
                f"transaction {tx_hash} was sent; its receipt could not be read ({error})",
            ) from None
        self._forget_pending(key)
        return tx_hash, receipt

    @contextmanager
    def _exclusive(self, key: SettleKey) -> Iterator[None]:
        """One settlement at a time per (token, payer, nonce) in this process."""
        with self._guard:
            entry = self._locks.get(key)
            if entry is None:
                entry = self._locks[key] = _KeyLock()
            entry.users += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._guard:
                entry.users -= 1
                if entry.users == 0:
                    del self._locks[key]

    def _pending_tx(self, key: SettleKey) -> str | None:
        with self._guard:
            return self._pending.get(key)

    def _remember_pending(self, key: SettleKey, tx_hash: str) -> None:
        with self._guard:
            self._pending[key] = tx_hash
            while len(self._pending) > MAX_PENDING_SETTLEMENTS:
                self._pending.popitem(last=False)

    def _forget_pending(self, key: SettleKey) -> None:
        with self._guard:
            self._pending.pop(key, None)
