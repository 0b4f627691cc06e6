"""`Chain`: an EVM chain reached through web3, with transactions signed by paywire keys.

The same class drives the in-process chain (`LocalChain`) and any JSON-RPC endpoint
(`RpcChain`); they differ in how they are built and in two switches: whether the chain is
paywire's local demo chain (where the faucet may mint virtual funds) and how long to wait
for receipts.

What this layer adds over web3: typed results (`Receipt`, `Log`), typed errors (a revert
carries the contract's reason), nonces handed out under a lock (so concurrent senders with
one key never collide), EIP-1559 fees where the chain has a base fee (legacy gas price
where it has not), and bounded waits.
"""

from __future__ import annotations

from paywire.chain.base._chain import (
    DEFAULT_PRIORITY_FEE_WEI,
    DEFAULT_RECEIPT_TIMEOUT_S,
    GAS_MARGIN_DENOMINATOR,
    GAS_MARGIN_NUMERATOR,
    MAX_TX_GAS,
    POLL_INTERVAL_S,
    Chain,
)
from paywire.chain.base._failures import ERROR_STRING_SELECTOR, revert_reason_from_data
from paywire.chain.base._reads import MAX_CONFIRMATIONS, MAX_LOG_BLOCK_RANGE, check_confirmations
from paywire.chain.base._values import ZERO_ADDRESS, Log, Receipt

__all__ = [
    "DEFAULT_PRIORITY_FEE_WEI",
    "DEFAULT_RECEIPT_TIMEOUT_S",
    "ERROR_STRING_SELECTOR",
    "GAS_MARGIN_DENOMINATOR",
    "GAS_MARGIN_NUMERATOR",
    "MAX_CONFIRMATIONS",
    "MAX_LOG_BLOCK_RANGE",
    "MAX_TX_GAS",
    "POLL_INTERVAL_S",
    "ZERO_ADDRESS",
    "Chain",
    "Log",
    "Receipt",
    "check_confirmations",
    "revert_reason_from_data",
]
