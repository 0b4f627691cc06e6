"""paywire: payments for AI agents, with books anyone can check.

The public API, re-exported here:

- money: `Asset`, `Amount`, `USDC`, `parse_amount`;
- keys: `PrivateKey`, `recover_address`, `parse_address`, `Eip712Domain`, `StructType`,
  `TypedMessage`, `KeyStore`;
- the books: `open_ledger`, `Ledger`, `NewAccount`, `AccountKind`, `transfer`, `hold`,
  `post`, `void`, spend limits (`NewLimit`, `LimitStatus`), `audit_export`, and the errors
  (`PaywireError`, `LedgerError`, ...);
- payments over HTTP 402: `PaymentMiddleware` (provider), `PaywireClient`,
  `SyncPaywireClient`, `Payer` (agent), `Facilitator`, `RemoteFacilitator`, `Receipt`;
- mandates: `Mandate`, `AssetLimit`, `Window`, `SignedMandate`, `MandateChain`,
  `Revocation`, `SignedRevocation`, `MandateError`, `MandateLimitExceeded`;
- metering AI tokens: `PriceBook`, `Usage` (costs: `paywire.meter.cost`); paying for
  them: `PaidLLM`;
- tasks: `TaskBook`, `Task`, `TaskState`, `TaskBooks`, `issue_task_mandate`; wallet to
  wallet on the ledger network: `direct_payment`.

Everything but money and errors loads on first use, so ``import paywire`` (and the CLI) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from paywire.errors import InvalidInput, NotFound, PaywireError
from paywire.money import ETH, EURC, USDC, Amount, Asset, parse_amount

if TYPE_CHECKING:
    from paywire.client import (
        MandateDeclined,
        PaidLLM,
        Payer,
        PaymentDeclined,
        PaywireClient,
        SyncPaywireClient,
        direct_payment,
    )
    from paywire.crypto.eip712 import Eip712Domain, StructType, TypedMessage
    from paywire.crypto.keys import PrivateKey, parse_address, recover_address
    from paywire.crypto.keystore import KeyStore
    from paywire.ledger import (
        Account,
        AccountKind,
        Balance,
        Ledger,
        LedgerError,
        LimitStatus,
        NewAccount,
        NewLimit,
        Transfer,
        TransferCode,
        hold,
        open_ledger,
        post,
        transfer,
        void,
    )
    from paywire.ledger.export import audit_export
    from paywire.mandate import (
        AssetLimit,
        Mandate,
        MandateChain,
        MandateError,
        MandateLimitExceeded,
        Revocation,
        SignedMandate,
        SignedRevocation,
        Window,
    )
    from paywire.meter import PriceBook, Usage
    from paywire.protocol import Facilitator, Receipt, RemoteFacilitator
    from paywire.server import PaymentMiddleware
    from paywire.tasks import Task, TaskBook, TaskBooks, TaskState, issue_task_mandate

__version__ = "0.1.0"

_LAZY = {
    "Eip712Domain": "paywire.crypto.eip712",
    "StructType": "paywire.crypto.eip712",
    "TypedMessage": "paywire.crypto.eip712",
    "PrivateKey": "paywire.crypto.keys",
    "parse_address": "paywire.crypto.keys",
    "recover_address": "paywire.crypto.keys",
    "KeyStore": "paywire.crypto.keystore",
    "Account": "paywire.ledger",
    "AccountKind": "paywire.ledger",
    "Balance": "paywire.ledger",
    "Ledger": "paywire.ledger",
    "LedgerError": "paywire.ledger",
    "NewAccount": "paywire.ledger",
    "Transfer": "paywire.ledger",
    "TransferCode": "paywire.ledger",
    "hold": "paywire.ledger",
    "open_ledger": "paywire.ledger",
    "post": "paywire.ledger",
    "transfer": "paywire.ledger",
    "void": "paywire.ledger",
    "audit_export": "paywire.ledger.export",
    "NewLimit": "paywire.ledger",
    "LimitStatus": "paywire.ledger",
    "PaymentMiddleware": "paywire.server",
    "PaywireClient": "paywire.client",
    "SyncPaywireClient": "paywire.client",
    "Payer": "paywire.client",
    "PaymentDeclined": "paywire.client",
    "MandateDeclined": "paywire.client",
    "Facilitator": "paywire.protocol",
    "RemoteFacilitator": "paywire.protocol",
    "Receipt": "paywire.protocol",
    "Mandate": "paywire.mandate",
    "AssetLimit": "paywire.mandate",
    "Window": "paywire.mandate",
    "SignedMandate": "paywire.mandate",
    "MandateChain": "paywire.mandate",
    "Revocation": "paywire.mandate",
    "SignedRevocation": "paywire.mandate",
    "MandateError": "paywire.mandate",
    "MandateLimitExceeded": "paywire.mandate",
    "PriceBook": "paywire.meter",
    "Usage": "paywire.meter",
    "PaidLLM": "paywire.client",
    "direct_payment": "paywire.client",
    "Task": "paywire.tasks",
    "TaskBook": "paywire.tasks",
    "TaskBooks": "paywire.tasks",
    "TaskState": "paywire.tasks",
    "issue_task_mandate": "paywire.tasks",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paywire' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ETH",
    "EURC",
    "USDC",
    "Account",
    "AccountKind",
    "Amount",
    "Asset",
    "AssetLimit",
    "Balance",
    "Eip712Domain",
    "Facilitator",
    "InvalidInput",
    "KeyStore",
    "Ledger",
    "LedgerError",
    "LimitStatus",
    "Mandate",
    "MandateChain",
    "MandateDeclined",
    "MandateError",
    "MandateLimitExceeded",
    "NewAccount",
    "NewLimit",
    "NotFound",
    "PaidLLM",
    "Payer",
    "PaymentDeclined",
    "PaymentMiddleware",
    "PaywireClient",
    "PaywireError",
    "PriceBook",
    "PrivateKey",
    "Receipt",
    "RemoteFacilitator",
    "Revocation",
    "SignedMandate",
    "SignedRevocation",
    "StructType",
    "SyncPaywireClient",
    "Task",
    "TaskBook",
    "TaskBooks",
    "TaskState",
    "Transfer",
    "TransferCode",
    "TypedMessage",
    "Usage",
    "Window",
    "__version__",
    "audit_export",
    "direct_payment",
    "hold",
    "issue_task_mandate",
    "open_ledger",
    "parse_address",
    "parse_amount",
    "post",
    "recover_address",
    "transfer",
    "void",
]
