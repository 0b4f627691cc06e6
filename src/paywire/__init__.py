"""paywire: payments for AI agents, with books anyone can check.

The public API, re-exported here:

- money: `Asset`, `Amount`, `USDC`, `parse_amount`;
- keys: `PrivateKey`, `recover_address`, `parse_address`, `Eip712Domain`, `StructType`,
  `TypedMessage`, `KeyStore`;
- the books: `open_ledger`, `Ledger`, `NewAccount`, `AccountKind`, `transfer`, `hold`,
  `post`, `void`, `audit_export`, and the errors (`PaywireError`, `LedgerError`, ...).

Ledger and crypto names load on first use, so ``import paywire`` (and the CLI) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from paywire.errors import InvalidInput, NotFound, PaywireError
from paywire.money import ETH, EURC, USDC, Amount, Asset, parse_amount

if TYPE_CHECKING:
    from paywire.crypto.eip712 import Eip712Domain, StructType, TypedMessage
    from paywire.crypto.keys import PrivateKey, parse_address, recover_address
    from paywire.crypto.keystore import KeyStore
    from paywire.ledger import (
        Account,
        AccountKind,
        Balance,
        Ledger,
        LedgerError,
        NewAccount,
        Transfer,
        TransferCode,
        hold,
        open_ledger,
        post,
        transfer,
        void,
    )
    from paywire.ledger.export import audit_export

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
    "Balance",
    "Eip712Domain",
    "InvalidInput",
    "KeyStore",
    "Ledger",
    "LedgerError",
    "NewAccount",
    "NotFound",
    "PaywireError",
    "PrivateKey",
    "StructType",
    "Transfer",
    "TransferCode",
    "TypedMessage",
    "__version__",
    "audit_export",
    "hold",
    "open_ledger",
    "parse_address",
    "parse_amount",
    "post",
    "recover_address",
    "transfer",
    "void",
]
