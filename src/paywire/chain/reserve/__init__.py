"""Deposits, withdrawals and the reserves check: the bridge between a chain and the ledger.

The operator holds stablecoin at a **reserve address** on chain. The ledger mirrors it with
one external account per (network, token), ``reserve:<network>:<token>``; each wallet has
an agent account ``<address>:<ASSET>`` (`paywire.ledger.names`). Then:

- a **deposit** moves tokens from a wallet to the reserve on chain, and credits the
  wallet's ledger account from the reserve account, once: the ledger transfer's id is
  ``deposit:<network>:<tx hash>:<log index>``, so the two ways in (the operator submitting
  the wallet's EIP-3009 ``receiveWithAuthorization``, and the watcher finding a plain
  ERC-20 transfer to the reserve in the logs) credit the same transfer exactly once, only
  after `confirmations` blocks;
- a **withdrawal** holds the amount on the wallet's ledger account, moves it from the
  reserve to the address on chain, then posts the hold; if the chain transfer cannot
  happen the hold is voided. Never both: the chain transfer is an EIP-3009 authorization
  by the reserve whose nonce is derived from the withdrawal id, so the chain itself says
  whether it happened (``authorizationState``), a retry can never pay twice, and a void
  comes only after that nonce is provably dead (used by nobody, then canceled on chain);
- the **reserves check**: per asset, the ledger's liabilities (what its non-external
  accounts hold) must not exceed what the reserves hold on chain.
"""

from __future__ import annotations

from paywire.chain.reserve._accounts import (
    deposit_transfer_id,
    open_wallet_account,
    withdrawal_nonce,
)
from paywire.chain.reserve._check import (
    AssetReserves,
    ReserveBalance,
    ReservesReport,
    check_reserves,
)
from paywire.chain.reserve._cursor import CursorStore, FileCursor, MemoryCursor
from paywire.chain.reserve._deposits import (
    DEPOSIT_VALIDITY_S,
    MAX_FAUCET_CALL_ATOMIC,
    MAX_SCAN_BLOCKS,
    WATCH_INTERVAL_S,
    Deposit,
    DepositScan,
    SkippedTransfer,
)
from paywire.chain.reserve._reserve import Reserve
from paywire.chain.reserve._withdrawals import (
    MAX_WITHDRAWAL_ID_CHARS,
    WITHDRAWAL_VALIDITY_S,
    Withdrawal,
)

__all__ = [
    "DEPOSIT_VALIDITY_S",
    "MAX_FAUCET_CALL_ATOMIC",
    "MAX_SCAN_BLOCKS",
    "MAX_WITHDRAWAL_ID_CHARS",
    "WATCH_INTERVAL_S",
    "WITHDRAWAL_VALIDITY_S",
    "AssetReserves",
    "CursorStore",
    "Deposit",
    "DepositScan",
    "FileCursor",
    "MemoryCursor",
    "Reserve",
    "ReserveBalance",
    "ReservesReport",
    "SkippedTransfer",
    "Withdrawal",
    "check_reserves",
    "deposit_transfer_id",
    "open_wallet_account",
    "withdrawal_nonce",
]
