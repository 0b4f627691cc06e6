"""The provider's side: one ASGI middleware that charges per request over HTTP 402.

    app.add_middleware(
        PaymentMiddleware,
        routes={"GET /search": "$0.001"},
        pay_to="0xYourAddress",
        facilitator=facilitator,  # in process, or RemoteFacilitator("http://...")
    )

An unpaid request to a priced route gets 402 with `PAYMENT-REQUIRED` (x402 v2). A paid
retry carries `PAYMENT-SIGNATURE` (or version 1's `X-PAYMENT`); on the ledger network the
payment is settled *before* the handler runs (it is instant), so content is never served
without money; the answer carries `PAYMENT-RESPONSE` with the facilitator's signed
receipt. A malformed payment gets 400, a refused one 402 with the x402 error reason;
never a 500, and nothing of the payment is logged but its reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from x402.schemas import (
    PaymentPayload,
    PaymentRequired,
    PaymentRequirements,
    ResourceInfo,
    SettleResponse,
)
from x402.schemas.v1 import PaymentPayloadV1

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
from paywire.server.routes import PricedRoute, PriceLike, match, parse_routes

logger = logging.getLogger("paywire.server")

DEFAULT_MAX_TIMEOUT_S = 300
"""How long a client's authorization may stay valid (x402's own server default)."""

_EXPOSE = "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE"


class PaymentMiddleware:
    """Charge for the routes in `routes`, paid to `pay_to`, through `facilitator`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Mapping[str, PriceLike],
        pay_to: str,
        facilitator: FacilitatorLike,
        description: str | None = None,
        max_timeout_s: int = DEFAULT_MAX_TIMEOUT_S,
    ) -> None:
        self.app = app
        self.routes = parse_routes(routes)
        self.pay_to = parse_address(pay_to)
        self.facilitator = facilitator
        self.description = description
        self.max_timeout_s = max_timeout_s
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
        url = _url(scope, headers)
        try:
            accepts = await self._accepts(route)
        except Exception as error:  # no facilitator, no sale: say so, serve nothing
            logger.warning("cannot reach the facilitator: %s", type(error).__name__)
            body = json.dumps(
                {"error": "facilitator_unavailable", "message": "payments are unavailable"}
            ).encode()
            await _respond(send, 503, [(b"content-type", b"application/json")], body)
            return
        header = headers.get(PAYMENT_SIGNATURE) or headers.get(X_PAYMENT)
        if header is None:
            await self._payment_required(send, url, accepts, "payment required")
            return
        version_one = PAYMENT_SIGNATURE.lower() not in headers and X_PAYMENT.lower() in headers
        try:
            payload = _as_v2(decode_payment(header), accepts)
            requirements = _matching(payload, accepts)
        except PaymentProblem as problem:
            await self._refuse(send, url, accepts, problem.reason, problem.message, None)
            return
        try:
            settled = await self.facilitator.settle(payload, requirements, resource=url)
        except Exception as error:  # a facilitator that failed is a failed settlement, not a 500
            logger.warning("facilitator failed for %s: %s", scope["path"], type(error).__name__)
            await self._refuse(
                send, url, accepts, errors.UNEXPECTED_ERROR, "the facilitator failed", None
            )
            return
        if not settled.success:
            logger.info("payment refused for %s: %s", scope["path"], settled.error_reason)
            await self._refuse(
                send,
                url,
                accepts,
                settled.error_reason or errors.SETTLEMENT_FAILED,
                settled.error_message or "the payment did not settle",
                settled,
            )
            return
        response_header = X_PAYMENT_RESPONSE if version_one else PAYMENT_RESPONSE
        await self.app(scope, receive, _with_header(send, response_header, encode(settled)))

    async def _accepts(self, route: PricedRoute) -> list[PaymentRequirements]:
        if self._kinds is None:
            supported = await self.facilitator.fetch_supported()
            self._kinds = [
                (kind.scheme, kind.network, dict(kind.extra or {}))
                for kind in supported.kinds
                if kind.x402_version == 2
            ]
        return [
            PaymentRequirements(
                scheme=scheme,
                network=network,
                asset=route.price.asset.code,
                amount=str(route.price.atomic),
                pay_to=self.pay_to,
                max_timeout_seconds=self.max_timeout_s,
                extra=extra,
            )
            for scheme, network, extra in self._kinds
            if network.startswith("paywire:")
        ]

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
        )
        body = required.model_dump_json(by_alias=True, exclude_none=True).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-store"),
            (PAYMENT_REQUIRED.lower().encode(), encode(required).encode()),
            (b"access-control-expose-headers", _EXPOSE.encode()),
        ]
        if settled is not None:
            headers.append((PAYMENT_RESPONSE.lower().encode(), encode(settled).encode()))
        await _respond(send, 402, headers, body)

    async def _refuse(
        self,
        send: Send,
        url: str,
        accepts: list[PaymentRequirements],
        reason: str,
        message: str,
        settled: SettleResponse | None,
    ) -> None:
        status = problem_status(reason)
        if status == 400:
            body = json.dumps({"error": reason, "message": message}).encode()
            await _respond(send, 400, [(b"content-type", b"application/json")], body)
            return
        await self._payment_required(send, url, accepts, f"{reason}: {message}", settled)


def _as_v2(
    payload: PaymentPayload | PaymentPayloadV1, accepts: list[PaymentRequirements]
) -> PaymentPayload:
    """A version 1 payment as version 2: its scheme and network pick the requirement."""
    if isinstance(payload, PaymentPayload):
        return payload
    for requirements in accepts:
        if (requirements.scheme, requirements.network) == (payload.scheme, payload.network):
            return PaymentPayload(accepted=requirements, payload=payload.payload)
    raise PaymentProblem(
        errors.INVALID_REQUIREMENTS,
        f"nothing here is paid with {payload.scheme} on {payload.network}",
    )


def _matching(payload: PaymentPayload, accepts: list[PaymentRequirements]) -> PaymentRequirements:
    accepted = payload.accepted
    for requirements in accepts:
        if (
            requirements.scheme == accepted.scheme
            and requirements.network == accepted.network
            and requirements.asset == accepted.asset
            and requirements.amount == accepted.amount
            and requirements.pay_to.lower() == accepted.pay_to.lower()
        ):
            return requirements
    raise PaymentProblem(
        errors.INVALID_REQUIREMENTS,
        "the payment does not accept any of this route's terms (scheme, network, asset, "
        "amount, payTo)",
    )


def _url(scope: Scope, headers: Headers) -> str:
    host = headers.get("host", "localhost")
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope["path"] + (f"?{query}" if query else "")
    return f"{scope.get('scheme', 'http')}://{host}{path}"


def _with_header(send: Send, name: str, value: str) -> Send:
    encoded = (name.lower().encode(), value.encode())

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [
                    *message.get("headers", []),
                    encoded,
                    (b"access-control-expose-headers", _EXPOSE.encode()),
                ],
            }
        await send(message)

    return wrapped


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
