"""httpx transports that pay 402s by themselves, and clients built on them.

    async with PaywireClient(key, max_per_payment="$0.01") as client:
        response = await client.get("http://localhost:8000/search?q=x")
        receipt = response.extensions["paywire_receipt"]

    # Also on EVM chains, in the tokens named (each counts as a ledger asset):
    PaywireClient(key, max_per_payment="$0.01", networks=["paywire:*", "eip155:*"],
                  tokens={"0xUSDCAddress": USDC})

On a 402 the transport reads `PAYMENT-REQUIRED`, asks its `Payer` for an option within
the spending limit, signs, and sends the same request again (body included, read once and
replayed) with `PAYMENT-SIGNATURE`. The answer's `PAYMENT-RESPONSE` receipt is checked and
kept (`Payer.receipts`, and the response's ``extensions["paywire_receipt"]``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements

from paywire.client.payer import DEFAULT_NETWORKS, Payer, PaymentDeclined, load_mandate
from paywire.crypto.keys import PrivateKey
from paywire.errors import PaywireError
from paywire.mandate import MandateChain
from paywire.money import Amount, Asset
from paywire.protocol.headers import (
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    decode_payment_required,
    decode_settle_response,
    encode,
)
from paywire.protocol.idempotency import payment_id

logger = logging.getLogger("paywire.client")

MAX_REPLAY_BODY_BYTES = 16 * 1024 * 1024
"""A request body is held in memory to be sent twice; past this, pay before you upload."""

MAX_PAID_ATTEMPTS = 3
"""Sends of one paid request when the connection fails (only for a payment with a payment
id, which the server answers once: a retry can never pay twice)."""

RECEIPT = "paywire_receipt"
"""The key of the checked receipt in a paid response's `extensions`."""

SETTLEMENT = "paywire_settlement"
"""The key of the decoded `PAYMENT-RESPONSE` in a paid response's `extensions`."""


def _required(response: httpx.Response) -> PaymentRequired:
    header = response.headers.get(PAYMENT_REQUIRED)
    if header is None:
        raise PaymentDeclined("the server answered 402 without a PAYMENT-REQUIRED header")
    try:
        return decode_payment_required(header)
    except PaywireError as error:
        raise PaymentDeclined(f"the server's PAYMENT-REQUIRED is unreadable: {error}") from None


def _retry(request: httpx.Request, body: bytes, payment: PaymentPayload) -> httpx.Request:
    headers = httpx.Headers(request.headers)
    headers[PAYMENT_SIGNATURE] = encode(payment)
    return httpx.Request(
        request.method, request.url, headers=headers, content=body, extensions=request.extensions
    )


def _retryable(payment: PaymentPayload, attempt: int, error: httpx.TransportError) -> bool:
    """Whether to send a paid request again after `error`: only a payment with an id."""
    if attempt + 1 >= MAX_PAID_ATTEMPTS or payment_id(payment) is None:
        return False
    logger.info("a paid request failed (%s); sending it again", type(error).__name__)
    return True


def _route(request: httpx.Request) -> str:
    """What a price is for: the method and the URL without its query."""
    url = request.url
    return f"{request.method} {url.scheme}://{url.netloc.decode('ascii')}{url.path}"


def _check_body(body: bytes) -> bytes:
    if len(body) > MAX_REPLAY_BODY_BYTES:
        raise PaymentDeclined(
            f"the request body is over {MAX_REPLAY_BODY_BYTES} bytes: too large to send twice"
        )
    return body


RECEIPT_ERROR = "paywire_receipt_error"
"""Why a paid response's receipt was not kept (the content is still returned: it was paid)."""


def _settled(
    payer: Payer, response: httpx.Response, requirements: PaymentRequirements, url: str
) -> None:
    """Read the answer's settlement: count the payment against the mandate, keep the
    receipt."""
    header = response.headers.get(PAYMENT_RESPONSE)
    if header is None:
        return
    try:
        settled = decode_settle_response(header)
        response.extensions[SETTLEMENT] = settled
        if settled.success:
            payer.record_payment(requirements, url)
            response.extensions[RECEIPT] = payer.keep_receipt(settled)
    except PaywireError as error:
        logger.warning("a paid response's receipt was not kept: %s", error)
        response.extensions[RECEIPT_ERROR] = str(error)


class PaymentTransport(httpx.AsyncBaseTransport):
    """Wraps an async transport; answers 402s with a payment from `payer`."""

    def __init__(self, payer: Payer, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.payer = payer
        self._inner = transport or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = _check_body(await request.aread())
        route = _route(request)
        known = self.payer.remembered(route)
        if known is not None:
            response = await self._send_paid(
                request, body, self.payer.pay(*known, str(request.url))
            )
        else:
            response = await self._inner.handle_async_request(request)
        if response.status_code != 402:
            if known is not None:
                _settled(self.payer, response, known[1], str(request.url))
            return response
        self.payer.forget(route)  # new terms, or a refused payment: ask afresh
        try:
            await response.aread()
        finally:
            await response.aclose()
        required = _required(response)
        requirements = self.payer.choose(required, str(request.url))
        paid = await self._send_paid(
            request, body, self.payer.pay(required, requirements, str(request.url))
        )
        _settled(self.payer, paid, requirements, str(request.url))
        if paid.status_code < 400:
            self.payer.remember(route, required, requirements)
        return paid

    async def _send_paid(
        self, request: httpx.Request, body: bytes, payment: PaymentPayload
    ) -> httpx.Response:
        paid = _retry(request, body, payment)
        attempt = 0
        while True:
            try:
                return await self._inner.handle_async_request(paid)
            except httpx.TransportError as error:
                if not _retryable(payment, attempt, error):
                    raise
                attempt += 1

    async def aclose(self) -> None:
        await self._inner.aclose()


class SyncPaymentTransport(httpx.BaseTransport):
    """`PaymentTransport` for synchronous httpx."""

    def __init__(self, payer: Payer, transport: httpx.BaseTransport | None = None) -> None:
        self.payer = payer
        self._inner = transport or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = _check_body(request.read())
        route = _route(request)
        known = self.payer.remembered(route)
        if known is not None:
            response = self._send_paid(request, body, self.payer.pay(*known, str(request.url)))
        else:
            response = self._inner.handle_request(request)
        if response.status_code != 402:
            if known is not None:
                _settled(self.payer, response, known[1], str(request.url))
            return response
        self.payer.forget(route)
        try:
            response.read()
        finally:
            response.close()
        required = _required(response)
        requirements = self.payer.choose(required, str(request.url))
        paid = self._send_paid(
            request, body, self.payer.pay(required, requirements, str(request.url))
        )
        _settled(self.payer, paid, requirements, str(request.url))
        if paid.status_code < 400:
            self.payer.remember(route, required, requirements)
        return paid

    def _send_paid(
        self, request: httpx.Request, body: bytes, payment: PaymentPayload
    ) -> httpx.Response:
        paid = _retry(request, body, payment)
        attempt = 0
        while True:
            try:
                return self._inner.handle_request(paid)
            except httpx.TransportError as error:
                if not _retryable(payment, attempt, error):
                    raise
                attempt += 1

    def close(self) -> None:
        self._inner.close()


def _payer(
    key: PrivateKey,
    max_per_payment: str | Amount | Sequence[str | Amount],
    networks: Sequence[str],
    facilitators: Mapping[str, str] | None,
    tokens: Mapping[str, Asset] | None,
    mandate: MandateChain | str | Path | None,
) -> Payer:
    return Payer.create(
        key,
        max_per_payment=max_per_payment,
        networks=networks,
        facilitators=facilitators,
        tokens=tokens,
        mandate=mandate if mandate is not None else load_mandate(),
    )


class PaywireClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` that pays x402 402s within `max_per_payment` (and within
    `mandate`, default `$PAYWIRE_MANDATE`, if given)."""

    def __init__(
        self,
        key: PrivateKey,
        *,
        max_per_payment: str | Amount | Sequence[str | Amount],
        networks: Sequence[str] = DEFAULT_NETWORKS,
        facilitators: Mapping[str, str] | None = None,
        tokens: Mapping[str, Asset] | None = None,
        mandate: MandateChain | str | Path | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        self.payer = _payer(key, max_per_payment, networks, facilitators, tokens, mandate)
        super().__init__(transport=PaymentTransport(self.payer, transport), **kwargs)


class SyncPaywireClient(httpx.Client):
    """An `httpx.Client` that pays x402 402s within `max_per_payment` (and within
    `mandate`, default `$PAYWIRE_MANDATE`, if given)."""

    def __init__(
        self,
        key: PrivateKey,
        *,
        max_per_payment: str | Amount | Sequence[str | Amount],
        networks: Sequence[str] = DEFAULT_NETWORKS,
        facilitators: Mapping[str, str] | None = None,
        tokens: Mapping[str, Asset] | None = None,
        mandate: MandateChain | str | Path | None = None,
        transport: httpx.BaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        self.payer = _payer(key, max_per_payment, networks, facilitators, tokens, mandate)
        super().__init__(transport=SyncPaymentTransport(self.payer, transport), **kwargs)
