"""The facilitator: verifies and settles x402 payments, and signs receipts.

In process (`Facilitator`), a single-process provider needs no extra hop; over HTTP
(`paywire.service`), the same object answers `POST /verify`, `POST /settle` and
`GET /supported` with x402 v2's shapes. Its answers never raise for a bad payment: they
say `isValid: false` / `success: false` with the x402 error reason and a message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from x402.schemas import (
    PaymentPayload,
    PaymentRequirements,
    SettleResponse,
    SupportedKind,
    SupportedResponse,
    VerifyResponse,
)

from paywire.crypto.keys import PrivateKey
from paywire.ledger import Ledger
from paywire.protocol import errors
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.ledger_network import LedgerExactScheme, Settled, Verified
from paywire.protocol.receipts import RECEIPT_EXTENSION, Receipt

X402_VERSION = 2


class SchemeHandler(Protocol):
    """One (scheme, network) a facilitator can verify and settle."""

    scheme: str
    network: str

    def extra(self) -> dict[str, Any] | None: ...

    def verify(self, payload: PaymentPayload, requirements: PaymentRequirements) -> Verified: ...

    async def settle(
        self,
        payload: PaymentPayload,
        requirements: PaymentRequirements,
        *,
        resource: str | None = None,
    ) -> Settled: ...


class FacilitatorLike(Protocol):
    """What a provider needs from a facilitator, in process or over HTTP."""

    async def fetch_supported(self) -> SupportedResponse: ...

    async def verify(
        self, payload: PaymentPayload, requirements: PaymentRequirements
    ) -> VerifyResponse: ...

    async def settle(
        self,
        payload: PaymentPayload,
        requirements: PaymentRequirements,
        *,
        resource: str | None = None,
    ) -> SettleResponse: ...


class Facilitator:
    """Verifies and settles payments for the schemes and networks it holds."""

    def __init__(
        self,
        key: PrivateKey,
        handlers: Sequence[SchemeHandler],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._clock = clock
        self._handlers = {(handler.scheme, handler.network): handler for handler in handlers}

    @classmethod
    def for_ledger(cls, ledger: Ledger, key: PrivateKey) -> Facilitator:
        """A facilitator for `exact` payments on `ledger`'s network."""
        return cls(key, [LedgerExactScheme(ledger)])

    @property
    def address(self) -> str:
        """The address that signs this facilitator's receipts."""
        return self._key.address

    def supported(self) -> SupportedResponse:
        """What this facilitator settles (x402 `GET /supported`)."""
        kinds = [
            SupportedKind(
                x402_version=X402_VERSION,
                scheme=handler.scheme,
                network=handler.network,
                extra=handler.extra(),
            )
            for handler in self._handlers.values()
        ]
        return SupportedResponse(
            kinds=kinds,
            extensions=[RECEIPT_EXTENSION],
            signers={"paywire:*": [self.address]},
        )

    async def fetch_supported(self) -> SupportedResponse:
        return self.supported()

    def _handler(self, payload: PaymentPayload, requirements: PaymentRequirements) -> SchemeHandler:
        if payload.x402_version != X402_VERSION:
            raise PaymentProblem(
                errors.INVALID_X402_VERSION,
                f"x402Version {payload.x402_version} is not supported here (2)",
                status=400,
            )
        handler = self._handlers.get((requirements.scheme, requirements.network))
        if handler is None:
            known = any(network == requirements.network for _, network in self._handlers)
            reason = errors.UNSUPPORTED_SCHEME if known else errors.NETWORK_MISMATCH
            raise PaymentProblem(
                reason,
                f"this facilitator does not settle {requirements.scheme} on {requirements.network}",
            )
        return handler

    async def verify(
        self, payload: PaymentPayload, requirements: PaymentRequirements
    ) -> VerifyResponse:
        """Whether the payment would settle now (x402 `POST /verify`)."""
        try:
            verified = self._handler(payload, requirements).verify(payload, requirements)
        except PaymentProblem as problem:
            return VerifyResponse(
                is_valid=False,
                invalid_reason=problem.reason,
                invalid_message=problem.message,
                payer=_payer(payload),
            )
        return VerifyResponse(is_valid=True, payer=verified.authorization.payer)

    async def settle(
        self,
        payload: PaymentPayload,
        requirements: PaymentRequirements,
        *,
        resource: str | None = None,
    ) -> SettleResponse:
        """Move the money and sign a receipt (x402 `POST /settle`)."""
        try:
            handler = self._handler(payload, requirements)
            settled = await handler.settle(payload, requirements, resource=resource)
        except PaymentProblem as problem:
            return SettleResponse(
                success=False,
                error_reason=problem.reason,
                error_message=problem.message,
                payer=_payer(payload),
                transaction="",
                network=requirements.network,
            )
        done = settled.transfer
        receipt = Receipt(
            network=requirements.network,
            transaction=done.id,
            payer=settled.authorization.payer,
            payee=settled.authorization.payee,
            asset=done.amount.asset.code,
            amount=done.amount.atomic,
            log_index=done.log_index,
            leaf_hash=settled.leaf_hash,
            timestamp=int(self._clock()),
        ).signed(self._key)
        return SettleResponse(
            success=True,
            payer=settled.authorization.payer,
            transaction=done.id,
            network=requirements.network,
            amount=str(done.amount.atomic),
            extensions={RECEIPT_EXTENSION: receipt.to_json()},
        )


def _payer(payload: PaymentPayload) -> str | None:
    authorization = payload.payload.get("authorization")
    if isinstance(authorization, dict):
        payer = authorization.get("from")
        if isinstance(payer, str) and len(payer) == 42:
            return payer
    return None


def problem_status(reason: str | None) -> int:
    """The HTTP status a refusal maps to: 400 for a request that is not a payment."""
    return 400 if reason in (errors.INVALID_PAYLOAD, errors.INVALID_X402_VERSION) else 402
