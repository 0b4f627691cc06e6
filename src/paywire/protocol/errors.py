"""Why a payment is refused, in x402's words.

Every refusal carries an x402 error reason (snake_case, e.g. ``invalid_payload``,
``insufficient_funds``), the HTTP status it maps to (400 for a malformed request, 402 for
a payment that is well formed but not acceptable) and a message a person can act on. The
reason travels to the client in `errorReason`/`invalidReason`, so it is never dropped
between facilitator, server and client.
"""

from __future__ import annotations

from typing import ClassVar

from paywire.errors import PaywireError

# x402 error reasons (the spec's, and paywire's own for its ledger network).
INVALID_PAYLOAD = "invalid_payload"
INVALID_X402_VERSION = "invalid_x402_version"
UNSUPPORTED_SCHEME = "unsupported_scheme"
NETWORK_MISMATCH = "network_mismatch"
INVALID_REQUIREMENTS = "invalid_payment_requirements"
INSUFFICIENT_FUNDS = "insufficient_funds"
SETTLEMENT_FAILED = "settlement_failed"
UNEXPECTED_ERROR = "unexpected_settle_error"
EXACT_SIGNATURE = "invalid_exact_paywire_payload_signature"
EXACT_RECIPIENT = "invalid_exact_paywire_payload_recipient_mismatch"
EXACT_VALUE = "invalid_exact_paywire_payload_authorization_value_mismatch"
EXACT_VALID_BEFORE = "invalid_exact_paywire_payload_authorization_valid_before"
EXACT_VALID_AFTER = "invalid_exact_paywire_payload_authorization_valid_after"
EXACT_NONCE_USED = "invalid_exact_paywire_nonce_already_used"
EXACT_ASSET = "invalid_exact_paywire_payload_asset_mismatch"
PAYMENT_ID_CONFLICT = "payment_identifier_conflict"

# x402's EVM error reasons, as the official SDK names them (x402.mechanisms.evm.constants).
EVM_SIGNATURE = "invalid_exact_evm_payload_signature"
EVM_RECIPIENT = "invalid_exact_evm_payload_recipient_mismatch"
EVM_VALUE = "invalid_exact_evm_payload_authorization_value_mismatch"
EVM_VALID_BEFORE = "invalid_exact_evm_payload_authorization_valid_before"
EVM_VALID_AFTER = "invalid_exact_evm_payload_authorization_valid_after"
EVM_NONCE_USED = "invalid_exact_evm_nonce_already_used"
EVM_INSUFFICIENT_BALANCE = "invalid_exact_evm_insufficient_balance"
EVM_MISSING_DOMAIN = "missing_eip712_domain"
EVM_TOKEN_NAME = "invalid_exact_evm_token_name_mismatch"  # noqa: S105 (a reason, not a secret)
EVM_TOKEN_VERSION = "invalid_exact_evm_token_version_mismatch"  # noqa: S105
EVM_UNKNOWN_ASSET = "invalid_exact_evm_failed_to_get_asset_info"
EVM_SIMULATION_FAILED = "invalid_exact_evm_transaction_simulation_failed"
EVM_TRANSFER_EVENT = "invalid_exact_evm_transfer_event_mismatch"
TRANSACTION_FAILED = "transaction_failed"
SETTLEMENT_PENDING = "settlement_pending"
UNEXPECTED_VERIFY = "unexpected_verify_error"


class PaymentProblem(PaywireError):
    """A payment that cannot be accepted; `reason` is the x402 error reason."""

    code: ClassVar[str] = "payment_problem"
    status: int

    def __init__(self, reason: str, message: str, *, status: int = 402) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


def malformed(message: str, reason: str = INVALID_PAYLOAD) -> PaymentProblem:
    """A request that is not a payment at all: HTTP 400."""
    return PaymentProblem(reason, message, status=400)
