"""HTTP 402 payments, compatible with x402 v2: wire, schemes, facilitator, receipts.

The wire models are the official `x402` SDK's; paywire adds hardened header decoding
(`headers`), the `exact` scheme on its own ledger network (`ledger_network`), the
`Facilitator` (in process) and `RemoteFacilitator` (over HTTP), and signed `Receipt`s.
"""

from paywire.protocol.authorization import Authorization, sign_authorization
from paywire.protocol.errors import PaymentProblem
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
    "is_ledger_network",
    "ledger_domain",
    "ledger_network",
    "payment_transfer_id",
    "sign_authorization",
]
