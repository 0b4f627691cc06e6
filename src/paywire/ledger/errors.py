"""The ledger's typed errors, one per way a write can be refused.

Each has a stable `code` (like TigerBeetle's result codes and x402's error reasons) so
callers branch on it, and a message that says what to do.
"""

from __future__ import annotations

from paywire.errors import InvalidInput, NotFound, PaywireError


class LedgerError(PaywireError):
    """A write the ledger refused; nothing of the request was applied."""

    code = "ledger_error"


class InvalidRequest(LedgerError, InvalidInput):
    """A request that can never succeed: malformed ids, bad amounts, oversized metadata."""

    code = "invalid_request"


class AccountNotFound(LedgerError, NotFound):
    code = "account_not_found"


class TransferNotFound(LedgerError, NotFound):
    code = "transfer_not_found"


class AssetMismatch(LedgerError):
    code = "asset_mismatch"


class SameAccount(LedgerError):
    code = "accounts_must_be_different"


class ExceedsCredits(LedgerError):
    """A debit would take a debit-bounded account (a wallet) below zero: an overdraft."""

    code = "exceeds_credits"


class ExceedsDebits(LedgerError):
    """A credit would take a credit-bounded account above its debits."""

    code = "exceeds_debits"


class BalanceOverflow(LedgerError):
    code = "balance_overflow"


class PendingNotFound(LedgerError, NotFound):
    code = "pending_transfer_not_found"


class NotPending(LedgerError):
    """A post or void names a transfer that was not created as pending."""

    code = "pending_transfer_not_pending"


class PendingAlreadyPosted(LedgerError):
    code = "pending_transfer_already_posted"


class PendingAlreadyVoided(LedgerError):
    code = "pending_transfer_already_voided"


class PendingExpired(LedgerError):
    code = "pending_transfer_expired"


class PostExceedsPending(LedgerError):
    code = "exceeds_pending_transfer_amount"


class LimitNotFound(LedgerError, NotFound):
    code = "limit_not_found"


class LimitClosed(LedgerError):
    """A transfer names a spend limit that was closed (revoked): nothing may count against
    it any more."""

    code = "limit_closed"


class LimitExceeded(LedgerError):
    """A transfer would take a spend limit past its cap (in its window, or in all)."""

    code = "limit_exceeded"

    def __init__(
        self,
        limit_id: str,
        cap: int,
        used: int,
        amount: int,
        window_s: int | None,
        *,
        asset_code: str | None = None,
    ) -> None:
        over = used + amount - cap
        unit = f" atomic units of {asset_code}" if asset_code else " atomic units"
        span = "in all" if window_s is None else f"in the last {window_s} s"
        super().__init__(
            f"limit {limit_id!r} would be exceeded by {over}{unit}: {used} of its cap of "
            f"{cap} are used {span}, and the transfer is {amount}"
        )
        self.limit_id = limit_id
        self.cap = cap
        self.used = used
        self.amount = amount
        self.window_s = window_s
        self.over = over

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _limit_exceeded,
            (self.limit_id, self.cap, self.used, self.amount, self.window_s, self.message),
        )


def _limit_exceeded(
    limit_id: str, cap: int, used: int, amount: int, window_s: int | None, message: str
) -> LimitExceeded:
    error = LimitExceeded(limit_id, cap, used, amount, window_s)
    error.message = message
    error.args = (message,)
    return error


class IdempotencyConflict(LedgerError):
    """An id was already used for a different request (the same request would be replayed)."""

    code = "idempotency_conflict"


class LinkedBatchFailed(LedgerError):
    """One transfer of a linked batch failed, so none of them was applied."""

    code = "linked_batch_failed"

    def __init__(self, index: int, cause: LedgerError) -> None:
        super().__init__(f"linked batch refused at transfer {index}: {cause}")
        self.index = index
        self.cause = cause


class TooManyTransfers(LedgerError):
    """A read that returns everything at once found more than its bound; read in pages."""

    code = "too_many_transfers"


class LedgerUnavailable(LedgerError):
    """The ledger is closed, overloaded, or its store failed; the request was not applied."""

    code = "ledger_unavailable"


class StoreCorrupt(LedgerError):
    """The store's contents break an invariant; stop writing and run `paywire ledger verify`."""

    code = "store_corrupt"
