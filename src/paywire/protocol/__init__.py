"""HTTP 402 payments, compatible with x402 v2: wire, schemes, facilitator, receipts.

The wire models are the official `x402` SDK's; paywire adds hardened header decoding
(`headers`), the `exact` scheme on its own ledger network (`ledger_network`) and on EVM
chains (`evm_exact`: EIP-3009, recorded in the ledger too), the `Facilitator` (in process)
and `RemoteFacilitator` (over HTTP), and signed `Receipt`s.
"""

from paywire.protocol.authorization import Authorization, sign_authorization
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.evm_exact import (
    EvmExactScheme,
    EvmSettled,
    evm_account_id,
    evm_chain_id,
    evm_payment_id,
    is_evm_network,
    network_from_v1,
    v1_network_name,
)
from paywire.protocol.facilitator import Facilitator, FacilitatorLike, SchemeHandler
from paywire.protocol.ledger_network import (
    LedgerExactScheme,
    is_ledger_network,
    ledger_domain,
    ledger_network,
    payment_transfer_id,
)
from paywire.protocol.receipts import RECEIPT_EXTENSION, InvalidReceipt, Receipt, check_receipt
from paywire.protocol.remote import FacilitatorUnavailable, RemoteFacilitator

__all__ = [
    "RECEIPT_EXTENSION",
    "Authorization",
    "EvmExactScheme",
    "EvmSettled",
    "Facilitator",
    "FacilitatorLike",
    "FacilitatorUnavailable",
    "InvalidReceipt",
    "LedgerExactScheme",
    "PaymentProblem",
    "Receipt",
    "RemoteFacilitator",
    "SchemeHandler",
    "check_receipt",
    "evm_account_id",
    "evm_chain_id",
    "evm_payment_id",
    "is_evm_network",
    "is_ledger_network",
    "ledger_domain",
    "ledger_network",
    "network_from_v1",
    "payment_transfer_id",
    "sign_authorization",
    "v1_network_name",
]
