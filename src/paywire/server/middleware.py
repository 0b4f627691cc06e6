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
  (signature, and a simulation of the transfer on chain), the handler runs, and only if it
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
from paywire.errors import PaywireError
from paywire.money import Amount
from paywire.protocol import errors
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.evm_exact import is_evm_network, network_from_v1
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
from paywire.protocol.ledger_network import is_ledger_network
from paywire.server.routes import PricedRoute, PriceLike, match, parse_routes

logger = logging.getLogger("paywire.server")

DEFAULT_MAX_TIMEOUT_S = 300
"""How long a client's authorization may stay valid (x402's own server default)."""

MAX_HELD_BODY_BYTES = 8 * 1024 * 1024
"""How much of a response is held back while an EVM payment settles after the handler;
past it the payment is settled first and the rest streams (never content without money)."""

MAX_TOKEN_DECIMALS = 36
"""A token's decimals past this is a broken `/supported`, not a token."""

_EXPOSE = "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE"


class PaymentMiddleware:
    """Charge for the routes in `routes`, paid to `pay_to`, through `facilitator`.

    `settle_first` settles EVM payments before the handler runs (see the module's
    docstring for the trade-off); ledger-network payments are always settled first.
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
    ) -> None:
        self.app = app
        self.routes = parse_routes(routes)
        self.pay_to = parse_address(pay_to)
        self.facilitator = facilitator
        self.description = description
        self.max_timeout_s = max_timeout_s
        self.settle_first = settle_first
        self.max_held_bytes = max_held_bytes
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
        response_header = X_PAYMENT_RESPONSE if version_one else PAYMENT_RESPONSE
        if is_ledger_network(requirements.network) or self.settle_first:
            settled = await self._settle(payload, requirements, url, scope["path"])
            if not settled.success:
                await self._refused_settlement(send, url, accepts, settled)
                return
            await self.app(scope, receive, _with_header(send, response_header, encode(settled)))
            return
        await self._serve_then_settle(
            scope, receive, send, payload, requirements, url, accepts, response_header
        )

    async def _settle(
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

    async def _refused_settlement(
        self, send: Send, url: str, accepts: list[PaymentRequirements], settled: SettleResponse
    ) -> None:
        await self._refuse(
            send,
            url,
            accepts,
            settled.error_reason or errors.SETTLEMENT_FAILED,
            settled.error_message or "the payment did not settle",
            settled,
        )

    async def _serve_then_settle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        payload: PaymentPayload,
        requirements: PaymentRequirements,
        url: str,
        accepts: list[PaymentRequirements],
        response_header: str,
    ) -> None:
        """x402's verify, serve, settle: the response is held until the payment settled."""
        path = scope["path"]
        try:
            verified = await self.facilitator.verify(payload, requirements)
        except Exception as error:
            logger.warning("facilitator failed for %s: %s", path, type(error).__name__)
            await self._refuse(
                send, url, accepts, errors.UNEXPECTED_ERROR, "the facilitator failed", None
            )
            return
        if not verified.is_valid:
            reason = verified.invalid_reason or errors.SETTLEMENT_FAILED
            logger.info("payment refused for %s: %s", path, reason)
            refused = SettleResponse(
                success=False,
                error_reason=reason,
                error_message=verified.invalid_message,
                payer=verified.payer,
                transaction="",
                network=requirements.network,
            )
            await self._refused_settlement(send, url, accepts, refused)
            return
        held: list[Message] = []
        held_bytes = 0
        state = "hold"  # "hold": keep the response back; "pass": forward it; "drop": refused

        async def settle_and_release() -> None:
            nonlocal state
            settled = await self._settle(payload, requirements, url, path)
            if not settled.success:
                state = "drop"
                held.clear()
                await self._refused_settlement(send, url, accepts, settled)
                return
            state = "pass"
            released = _with_header(send, response_header, encode(settled))
            for message in held:
                await released(message)
            held.clear()

        async def hold(message: Message) -> None:
            nonlocal state, held_bytes
            if state == "pass":
                await send(message)
                return
            if state == "drop":
                return
            if message["type"] == "http.response.start" and message.get("status", 500) >= 400:
                state = "pass"  # the handler failed: no settlement, its answer as it is
                await send(message)
                return
            held.append(message)
            if message["type"] != "http.response.body":
                return
            held_bytes += len(message.get("body", b""))
            if not message.get("more_body", False) or held_bytes > self.max_held_bytes:
                await settle_and_release()

        await self.app(_without_pathsend(scope), receive, hold)
        if state == "hold" and held:
            await settle_and_release()  # a handler that ended its response oddly

    async def _accepts(self, route: PricedRoute) -> list[PaymentRequirements]:
        if self._kinds is None:
            supported = await self.facilitator.fetch_supported()
            self._kinds = [
                (kind.scheme, kind.network, dict(kind.extra or {}))
                for kind in supported.kinds
                if kind.x402_version == 2
            ]
        accepts = []
        for scheme, network, extra in self._kinds:
            if is_ledger_network(network):
                option = PaymentRequirements(
                    scheme=scheme,
                    network=network,
                    asset=route.price.asset.code,
                    amount=str(route.price.atomic),
                    pay_to=self.pay_to,
                    max_timeout_seconds=self.max_timeout_s,
                    extra=extra,
                )
            elif is_evm_network(network):
                priced = _evm_price(route.price, extra)
                if priced is None:
                    continue
                asset, amount, domain = priced
                option = PaymentRequirements(
                    scheme=scheme,
                    network=network,
                    asset=asset,
                    amount=str(amount),
                    pay_to=self.pay_to,
                    max_timeout_seconds=self.max_timeout_s,
                    extra=domain,
                )
            else:
                continue
            accepts.append(option)
        return accepts

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


def _evm_price(price: Amount, extra: Mapping[str, Any]) -> tuple[str, int, dict[str, Any]] | None:
    """A route's price in an EVM token described by a `/supported` kind's ``extra``
    (``asset``, ``decimals``, ``assetCode``, ``name``, ``version``): the token address, the
    amount in its atomic units and the requirement's ``extra``; None if the token does not
    count as the price's asset or cannot carry the price exactly."""
    token, decimals, code = extra.get("asset"), extra.get("decimals"), extra.get("assetCode")
    name, version = extra.get("name"), extra.get("version")
    if not (
        isinstance(token, str)
        and isinstance(name, str)
        and isinstance(version, str)
        and isinstance(decimals, int)
        and not isinstance(decimals, bool)
        and 0 <= decimals <= MAX_TOKEN_DECIMALS
        and code == price.asset.code
    ):
        return None
    try:
        address = parse_address(token)
    except PaywireError:
        return None
    shift = decimals - price.asset.decimals
    if shift >= 0:
        amount = price.atomic * 10**shift
    elif price.atomic % 10**-shift == 0:
        amount = price.atomic // 10**-shift
    else:
        return None  # the token cannot express this price exactly
    return address, amount, {"name": name, "version": version}


def _as_v2(
    payload: PaymentPayload | PaymentPayloadV1, accepts: list[PaymentRequirements]
) -> PaymentPayload:
    """A version 1 payment as version 2: its scheme and network pick the requirement (a v1
    EVM network name, such as ``base-sepolia``, stands for its chain's CAIP-2 id)."""
    if isinstance(payload, PaymentPayload):
        return payload
    network = network_from_v1(payload.network) or payload.network
    for requirements in accepts:
        if (requirements.scheme, requirements.network) == (payload.scheme, network):
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


def _without_pathsend(scope: Scope) -> Scope:
    """`scope` without the ``http.response.pathsend`` extension, so a file response comes
    as body messages, which can be held back until the payment settled."""
    extensions = scope.get("extensions") or {}
    if "http.response.pathsend" not in extensions:
        return scope
    rest = {name: value for name, value in extensions.items() if name != "http.response.pathsend"}
    return {**scope, "extensions": rest}


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
