"""`Reserve`: the operator's reserve of one token on one chain, with its deposits and its
withdrawals."""

from __future__ import annotations

from paywire.chain.reserve._deposits import ReserveDeposits
from paywire.chain.reserve._withdrawals import ReserveWithdrawals


class Reserve(ReserveDeposits, ReserveWithdrawals):
    """The operator's reserve of one token on one chain, mirrored in a ledger.

    `key` is the reserve address's key: it receives deposits (``receiveWithAuthorization``
    must be submitted by the payee), signs withdrawals and pays their gas, so the address
    needs the chain's native coin. `asset` defaults to the token's symbol and decimals.
    `confirmations` (default: the chain's) is the depth before a deposit is credited.
    """
