"""The chain layer's typed errors: each has a stable `code` and a message that says what to
do. Revert reasons from the token contract are kept verbatim in `TransactionReverted.reason`.
"""

from __future__ import annotations

from paywire.errors import InvalidInput, PaywireError


class ChainError(PaywireError):
    """An operation on an EVM chain failed."""

    code = "chain_error"


class ChainUnavailable(ChainError):
    """The chain's JSON-RPC endpoint did not answer, or answered nonsense."""

    code = "chain_unavailable"


class ChainIdMismatch(ChainError):
    """The endpoint serves another chain than the one configured."""

    code = "chain_id_mismatch"


class ContractCompileFailed(ChainError):
    """The Vyper compiler refused a contract (or is not installed)."""

    code = "contract_compile_failed"


class TransactionReverted(ChainError):
    """A call or transaction reverted; `reason` is the contract's message ("" if none)."""

    code = "transaction_reverted"

    def __init__(self, message: str, *, reason: str = "", tx_hash: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.tx_hash = tx_hash


class TransactionPending(ChainError):
    """A transaction was sent but its receipt (or its confirmations) did not arrive in time.

    It may still be mined: look it up by `tx_hash` before doing anything that assumes it
    failed. The code is x402's ``settlement_pending``.
    """

    code = "settlement_pending"

    def __init__(self, message: str, *, tx_hash: str) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class TransferMismatch(ChainError):
    """A mined transaction's receipt lacks the Transfer event it should have emitted."""

    code = "transfer_event_mismatch"


class FaucetRefused(ChainError):
    """Minting virtual funds was asked of a chain that is not paywire's local demo chain."""

    code = "faucet_refused"


class NoSigner(ChainError):
    """An operation needs a key (to deploy, mint or pay gas) and none was given."""

    code = "no_signer"


class InvalidChainInput(InvalidInput):
    """A value that can never be valid on chain: a malformed address, an amount outside
    uint256 (or the ledger's u128 where it must fit), a nonce of the wrong size."""

    code = "invalid_chain_input"


class InvalidAuthorization(InvalidChainInput):
    """EIP-3009 authorization fields that can never be valid (bad address, out of range)."""

    code = "invalid_authorization"


class DepositRejected(ChainError):
    """A deposit that cannot be credited (wrong payee, wrong token, not a deposit)."""

    code = "deposit_rejected"


class WithdrawalFailed(ChainError):
    """A withdrawal did not happen; its ledger hold was voided, so nothing was lost."""

    code = "withdrawal_failed"


class WithdrawalPending(ChainError):
    """A withdrawal's chain transfer is in flight; retry with the same id to finish it."""

    code = "withdrawal_pending"
