"""x402 `exact` on EVM chains (``eip155:<chainId>``): EIP-3009 ``transferWithAuthorization``.

The facilitator's side of the scheme x402 defines for stablecoins such as USDC, for one or
more tokens on one chain. The payload is the one the official SDK's client signs::

    {"signature": "0x<65 bytes>",
     "authorization": {"from", "to", "value", "validAfter", "validBefore", "nonce"}}

in the token's EIP-712 domain ``{name: extra.name, version: extra.version, chainId,
verifyingContract: asset}``. One idea per module:

- `networks`: CAIP-2 and x402 version 1 network names.
- `checks`: every check that needs no chain call, in the official facilitator's order
  (scheme, network, chain id, domain fields, recipient, value, time window, signature on
  paywire's EIP-712 fast path, a token this facilitator knows).
- `view`: the facilitator's `ChainView` of each token (balances and spent nonces as of
  the latest block seen, payments in flight here), so verify needs no chain call on a
  warm view; `history` (spent nonces from the token's events) and `inflight` (holds on
  payers' balances) are its parts. ``simulate=True`` adds an ``eth_call`` simulation.
- `settlement`: send ``transferWithAuthorization``, wait for the receipt, check its
  Transfer event; one settlement at a time per authorization; ``settlement_pending`` for
  a transaction whose receipt is late, and a retry waits for it instead of sending again.
- `books`: each settled payment recorded in the ledger between EXTERNAL mirror accounts
  ``evm:<network>:<address>:<ASSET>``, so an agent's spending is in one place whatever
  the network, while the reserves check stays untouched.
- `scheme`: `EvmExactScheme`, which puts them together.
"""

from paywire.ledger.names import evm_account_id
from paywire.protocol.errors import (
    EVM_INSUFFICIENT_BALANCE,
    EVM_MISSING_DOMAIN,
    EVM_NONCE_USED,
    EVM_RECIPIENT,
    EVM_SIGNATURE,
    EVM_SIMULATION_FAILED,
    EVM_TOKEN_NAME,
    EVM_TOKEN_VERSION,
    EVM_TRANSFER_EVENT,
    EVM_UNKNOWN_ASSET,
    EVM_VALID_AFTER,
    EVM_VALID_BEFORE,
    EVM_VALUE,
    SETTLEMENT_PENDING,
    TRANSACTION_FAILED,
    UNEXPECTED_VERIFY,
)
from paywire.protocol.evm_exact.books import EvmSettled, evm_payment_id
from paywire.protocol.evm_exact.checks import MAX_DOMAIN_TEXT_CHARS, MESSAGE_CACHE_SIZE
from paywire.protocol.evm_exact.networks import (
    MAX_CHAIN_ID,
    NETWORK_PREFIX,
    PAYWIRE_LOCAL_CHAIN_ID,
    PAYWIRE_LOCAL_V1_NAME,
    SCHEME,
    V1_NETWORKS,
    evm_chain_id,
    is_evm_network,
    network_from_v1,
    v1_network_name,
)
from paywire.protocol.evm_exact.scheme import EvmExactScheme
from paywire.protocol.evm_exact.settlement import MAX_PENDING_SETTLEMENTS
from paywire.protocol.evm_exact.view import HEAD_POLL_S, ChainView

__all__ = [
    "EVM_INSUFFICIENT_BALANCE",
    "EVM_MISSING_DOMAIN",
    "EVM_NONCE_USED",
    "EVM_RECIPIENT",
    "EVM_SIGNATURE",
    "EVM_SIMULATION_FAILED",
    "EVM_TOKEN_NAME",
    "EVM_TOKEN_VERSION",
    "EVM_TRANSFER_EVENT",
    "EVM_UNKNOWN_ASSET",
    "EVM_VALID_AFTER",
    "EVM_VALID_BEFORE",
    "EVM_VALUE",
    "HEAD_POLL_S",
    "MAX_CHAIN_ID",
    "MAX_DOMAIN_TEXT_CHARS",
    "MAX_PENDING_SETTLEMENTS",
    "MESSAGE_CACHE_SIZE",
    "NETWORK_PREFIX",
    "PAYWIRE_LOCAL_CHAIN_ID",
    "PAYWIRE_LOCAL_V1_NAME",
    "SCHEME",
    "SETTLEMENT_PENDING",
    "TRANSACTION_FAILED",
    "UNEXPECTED_VERIFY",
    "V1_NETWORKS",
    "ChainView",
    "EvmExactScheme",
    "EvmSettled",
    "evm_account_id",
    "evm_chain_id",
    "evm_payment_id",
    "is_evm_network",
    "network_from_v1",
    "v1_network_name",
]
