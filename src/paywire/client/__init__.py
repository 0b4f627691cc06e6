"""The agent's side: httpx clients that pay HTTP 402s within a spending limit."""

from paywire.client.channel_transport import ChannelTransport, SyncChannelTransport
from paywire.client.channels import ChannelPayer
from paywire.client.direct import direct_payment
from paywire.client.llm import PaidLLM
from paywire.client.payer import MANDATE_ENV, MandateDeclined, Payer, PaymentDeclined, load_mandate
from paywire.client.transport import (
    RECEIPT,
    PaymentTransport,
    PaywireClient,
    SyncPaymentTransport,
    SyncPaywireClient,
)

__all__ = [
    "MANDATE_ENV",
    "RECEIPT",
    "ChannelPayer",
    "ChannelTransport",
    "MandateDeclined",
    "PaidLLM",
    "Payer",
    "PaymentDeclined",
    "PaymentTransport",
    "PaywireClient",
    "SyncChannelTransport",
    "SyncPaymentTransport",
    "SyncPaywireClient",
    "direct_payment",
    "load_mandate",
]
