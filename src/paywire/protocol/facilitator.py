"""The facilitator: verifies and settles x402 payments, and signs receipts.

In process (`Facilitator`), a single-process provider needs no extra hop; over HTTP
(`paywire.service`), the same object answers `POST /verify`, `POST /settle` and
`GET /supported` with x402 v2's shapes. Its answers never raise for a bad payment: they
say `isValid: false` / `success: false` with the x402 error reason and a message.

One facilitator serves the paywire ledger network (`LedgerExactScheme`) and any number of
EVM chains (`EvmExactScheme`, one per chain, each with one or more tokens): see
`Facilitator.for_networks`. Every success carries a receipt signed by the facilitator's
key: on the ledger network for the ledger transfer, on a chain for the transaction (with
the ledger entry that records it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from x402.schemas import (
    PaymentPayload,
    PaymentRequirements,
    SettleResponse,
    SupportedKind,
    SupportedResponse,
    VerifyResponse,
)

from paywire.crypto.keys import PrivateKey
from paywire.errors import InvalidInput
from paywire.ledger import Ledger
from paywire.money import Asset
from paywire.protocol import errors
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.evm_exact import EvmExactScheme, EvmSettled
from paywire.protocol.idempotency import (
    PAYMENT_IDENTIFIER,
    IdempotencyStore,
    KeyLocks,
    MemoryIdempotencyStore,
    PaidResult,
    idempotency_key,
    payment_fingerprint,
    payment_id,
)
from paywire.protocol.ledger_network import LedgerExactScheme, Settled, Verified
from paywire.protocol.mandate_extension import MANDATE_EXTENSION
from paywire.protocol.receipts import RECEIPT_EXTENSION, Receipt

if TYPE_CHECKING:
    from paywire.chain.token import Token

X402_VERSION = 2


class SchemeHandler(Protocol):
    """One (scheme, network) a facilitator can verify and settle.

    A handler whose `verify` calls a chain says so with a true ``blocking_verify``
    attribute; the facilitator then runs it in a worker thread, off the event loop.
    """

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
    ) -> Settled | EvmSettled: ...


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
    """Verifies and settles payments for the schemes and networks it holds.

    A payment that carries an x402 `payment-identifier` settles once: settling it again
    (the same signed payment with the same id) answers the first settlement, receipt
    included, and `verify` says it is valid; another payment with that id is refused
    with ``payment_identifier_conflict``. Results are kept in `idempotency` (default: in
    memory, for a day).
    """

    def __init__(
        self,
        key: PrivateKey,
        handlers: Sequence[SchemeHandler],
        *,
        clock: Callable[[], float] = time.time,
        idempotency: IdempotencyStore | None = None,
    ) -> None:
        self._key = key
        self._clock = clock
        self._results: IdempotencyStore = idempotency or MemoryIdempotencyStore(clock=clock)
        self._locks = KeyLocks()
        self._handlers: dict[tuple[str, str], SchemeHandler] = {}
        for handler in handlers:
            kind = (handler.scheme, handler.network)
            if kind in self._handlers:
                raise InvalidInput(
                    f"two handlers for {handler.scheme} on {handler.network}: give one "
                    "handler per network (an EvmExactScheme takes several tokens)"
                )
            self._handlers[kind] = handler

    @classmethod
    def for_ledger(cls, ledger: Ledger, key: PrivateKey) -> Facilitator:
        """A facilitator for `exact` payments on `ledger`'s network."""
        return cls(key, [LedgerExactScheme(ledger)])

    @classmethod
    def for_networks(
        cls,
        key: PrivateKey,
        *,
        ledger: Ledger,
        tokens: Sequence[Token] = (),
        ledger_network: bool = True,
        evm_signer: PrivateKey | None = None,
        assets: Mapping[str, Asset] | None = None,
        confirmations: int | None = None,
        receipt_timeout_s: float | None = None,
        simulate: bool = False,
    ) -> Facilitator:
        """One facilitator for `ledger`'s network (unless `ledger_network` is False) and
        `exact` on the chains of `tokens`: one `EvmExactScheme` per chain, holding that
        chain's tokens, recording its payments in `ledger`.

        `key` signs receipts; `evm_signer` pays the gas of EVM settlements (default: each
        chain's default signer); `simulate` runs every EVM verify as a simulation of the
        transfer on chain (strict and slow; by default verify reads a view of the chain).
        `assets` maps token addresses to ledger assets (default:
        each token's symbol and decimals).
        """
        handlers: list[SchemeHandler] = []
        if ledger_network:
            handlers.append(LedgerExactScheme(ledger))
        by_network: dict[str, list[Token]] = {}
        for token in tokens:
            by_network.setdefault(token.chain.network, []).append(token)
        for chain_tokens in by_network.values():
            handlers.append(
                EvmExactScheme(
                    ledger,
                    chain_tokens,
                    signer=evm_signer,
                    assets=assets,
                    confirmations=confirmations,
                    receipt_timeout_s=receipt_timeout_s,
                    simulate=simulate,
                )
            )
        return cls(key, handlers)

    @property
    def address(self) -> str:
        """The address that signs this facilitator's receipts."""
        return self._key.address

    @property
    def handlers(self) -> list[SchemeHandler]:
        return list(self._handlers.values())

    def supported(self) -> SupportedResponse:
        """What this facilitator settles (x402 `GET /supported`): one kind per ledger
        network and per EVM token (its ``extra`` names the token), and who signs:
        ``paywire:*`` the receipts, ``eip155:*`` the settlement transactions."""
        kinds: list[SupportedKind] = []
        settlers: list[str] = []
        for handler in self._handlers.values():
            if isinstance(handler, EvmExactScheme):
                extras: list[dict[str, Any] | None] = list(handler.extras())
                if handler.signer.address not in settlers:
                    settlers.append(handler.signer.address)
            else:
                extras = [handler.extra()]
            kinds.extend(
                SupportedKind(
                    x402_version=X402_VERSION,
                    scheme=handler.scheme,
                    network=handler.network,
                    extra=extra,
                )
                for extra in extras
            )
        signers = {"paywire:*": [self.address]}
        if settlers:
            signers["eip155:*"] = settlers
        return SupportedResponse(
            kinds=kinds,
            extensions=[RECEIPT_EXTENSION, PAYMENT_IDENTIFIER, MANDATE_EXTENSION],
            signers=signers,
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
        """Whether the payment would settle now (x402 `POST /verify`); a payment already
        settled under its payment id is valid (settling it answers the first result)."""
        try:
            handler = self._handler(payload, requirements)
            if await self._settled_before(payload) is not None:
                return VerifyResponse(is_valid=True, payer=_payer(payload))
            if getattr(handler, "blocking_verify", False):
                verified = await asyncio.to_thread(handler.verify, payload, requirements)
            else:
                verified = handler.verify(payload, requirements)
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
        """Move the money and sign a receipt (x402 `POST /settle`), once per payment id."""
        try:
            value = payment_id(payload)
            if value is None:
                return await self._settle(payload, requirements, resource)
            key = idempotency_key(payload, value)
            async with self._locks.hold(key):
                first = await self._settled_before(payload)
                if first is not None:
                    return first
                settled = await self._settle(payload, requirements, resource)
                if settled.success:
                    body = settled.model_dump_json(by_alias=True, exclude_none=True).encode()
                    result = PaidResult(
                        payment_fingerprint(payload), 200, (), body, "", self._clock()
                    )
                    await self._results.put(key, result)
                return settled
        except PaymentProblem as problem:
            return _refusal(payload, requirements, problem)

    async def _settled_before(self, payload: PaymentPayload) -> SettleResponse | None:
        """The first settlement of this payment's id; a `PaymentProblem` if that id
        settled another payment; None if the id is new (or the payment has none)."""
        value = payment_id(payload)
        if value is None:
            return None
        result = await self._results.get(idempotency_key(payload, value))
        if result is None:
            return None
        if result.fingerprint != payment_fingerprint(payload):
            raise PaymentProblem(
                errors.PAYMENT_ID_CONFLICT,
                f"payment id {value} was used for another payment: sign a new payment with "
                "a new id",
                status=409,
            )
        return SettleResponse.model_validate_json(result.body)

    async def _settle(
        self, payload: PaymentPayload, requirements: PaymentRequirements, resource: str | None
    ) -> SettleResponse:
        try:
            handler = self._handler(payload, requirements)
            settled = await handler.settle(payload, requirements, resource=resource)
        except PaymentProblem as problem:
            return _refusal(payload, requirements, problem)
        authorization = settled.authorization
        if isinstance(settled, EvmSettled):
            transaction, asset = settled.tx_hash, settled.token
            record, leaf_hash = settled.transfer, settled.leaf_hash
        else:
            transaction, asset = settled.transfer.id, settled.transfer.amount.asset.code
            record, leaf_hash = settled.transfer, settled.leaf_hash
        extensions = None
        if record is not None and leaf_hash is not None:
            receipt = Receipt(
                network=requirements.network,
                transaction=transaction,
                payer=authorization.payer,
                payee=authorization.payee,
                asset=asset,
                amount=authorization.value,
                log_index=record.log_index,
                leaf_hash=leaf_hash,
                timestamp=int(self._clock()),
            ).signed(self._key)
            extensions = {RECEIPT_EXTENSION: receipt.to_json()}
        return SettleResponse(
            success=True,
            payer=authorization.payer,
            transaction=transaction,
            network=requirements.network,
            amount=str(authorization.value),
            extensions=extensions,
        )


def _refusal(
    payload: PaymentPayload, requirements: PaymentRequirements, problem: PaymentProblem
) -> SettleResponse:
    return SettleResponse(
        success=False,
        error_reason=problem.reason,
        error_message=problem.message,
        payer=_payer(payload),
        transaction="",
        network=requirements.network,
    )


def _payer(payload: PaymentPayload) -> str | None:
    authorization = payload.payload.get("authorization")
    if isinstance(authorization, dict):
        payer = authorization.get("from")
        if isinstance(payer, str) and len(payer) == 42:
            return payer
    return None


def problem_status(reason: str | None) -> int:
    """The HTTP status a refusal maps to: 400 for a request that is not a payment, 409
    for a payment id already used by another payment."""
    if reason == errors.PAYMENT_ID_CONFLICT:
        return 409
    return 400 if reason in (errors.INVALID_PAYLOAD, errors.INVALID_X402_VERSION) else 402
