"""httpx transports that pay `batch-settlement` 402s through channels, by themselves.

    payer = Payer.create(key, max_per_payment="$0.05")
    with httpx.Client(transport=SyncChannelTransport(payer, deposit_atomic=1_000_000)) as c:
        c.post("http://gateway/v1/chat/completions", json=...)

The first 402 of a provider opens a ledger channel at the facilitator it names (deposit:
`deposit_atomic`, else the 402's ``minDeposit``); every request after it carries a voucher
for the route's last quoted maximum on top of the charged total. A corrective 402 resyncs
the channel and the request is sent once more; a channel that ended (closed, expiring,
spent) is replaced by a new one. Each answer's charged total is kept (`ChannelPayer`).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import httpx
from x402.schemas import PaymentRequired, PaymentRequirements

from paywire.client.channels import DEFAULT_TTL_S, ChannelPayer
from paywire.client.payer import Payer, PaymentDeclined
from paywire.errors import PaywireError
from paywire.protocol.channel.wire import CHANNEL_BUSY, SCHEME
from paywire.protocol.headers import PAYMENT_REQUIRED, PAYMENT_SIGNATURE, decode_payment_required

MAX_BODY_BYTES = 16 * 1024 * 1024
"""A request body is held in memory to be sent again after a 402."""

MIN_DEPOSIT_PRICES = 10


def _route(request: httpx.Request) -> str:
    url = request.url
    return f"{request.method} {url.scheme}://{url.netloc.decode('ascii')}{url.path}"


def _required(response: httpx.Response) -> PaymentRequired | None:
    header = response.headers.get(PAYMENT_REQUIRED)
    if response.status_code != 402 or header is None:
        return None
    try:
        return decode_payment_required(header)
    except PaywireError:
        return None


def _busy(required: PaymentRequired | None) -> bool:
    """A refusal because another request holds the channel: the channel is fine."""
    return required is not None and CHANNEL_BUSY in (required.error or "")


def _paid(request: httpx.Request, body: bytes, header: str) -> httpx.Request:
    headers = httpx.Headers(request.headers)
    headers[PAYMENT_SIGNATURE] = header
    return httpx.Request(
        request.method, request.url, headers=headers, content=body, extensions=request.extensions
    )


MAX_ATTEMPTS = 3
"""Sends of one request: a corrective 402 resyncs, an ended channel is replaced."""


@dataclass(slots=True)
class _Channels:
    """The channels of one transport, by (network, asset, payee), and routes' prices."""

    payer: Payer
    deposit_atomic: int | None
    ttl_s: int
    channels: dict[tuple[str, str, str], ChannelPayer] = field(default_factory=dict)
    options: dict[tuple[str, str, str], PaymentRequirements] = field(default_factory=dict)
    prices: dict[str, tuple[tuple[str, str, str], int]] = field(default_factory=dict)

    def learn(self, required: PaymentRequired | None) -> tuple[tuple[str, str, str], int] | None:
        """The channel option of a 402 (remembered), as (key, price); None if none."""
        if required is None:
            return None
        for option in required.accepts:
            if option.scheme == SCHEME and any(
                fnmatch.fnmatchcase(option.network, pattern) for pattern in self.payer.networks
            ):
                key = (option.network, option.asset, option.pay_to.lower())
                self.options[key] = option
                return key, int(option.amount)
        raise PaymentDeclined("the provider offers no channel this payer may use")

    def deposit(self, option: PaymentRequirements) -> int:
        if self.deposit_atomic is not None:
            return self.deposit_atomic
        minimum = str((option.extra or {}).get("minDeposit", ""))
        return int(minimum) if minimum.isdigit() else int(option.amount) * MIN_DEPOSIT_PRICES


class ChannelTransport(httpx.AsyncBaseTransport):
    """Wraps an async transport; pays `batch-settlement` 402s through channels."""

    def __init__(
        self,
        payer: Payer,
        *,
        deposit_atomic: int | None = None,
        ttl_s: int = DEFAULT_TTL_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.state = _Channels(payer, deposit_atomic, ttl_s)
        self._inner = transport or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        if len(body) > MAX_BODY_BYTES:
            raise PaymentDeclined("the request body is too large to send twice")
        route, state = _route(request), self.state
        terms = state.prices.get(route)
        if terms is None:
            response = await self._inner.handle_async_request(request)
            if response.status_code != 402:
                return response
            await response.aread()
            await response.aclose()
            terms = state.learn(_required(response))
            if terms is None:
                return response
        for _ in range(MAX_ATTEMPTS):
            key, price = terms
            channel = state.channels.get(key)
            if channel is None:
                option = state.options[key]
                channel = await ChannelPayer.open_ledger(
                    state.payer,
                    option,
                    state.deposit(option),
                    ttl_s=state.ttl_s,
                    resource=str(request.url),
                )
                state.channels[key] = channel
            sent = _paid(request, body, channel.next_voucher(price, url=str(request.url)))
            response = await self._inner.handle_async_request(sent)
            response.request = sent
            if response.status_code != 402:
                channel.settled(response)
                if response.status_code < 400:
                    state.prices[route] = terms
                return response
            await response.aread()
            required = _required(response)
            if not channel.settled(response) and not _busy(required):
                state.channels.pop(key, None)  # not a resync: the channel has ended
            terms = state.learn(required) or terms
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class SyncChannelTransport(httpx.BaseTransport):
    """`ChannelTransport` for synchronous httpx."""

    def __init__(
        self,
        payer: Payer,
        *,
        deposit_atomic: int | None = None,
        ttl_s: int = DEFAULT_TTL_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.state = _Channels(payer, deposit_atomic, ttl_s)
        self._inner = transport or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        if len(body) > MAX_BODY_BYTES:
            raise PaymentDeclined("the request body is too large to send twice")
        route, state = _route(request), self.state
        terms = state.prices.get(route)
        if terms is None:
            response = self._inner.handle_request(request)
            if response.status_code != 402:
                return response
            response.read()
            response.close()
            terms = state.learn(_required(response))
            if terms is None:
                return response
        for _ in range(MAX_ATTEMPTS):
            key, price = terms
            channel = state.channels.get(key)
            if channel is None:
                option = state.options[key]
                channel = ChannelPayer.open_ledger_sync(
                    state.payer,
                    option,
                    state.deposit(option),
                    ttl_s=state.ttl_s,
                    resource=str(request.url),
                )
                state.channels[key] = channel
            sent = _paid(request, body, channel.next_voucher(price, url=str(request.url)))
            response = self._inner.handle_request(sent)
            response.request = sent
            if response.status_code != 402:
                channel.settled(response)
                if response.status_code < 400:
                    state.prices[route] = terms
                return response
            response.read()
            required = _required(response)
            if not channel.settled(response) and not _busy(required):
                state.channels.pop(key, None)
            terms = state.learn(required) or terms
        return response

    def close(self) -> None:
        self._inner.close()
