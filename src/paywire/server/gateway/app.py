"""The gateway's ASGI app: OpenAI's API, paid per request (``exact``) or per token (channels).

    app = gateway_app(LocalModelUpstream(), PriceBook.load("prices.toml"),
                      pay_to="0xProvider", facilitator=RemoteFacilitator("http://..."))

Routes: ``GET /v1/models`` (free: the price book's models the upstream serves, with their
prices), ``POST /v1/chat/completions`` (with and without ``stream``) and
``POST /v1/embeddings`` (paid), ``GET /health``. A paid route reads and checks the request
first (400, 404, 413 in OpenAI's error shape, before any payment is asked), quotes it
(`paywire.server.gateway._quote`), and takes its payment (`paywire.server.gateway._billing`):
402 with terms computed for this request when unpaid. Answers carry the upstream's body as
it came (the ``model`` as the client named it), a ``paywire`` field with the charge, and
``PAYMENT-RESPONSE``; streams are relayed by `paywire.server.gateway._stream`.

Every failure is an OpenAI-shaped error with its status: 400 a bad request, 402 payment,
404 an unknown model or route, 405 a wrong method, 413 a body too large, 502/503/504 the
upstream or the facilitator; a 500 only for a bug, never for input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from paywire.crypto.keys import parse_address
from paywire.meter import ModelPrice, PriceBook, UnknownModel
from paywire.protocol.facilitator import FacilitatorLike
from paywire.server._asgi import EXPOSE, request_url
from paywire.server.gateway._billing import DEFAULT_MAX_TIMEOUT_S, Biller
from paywire.server.gateway._bills import EXACT, Bill
from paywire.server.gateway._errors import (
    SERVER_ERROR,
    UPSTREAM_ERROR,
    GatewayError,
    send_error,
    send_json,
)
from paywire.server.gateway._quote import Quote, quote_chat, quote_embedding, response_usage
from paywire.server.gateway._requests import (
    MAX_BODY_BYTES,
    ChatRequest,
    parse_chat,
    parse_embedding,
    read_body,
)
from paywire.server.gateway._stream import Relay, Watcher
from paywire.server.gateway.channels import BATCH_SETTLEMENT, ChannelGate
from paywire.server.gateway.upstream import Json, Upstream, UpstreamError

logger = logging.getLogger("paywire.gateway")

ROUTES = {
    "/v1/models": "GET",
    "/v1/chat/completions": "POST",
    "/v1/embeddings": "POST",
    "/health": "GET",
}


class GatewayApp:
    """The paid OpenAI-compatible API in front of `upstream` (see the module's doc)."""

    def __init__(
        self,
        upstream: Upstream,
        price_book: PriceBook,
        pay_to: str,
        facilitator: FacilitatorLike,
        channels: ChannelGate[Any] | None = None,
        *,
        description: str | None = "paid LLM gateway",
        max_timeout_s: int = DEFAULT_MAX_TIMEOUT_S,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.upstream = upstream
        self.price_book = price_book
        self.pay_to = parse_address(pay_to)
        self.max_body_bytes = max_body_bytes
        self.biller = Biller(
            facilitator,
            channels,
            self.pay_to,
            max_timeout_s=max_timeout_s,
            description=description,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, self.biller.channels)
            return
        if scope["type"] != "http":
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._route(scope, receive, tracked)
        except GatewayError as error:
            if not started:
                await send_error(send, error)
        except Exception:
            logger.exception("the gateway failed on %s", scope.get("path"))
            if not started:
                await send_error(
                    send,
                    GatewayError(500, "the gateway failed", code="internal", type_=SERVER_ERROR),
                )

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"].rstrip("/") or "/", scope["method"]
        if path.startswith("/v1/models/") and method == "GET":
            await send_json(send, 200, self._model(path.removeprefix("/v1/models/")))
            return
        expected = ROUTES.get(path)
        if expected is None:
            raise GatewayError(404, f"no route {path[:200]!r}", code="unknown_url")
        if method != expected:
            raise GatewayError(405, f"{path} takes {expected}", code="method_not_allowed")
        if path == "/health":
            await send_json(send, 200, {"status": "ok", "upstream": self.upstream.description})
        elif path == "/v1/models":
            await send_json(send, 200, self.models())
        elif path == "/v1/chat/completions":
            await self._chat(scope, receive, send)
        else:
            await self._embeddings(scope, receive, send)

    def models(self) -> dict[str, Any]:
        """``GET /v1/models``: OpenAI's list, each model with its price (``pricing``)."""
        tables = self.price_book.to_mapping()["models"]
        data = []
        for entry in self.price_book:
            aliases = list(tables[entry.priced_as].get("aliases", []))
            if not any(self.upstream.serves(name) for name in (entry.priced_as, *aliases)):
                continue
            data.append(
                {
                    "id": entry.priced_as,
                    "object": "model",
                    "created": 0,
                    "owned_by": "paywire",
                    "aliases": aliases,
                    "pricing": {
                        "asset": entry.asset.code,
                        "decimals": entry.asset.decimals,
                        "input_per_mtok": entry.per_mtok("input"),
                        "cached_input_per_mtok": entry.per_mtok("cached_input"),
                        "output_per_mtok": entry.per_mtok("output"),
                    },
                }
            )
        schemes = [EXACT] + ([BATCH_SETTLEMENT] if self.biller.channels is not None else [])
        return {
            "object": "list",
            "data": data,
            "paywire": {
                "price_book": self.price_book.digest,
                "pay_to": self.pay_to,
                "schemes": schemes,
            },
        }

    def _model(self, model: str) -> dict[str, Any]:
        for entry in self.models()["data"]:
            if model.lower() in (entry["id"].lower(), *(a.lower() for a in entry["aliases"])):
                return dict(entry)
        raise self._unknown(model)

    def _unknown(self, model: str) -> GatewayError:
        served = [entry["id"] for entry in self.models()["data"]]
        return GatewayError(
            404,
            f"the model {model[:128]!r} is not served here; models: {', '.join(served) or 'none'}",
            code="model_not_found",
            param="model",
            extra={"models": served},
        )

    def _price(self, model: str) -> ModelPrice:
        if not self.upstream.serves(model):
            raise self._unknown(model)
        try:
            return self.price_book.price(model)
        except UnknownModel:
            raise self._unknown(model) from None

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        request = parse_chat(await read_body(receive, headers, self.max_body_bytes))
        quote = await quote_chat(self._price(request.model), request, self.upstream.context_window)
        bill = await self.biller.bill(headers, quote, request_url(scope, headers))
        body = request.upstream_body(bill.limit_tokens)
        watcher = Watcher(receive)
        try:
            if request.stream:
                await self._stream(send, watcher, bill, quote, request, body)
            else:
                await self._answer(send, watcher, bill, quote, self.upstream.chat(body))
        finally:
            await watcher.aclose()

    async def _embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        request = parse_embedding(await read_body(receive, headers, self.max_body_bytes))
        quote = await quote_embedding(self._price(request.model), request)
        bill = await self.biller.bill(headers, quote, request_url(scope, headers))
        watcher = Watcher(receive)
        try:
            await self._answer(
                send, watcher, bill, quote, self.upstream.embeddings(request.upstream_body())
            )
        finally:
            await watcher.aclose()

    async def _stream(
        self,
        send: Send,
        watcher: Watcher,
        bill: Bill,
        quote: Quote,
        request: ChatRequest,
        body: Json,
    ) -> None:
        chunks = self.upstream.chat_stream(body)
        relay = Relay(send, watcher, chunks, bill, quote, request)
        try:
            await relay.run()
        except UpstreamError as error:  # before the first byte: nothing delivered, no charge
            await bill.cancel()
            raise _upstream_error(error) from None
        except BaseException:
            if not relay.finished:
                with contextlib.suppress(Exception):
                    await asyncio.shield(bill.cancel())
            raise
        finally:
            with contextlib.suppress(Exception):
                await chunks.aclose()

    async def _answer(
        self, send: Send, watcher: Watcher, bill: Bill, quote: Quote, work: Any
    ) -> None:
        """A non-streaming answer: run, then collect, then send (nothing is collected for
        an answer that fails or whose client left before it)."""
        task: asyncio.Future[Json] = asyncio.ensure_future(work)
        collected = False
        try:
            waiting: set[asyncio.Future[Any]] = {task, watcher.task}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if not task.done() or watcher.gone:
                return  # the client left: nothing delivered, nothing collected
            try:
                response = task.result()
            except UpstreamError as error:
                raise _upstream_error(error) from None
            usage, source = response_usage(response, quote, bill.limit_tokens)
            header = await bill.open()
            record = await bill.close(usage, source)
            collected = True
            response.setdefault("usage", usage.to_openai())
            response["paywire"] = record
            paid = header or record.get("payment_response")
            extra = [(b"access-control-expose-headers", EXPOSE.encode())]
            if paid:
                extra.append((bill.response_header.lower().encode(), str(paid).encode()))
            await send_json(send, 200, response, extra)
        finally:
            if not task.done():
                task.cancel()
            if not collected:
                with contextlib.suppress(Exception):
                    await asyncio.shield(bill.cancel())


def _upstream_error(error: UpstreamError) -> GatewayError:
    kind = "invalid_request_error" if 400 <= error.status < 500 else UPSTREAM_ERROR
    return GatewayError(error.status, error.message, code=error.code, type_=kind)


async def _lifespan(receive: Receive, send: Send, channels: object) -> None:
    """Start the channels (a `ChannelBook`'s claim timer runs in the server's loop) and
    close them (claiming what is due) with the server."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            start = getattr(channels, "start", None)
            try:
                if start is not None:
                    await start()
            except Exception as error:
                await send({"type": "lifespan.startup.failed", "message": str(error)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            close = getattr(channels, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
            await send({"type": "lifespan.shutdown.complete"})
            return


def gateway_app(
    upstream: Upstream,
    price_book: PriceBook,
    pay_to: str,
    facilitator: FacilitatorLike,
    channels: ChannelGate[Any] | None = None,
    **options: Any,
) -> GatewayApp:
    """The gateway's ASGI app (see `GatewayApp` for the options)."""
    return GatewayApp(upstream, price_book, pay_to, facilitator, channels, **options)
