"""Receipts: the facilitator's signed word that a payment settled, checkable by the payer.

A receipt travels in the `PAYMENT-RESPONSE` header's `extensions["paywire-receipt"]`. It
is an EIP-712 message signed by the facilitator's key:

    Receipt(string network,string transaction,address payer,address payee,string asset,
            uint256 amount,uint64 logIndex,bytes32 leafHash,uint64 timestamp)

in the domain ``{name: "paywire receipt", version: "1"}``. On the ledger network,
`transaction` is the ledger transfer id, `logIndex` its entry and `leafHash` the hash of
that entry in the transparency log: with an inclusion proof against a signed checkpoint
(`paywire ledger proof`), the payer can show the payment is in the books. On a chain,
`transaction` is the transaction hash and `logIndex`/`leafHash` describe the ledger entry
that records it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paywire.crypto.eip712 import Eip712Domain, StructType, TypedMessage
from paywire.crypto.keys import PrivateKey, parse_address, recover_address
from paywire.errors import PaywireError

RECEIPT_EXTENSION = "paywire-receipt"
"""The key of a receipt in a SettlementResponse's `extensions`."""

RECEIPT_MESSAGE = TypedMessage(
    Eip712Domain(name="paywire receipt", version="1"),
    StructType(
        "Receipt",
        {
            "Receipt": [
                {"name": "network", "type": "string"},
                {"name": "transaction", "type": "string"},
                {"name": "payer", "type": "address"},
                {"name": "payee", "type": "address"},
                {"name": "asset", "type": "string"},
                {"name": "amount", "type": "uint256"},
                {"name": "logIndex", "type": "uint64"},
                {"name": "leafHash", "type": "bytes32"},
                {"name": "timestamp", "type": "uint64"},
            ]
        },
    ),
)

_HEX32 = re.compile(r"0x[0-9a-f]{64}")
_SIGNATURE = re.compile(r"0x[0-9a-f]{130}")


class InvalidReceipt(PaywireError):
    """A receipt that is malformed or not signed by the expected facilitator."""

    code = "invalid_receipt"


@dataclass(frozen=True, slots=True)
class Receipt:
    network: str
    transaction: str
    payer: str
    payee: str
    asset: str
    amount: int
    log_index: int
    leaf_hash: bytes
    timestamp: int
    signature: bytes = b""

    def message(self) -> dict[str, object]:
        return {
            "network": self.network,
            "transaction": self.transaction,
            "payer": self.payer,
            "payee": self.payee,
            "asset": self.asset,
            "amount": self.amount,
            "logIndex": self.log_index,
            "leafHash": self.leaf_hash,
            "timestamp": self.timestamp,
        }

    def signed(self, key: PrivateKey) -> Receipt:
        """This receipt signed by the facilitator's `key`."""
        signature = RECEIPT_MESSAGE.sign(self.message(), key)
        return Receipt(**{**self._fields(), "signature": signature})

    def signer(self) -> str:
        """The address that signed it (raises `InvalidSignature` if malformed)."""
        return recover_address(RECEIPT_MESSAGE.digest(self.message()), self.signature)

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "transaction": self.transaction,
            "payer": self.payer,
            "payee": self.payee,
            "asset": self.asset,
            "amount": str(self.amount),
            "logIndex": self.log_index,
            "leafHash": "0x" + self.leaf_hash.hex(),
            "timestamp": self.timestamp,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Receipt:
        """Parse a receipt strictly; raises `InvalidReceipt`."""
        try:
            leaf, signature = str(data["leafHash"]), str(data["signature"])
            if not _HEX32.fullmatch(leaf) or not _SIGNATURE.fullmatch(signature):
                raise InvalidReceipt("a receipt's leafHash or signature is malformed")
            amount, index, timestamp = data["amount"], data["logIndex"], data["timestamp"]
            if not (isinstance(amount, str) and amount.isdigit()):
                raise InvalidReceipt("a receipt's amount must be a decimal string")
            if not all(isinstance(n, int) and not isinstance(n, bool) for n in (index, timestamp)):
                raise InvalidReceipt("a receipt's logIndex and timestamp must be integers")
            return cls(
                network=str(data["network"]),
                transaction=str(data["transaction"]),
                payer=parse_address(str(data["payer"])),
                payee=parse_address(str(data["payee"])),
                asset=str(data["asset"]),
                amount=int(amount),
                log_index=index,
                leaf_hash=bytes.fromhex(leaf[2:]),
                timestamp=timestamp,
                signature=bytes.fromhex(signature[2:]),
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidReceipt("a receipt lacks fields or has malformed ones") from None

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def check_receipt(receipt: Receipt, facilitator: str | None) -> str:
    """The receipt's signer, checked against the `facilitator` address when given."""
    try:
        signer = receipt.signer()
    except PaywireError as error:
        raise InvalidReceipt(f"the receipt's signature is malformed: {error}") from None
    if facilitator is not None and signer.lower() != facilitator.lower():
        raise InvalidReceipt(f"the receipt is signed by {signer}, not {facilitator}")
    return signer
