"""The agent's side: httpx clients that pay HTTP 402s within a spending limit."""

from paywire.client.payer import Payer, PaymentDeclined
from paywire.client.transport import (
    RECEIPT,
    PaymentTransport,
    PaywireClient,
    SyncPaymentTransport,
    SyncPaywireClient,
)

__all__ = [
    "RECEIPT",
    "Payer",
    "PaymentDeclined",
    "PaymentTransport",
    "PaywireClient",
    "SyncPaymentTransport",
    "SyncPaywireClient",
]
