"""A wallet's signed request to take its funds out of the ledger to a chain.

The operator holds the reserve's key, so a withdrawal must be asked for by the wallet's
own key: an EIP-712 message

    Withdrawal(address wallet,address to,uint256 value,string id,uint256 validBefore)

in the token's domain (its name, version, chain id and address), which binds the request
to one token on one chain. `id` is the withdrawal's idempotency key: a retried request
pays once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paywire.crypto.eip712 import Eip712Domain, StructType, TypedMessage
from paywire.crypto.keys import PrivateKey, parse_address, parse_signature, verify_signer
from paywire.errors import InvalidInput, PaywireError
from paywire.money import MAX_ATOMIC

WITHDRAWAL = StructType(
    "Withdrawal",
    {
        "Withdrawal": [
            {"name": "wallet", "type": "address"},
            {"name": "to", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "id", "type": "string"},
            {"name": "validBefore", "type": "uint256"},
        ]
    },
)

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,63}")
_DECIMAL = re.compile(r"[1-9][0-9]{0,38}")


class InvalidWithdrawal(InvalidInput):
    code = "invalid_withdrawal"


@dataclass(frozen=True, slots=True)
class WithdrawalRequest:
    wallet: str
    to: str
    value: int
    id: str
    valid_before: int

    def message(self) -> dict[str, object]:
        return {
            "wallet": self.wallet,
            "to": self.to,
            "value": self.value,
            "id": self.id,
            "validBefore": self.valid_before,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "wallet": self.wallet,
            "to": self.to,
            "value": str(self.value),
            "id": self.id,
            "validBefore": self.valid_before,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WithdrawalRequest:
        if not isinstance(data, Mapping) or set(data) != {
            "wallet",
            "to",
            "value",
            "id",
            "validBefore",
        }:
            raise InvalidWithdrawal("a withdrawal has exactly wallet, to, value, id, validBefore")
        value, request_id, valid_before = data["value"], data["id"], data["validBefore"]
        if not isinstance(value, str) or not _DECIMAL.fullmatch(value) or int(value) > MAX_ATOMIC:
            raise InvalidWithdrawal("a withdrawal's value is a decimal string from 1 to 2^128-1")
        if not isinstance(request_id, str) or not _ID.fullmatch(request_id):
            raise InvalidWithdrawal("a withdrawal id is 1-64 letters, digits or ._:/@+=-")
        if not isinstance(valid_before, int) or isinstance(valid_before, bool):
            raise InvalidWithdrawal("validBefore is a unix time in seconds")
        try:
            wallet, to = parse_address(str(data["wallet"])), parse_address(str(data["to"]))
        except PaywireError as error:
            raise InvalidWithdrawal(f"withdrawal: {error}") from None
        return cls(wallet, to, int(value), request_id, valid_before)

    def sign(self, domain: Eip712Domain, key: PrivateKey) -> bytes:
        return TypedMessage(domain, WITHDRAWAL).sign(self.message(), key)

    def check(self, domain: Eip712Domain, signature: str, now: int) -> None:
        """Raise unless `wallet` signed this request and it has not expired."""
        if self.valid_before <= now:
            raise InvalidWithdrawal("the withdrawal request has expired; sign a new one")
        try:
            verify_signer(
                TypedMessage(domain, WITHDRAWAL).digest(self.message()),
                parse_signature(signature),
                self.wallet,
            )
        except PaywireError as error:
            raise InvalidWithdrawal(
                f"the withdrawal is not signed by {self.wallet}: {error}"
            ) from None
