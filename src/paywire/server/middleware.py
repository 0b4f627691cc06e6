"""The provider's side: one ASGI middleware that charges per request over HTTP 402.

    app.add_middleware(
        PaymentMiddleware,
        routes={"GET /search": "$0.001"},
        pay_to="0xYourAddress",
        facilitator=facilitator,  # in process, or RemoteFacilitator("http://...")
    )

An unpaid request to a priced route gets 402 with `PAYMENT-REQUIRED` (x402 v2), offering
every kind the facilitator supports: on the paywire ledger network the price in the
ledger's asset (``"USDC"``), on each EVM chain the price in each token that counts as that
asset (``asset`` = the token's address, ``amount`` in its atomic units, ``extra`` = its
EIP-712 name and version). A paid retry carries `PAYMENT-SIGNATURE` (or version 1's
`X-PAYMENT`, whose network names such as ``base-sepolia`` or ``paywire-local`` are mapped to
their chain ids); the answer carries `PAYMENT-RESPONSE` (v1: `X-PAYMENT-RESPONSE`) with the
facilitator's signed receipt. A malformed payment gets 400, a refused one 402 with the x402
error reason; never a 500, and nothing of the payment is logged but its reason.

**When the money moves.** Content is never delivered without money; what differs is
whether the handler may run before the money moved:

- On the ledger network the payment is settled *before* the handler runs: settling is one
  ledger write (instant), so there is nothing to gain by waiting.
- On EVM chains the default is x402's **verify, serve, settle**: the facilitator verifies
  (signature, and the payer's balance and nonce from its view of the chain, or a full
  simulation of the transfer with ``simulate=True``), the handler runs, and only if it
  answered below 400 is the payment settled (a transaction and its receipt: seconds on a
  real chain). The handler's response is held back meanwhile (up to
  `MAX_HELD_BODY_BYTES`; past that the payment is settled before the rest streams) and
  delivered only once settlement succeeded; if it fails (the payer spent the funds since
  verify, another request used the same authorization, the chain is down), the client gets
  402 with the reason instead, and the response is dropped. A handler that fails is not
  charged for. The cost: the handler's work, and its side effects, happen for payments
  that then fail to settle.
- ``settle_first=True`` settles EVM payments before the handler runs, as on the ledger
  network: no work or side effect for a payment that fails, nothing held in memory, but
  the request waits for the chain before the handler starts, and a handler that then
  fails (an answer of 400 or more, or an exception) has been paid for. Choose it for
  routes whose handler has side effects (creating, sending, spending) or is costly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send
from x402.schemas import (
    PaymentPayload,
    PaymentRequired,
    PaymentRequirements,
    ResourceInfo,
    SettleResponse,
)

from paywire.crypto.keys import parse_address
from paywire.protocol import errors
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.facilitator import FacilitatorLike, problem_status
from paywire.protocol.headers import (
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    X_PAYMENT,
    X_PAYMENT_RESPONSE,
    decode_payment,
    encode,
)
from paywire.protocol.idempotency import (
    MAX_KEPT_BODY_BYTES,
    PAYMENT_IDENTIFIER,
    IdempotencyStore,
    KeyLocks,
    MemoryIdempotencyStore,
    PaidResult,
    declare_payment_identifier_extension,
    idempotency_key,
    payment_fingerprint,
    payment_id,
)
from paywire.protocol.ledger_network import is_ledger_network
from paywire.server._asgi import (
    EXPOSE,
    Recorder,
    request_url,
    respond,
    with_header,
)
from paywire.server._held import serve_then_settle
from paywire.server._terms import as_v1, as_v2, matching, offer
from paywire.server.routes import PricedRoute, PriceLike, match, parse_routes

logger = logging.getLogger("paywire.server")

DEFAULT_MAX_TIMEOUT_S = 300
"""How long a client's authorization may stay valid (x402's own server default)."""

MAX_HELD_BODY_BYTES = 8 * 1024 * 1024
"""How much of a response is held back while an EVM payment settles after the handler;
past it the payment is settled first and the rest streams (never content without money)."""


class PaymentMiddleware:
    """Charge for the routes in `routes`, paid to `pay_to`, through `facilitator`.

    `settle_first` settles EVM payments before the handler runs (see the module's
    docstring for the trade-off); ledger-network payments are always settled first.

    Payments with an x402 `payment-identifier` id are answered once: a retry of the same
    payment gets the first answer (kept in `idempotency`, default in memory; bodies up to
    `max_kept_bytes`, larger ones are served again) and is not charged again; the same id
    with another payment gets 409. `require_payment_id` refuses payments without an id.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Mapping[str, PriceLike],
        pay_to: str,
        facilitator: FacilitatorLike,
        description: str | None = None,
        max_timeout_s: int = DEFAULT_MAX_TIMEOUT_S,
        settle_first: bool = False,
        max_held_bytes: int = MAX_HELD_BODY_BYTES,
        idempotency: IdempotencyStore | None = None,
        require_payment_id: bool = False,
        max_kept_bytes: int = MAX_KEPT_BODY_BYTES,
    ) -> None:
        self.app = app
        self.routes = parse_routes(routes)
        self.pay_to = parse_address(pay_to)
        self.facilitator = facilitator
        self.description = description
        self.max_timeout_s = max_timeout_s
        self.settle_first = settle_first
        self.max_held_bytes = max_held_bytes
        self.idempotency: IdempotencyStore = idempotency or MemoryIdempotencyStore()
        self.require_payment_id = require_payment_id
        self.max_kept_bytes = max_kept_bytes
        self._locks = KeyLocks()
        self._kinds: list[tuple[str, str, dict[str, Any]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = match(self.routes, scope["method"], scope["path"])
        if route is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        url = request_url(scope, headers)
        try:
            accepts = await self._accepts(route)
        except Exception as error:  # no facilitator, no sale: say so, serve nothing
            logger.warning("cannot reach the facilitator: %s", type(error).__name__)
            body = json.dumps(
                {"error": "facilitator_unavailable", "message": "payments are unavailable"}
            ).encode()
            await respond(send, 503, [(b"content-type", b"application/json")], body)
            return
        header = headers.get(PAYMENT_SIGNATURE) or headers.get(X_PAYMENT)
        if header is None:
            await self._payment_required(send, url, accepts, "payment required")
            return
        version_one = PAYMENT_SIGNATURE.lower() not in headers and X_PAYMENT.lower() in headers
        try:
            payload = as_v2(decode_payment(header), accepts)
            requirements = matching(payload, accepts)
        except PaymentProblem as problem:
            await self.refuse(send, url, accepts, problem.reason, problem.message, None)
            return
        response_header = X_PAYMENT_RESPONSE if version_one else PAYMENT_RESPONSE
        try:
            value = payment_id(payload)
        except PaymentProblem as problem:
            await self.refuse(send, url, accepts, problem.reason, problem.message, None)
            return
        if value is None:
            if self.require_payment_id:
                message = "this server requires a payment-identifier id in every payment"
                await self.refuse(send, url, accepts, errors.INVALID_PAYLOAD, message, None)
                return
            await self._pay_and_serve(
                scope, receive, send, payload, requirements, url, accepts, response_header
            )
            return
        key = idempotency_key(payload, value)
        async with self._locks.hold(key):
            first = await self.idempotency.get(key)
            if first is None:
                recorder = Recorder(send, self.max_kept_bytes)
                try:
                    settlement = await self._pay_and_serve(
                        scope,
                        receive,
                        recorder.send,
                        payload,
                        requirements,
                        url,
                        accepts,
                        response_header,
                    )
                    if settlement is not None and recorder.complete:
                        result = recorder.result(payment_fingerprint(payload), settlement)
                        await self._keep(key, result)
                finally:
                    await recorder.flush()
            elif first.fingerprint != payment_fingerprint(payload):
                message = f"payment id {value} was used for another payment"
                await self.refuse(send, url, accepts, errors.PAYMENT_ID_CONFLICT, message, None)
            elif first.body_kept:
                await respond(send, first.status, list(first.headers), first.body)
            else:  # paid, but too large to keep: served again, not charged again
                await self.app(scope, receive, with_header(send, response_header, first.settlement))

    async def _keep(self, key: str, result: PaidResult) -> None:
        """Keep a paid answer for retries; a store that fails costs the retry its answer
        (it gets a used-nonce refusal), never the payment or this answer."""
        try:
            await self.idempotency.put(key, result)
        except Exception as error:
            logger.warning("a paid answer was not kept for retries: %s", type(error).__name__)

    async def _pay_and_serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        payload: PaymentPayload,
        requirements: PaymentRequirements,
        url: str,
        accepts: list[PaymentRequirements],
        response_header: str,
    ) -> str | None:
        """Take the payment and run the handler (in the order the network calls for);
        the `PAYMENT-RESPONSE` sent if the money moved, None if it did not."""
        if is_ledger_network(requirements.network) or self.settle_first:
            settled = await self.settle(payload, requirements, url, scope["path"])
            if not settled.success:
                await self.refused_settlement(send, url, accepts, settled)
                return None
            settlement = encode(settled)
            await self.app(scope, receive, with_header(send, response_header, settlement))
            return settlement
        return await serve_then_settle(
            self, scope, receive, send, payload, requirements, url, accepts, response_header
        )

    async def settle(
        self, payload: PaymentPayload, requirements: PaymentRequirements, url: str, path: str
    ) -> SettleResponse:
        """The facilitator's settlement; a facilitator that failed is a failed settlement
        (with a reason), never an exception in the request path."""
        try:
            settled = await self.facilitator.settle(payload, requirements, resource=url)
        except Exception as error:
            logger.warning("facilitator failed for %s: %s", path, type(error).__name__)
            return SettleResponse(
                success=False,
                error_reason=errors.UNEXPECTED_ERROR,
                error_message="the facilitator failed",
                transaction="",
                network=requirements.network,
            )
        if not settled.success:
            logger.info("payment refused for %s: %s", path, settled.error_reason)
        return settled

    async def refused_settlement(
        self, send: Send, url: str, accepts: list[PaymentRequirements], settled: SettleResponse
    ) -> None:
        await self.refuse(
            send,
            url,
            accepts,
            settled.error_reason or errors.SETTLEMENT_FAILED,
            settled.error_message or "the payment did not settle",
            settled,
        )

    async def _accepts(self, route: PricedRoute) -> list[PaymentRequirements]:
        if self._kinds is None:
            supported = await self.facilitator.fetch_supported()
            self._kinds = [
                (kind.scheme, kind.network, dict(kind.extra or {}))
                for kind in supported.kinds
                if kind.x402_version == 2
            ]
        return offer(route.price, self._kinds, self.pay_to, self.max_timeout_s)

    async def _payment_required(
        self,
        send: Send,
        url: str,
        accepts: list[PaymentRequirements],
        error: str,
        settled: SettleResponse | None = None,
    ) -> None:
        required = PaymentRequired(
            error=error,
            resource=ResourceInfo(url=url, description=self.description),
            accepts=accepts,
            extensions={
                PAYMENT_IDENTIFIER: declare_payment_identifier_extension(self.require_payment_id)
            },
        )
        # The body is version 1's form, for v1 clients; v2 clients read the header.
        v1 = as_v1(error, accepts, url, self.description)
        body = v1.model_dump_json(by_alias=True, exclude_none=True).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-store"),
            (PAYMENT_REQUIRED.lower().encode(), encode(required).encode()),
            (b"access-control-expose-headers", EXPOSE.encode()),
        ]
        if settled is not None:
            headers.append((PAYMENT_RESPONSE.lower().encode(), encode(settled).encode()))
        await respond(send, 402, headers, body)

    async def refuse(
        self,
        send: Send,
        url: str,
        accepts: list[PaymentRequirements],
        reason: str,
        message: str,
        settled: SettleResponse | None,
    ) -> None:
        status = problem_status(reason)
        if status != 402:  # 400: not a payment; 409: a payment id used for another payment
            body = json.dumps({"error": reason, "message": message}).encode()
            await respond(send, status, [(b"content-type", b"application/json")], body)
            return
        await self._payment_required(send, url, accepts, f"{reason}: {message}", settled)
