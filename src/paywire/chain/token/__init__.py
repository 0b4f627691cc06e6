"""`Token`: a typed handle on an EIP-3009 stablecoin (Paywire USD, or USDC on a real chain).

Reads (balances, authorization state), ERC-20 writes, the owner's mint and the local-only
faucet, EIP-3009 signing on paywire's fast EIP-712 path, simulation of a
``transferWithAuthorization`` for verify (``eth_call``: ok, or the revert reason and its
x402 error code), and settlement with a receipt check that the Transfer event moved
exactly the authorized value from the payer to the payee.

Calls are encoded with eth_abi against fixed selectors (no web3 contract objects: they
cost more per call than the call itself on the hot path of verify).
"""

from __future__ import annotations

from paywire.chain.token._authorization import (
    DEFAULT_VALIDITY_S,
    MAX_VALIDITY_S,
    SIMULATION_FAILED,
    Simulation,
    Token,
    revert_code,
)
from paywire.chain.token._contract import (
    AUTHORIZATION_CANCELED_TOPIC,
    AUTHORIZATION_USED_TOPIC,
    GAS_BOUNDS,
    MAX_TOKEN_TEXT_BYTES,
    PAYWIRE_USD_NAME,
    PAYWIRE_USD_SYMBOL,
    PAYWIRE_USD_VERSION,
    TOKEN_DECIMALS,
    TRANSFER_TOPIC,
    TransferLog,
    check_token_text,
    transfer_log,
)
from paywire.chain.token._handle import MAX_FAUCET_ATOMIC

__all__ = [
    "AUTHORIZATION_CANCELED_TOPIC",
    "AUTHORIZATION_USED_TOPIC",
    "DEFAULT_VALIDITY_S",
    "GAS_BOUNDS",
    "MAX_FAUCET_ATOMIC",
    "MAX_TOKEN_TEXT_BYTES",
    "MAX_VALIDITY_S",
    "PAYWIRE_USD_NAME",
    "PAYWIRE_USD_SYMBOL",
    "PAYWIRE_USD_VERSION",
    "SIMULATION_FAILED",
    "TOKEN_DECIMALS",
    "TRANSFER_TOPIC",
    "Simulation",
    "Token",
    "TransferLog",
    "check_token_text",
    "revert_code",
    "transfer_log",
]
