"""A paid stream: server-sent events relayed from the upstream within what was paid for.

The voucher (or ``exact`` payment) authorized a maximum before the stream starts; the
gateway passes the upstream a ``max_tokens`` within it *and* counts the tokens it relays
(one per chunk that adds text, `chunk_tokens`): when the next chunk would pass the maximum,
it stops the upstream and ends the stream with ``finish_reason: "length"``, whatever the
upstream does. The stream ends with::

    data: {... "choices": [], "usage": {...}}        (if the client asked include_usage)
    data: {"object": "chat.completion.chunk", "choices": [], "paywire": {record}}
    data: [DONE]

where the record (`paywire.server.gateway._billing.record`) carries the actual charge, the
meter's detail and the settle response (``payment_response``, as ``PAYMENT-RESPONSE``
would carry it, with the signed receipt). What is charged:

- a stream that ran to its end: the upstream's reported usage (else the prompt counted and
  the chunks delivered);
- a stream cut short (the client left, the maximum reached, the upstream failed): the
  prompt and the chunks actually handed to the server for the client's socket; nothing at
  all if no chunk was.

The client leaving is noticed by listening for ``http.disconnect`` while waiting for the
upstream's next chunk, so the upstream is stopped at once, not at its next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from starlette.types import Receive, Send

from paywire.meter import InvalidUsage, Usage, UsageSource
from paywire.server.gateway._bills import Bill
from paywire.server.gateway._errors import GatewayError
from paywire.server.gateway._quote import Quote
from paywire.server.gateway._requests import ChatRequest
from paywire.server.gateway.upstream import (
    Json,
    UpstreamError,
    chunk_tokens,
    chunk_usage,
    finish_reason,
    is_usage_only,
)

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]

STOP_CLIENT = "client_disconnected"
STOP_LENGTH = "length"
STOP_UPSTREAM = "upstream_error"


class Watcher:
    """Listens for the client leaving (``http.disconnect``) once the body is read."""

    def __init__(self, receive: Receive) -> None:
        self.task = asyncio.ensure_future(self._watch(receive))

    @staticmethod
    async def _watch(receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    @property
    def gone(self) -> bool:
        return self.task.done()

    async def aclose(self) -> None:
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task


async def next_chunk(
    chunks: AsyncGenerator[Json, None], watcher: Watcher
) -> tuple[str, Json | None]:
    """The upstream's next chunk (``"chunk"``), its end (``"end"``), or the client gone
    first (``"gone"``: the pending read is cancelled, which stops the upstream)."""
    if watcher.gone:
        return "gone", None
    step: asyncio.Future[Json] = asyncio.ensure_future(chunks.__anext__())
    waiting: set[asyncio.Future[Any]] = {step, watcher.task}
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if step in done:
        try:
            return "chunk", step.result()
        except StopAsyncIteration:
            return "end", None
    step.cancel()
    with contextlib.suppress(BaseException):
        await step
    return "gone", None


class Relay:
    """One stream's relay and tally."""

    def __init__(
        self,
        send: Send,
        watcher: Watcher,
        chunks: AsyncGenerator[Json, None],
        bill: Bill,
        quote: Quote,
        request: ChatRequest,
    ) -> None:
        self.send = send
        self.watcher = watcher
        self.chunks = chunks
        self.bill = bill
        self.quote = quote
        self.request = request
        self.delivered = 0
        self.reported: Mapping[str, Any] | None = None
        self.finish: str | None = None
        self.finished = False
        """Whether the bill was closed or cancelled."""
        self.id = f"chatcmpl-paywire-{secrets.token_hex(12)}"
        self.created = int(time.time())

    async def run(self) -> dict[str, Any]:
        """Relay the stream; the record of its charge. Before the first byte, an upstream
        failure (`UpstreamError`) or a refused settlement (`GatewayError`) propagates, and
        nothing is charged."""
        kind, chunk = await next_chunk(self.chunks, self.watcher)
        if kind == "gone":
            self.finished = True
            return await self.bill.cancel()
        header = await self.bill.open()
        headers = list(SSE_HEADERS)
        if header is not None:
            headers.append((self.bill.response_header.lower().encode(), header.encode()))
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})
        stopped: str | None = None
        error: UpstreamError | None = None
        try:
            while kind == "chunk":
                assert chunk is not None
                stopped = await self._relay(chunk)
                if stopped is not None:
                    break
                kind, chunk = await next_chunk(self.chunks, self.watcher)
            if kind == "gone":
                stopped = STOP_CLIENT
        except UpstreamError as failure:
            error, stopped = failure, STOP_UPSTREAM
        finally:
            with contextlib.suppress(Exception):
                await self.chunks.aclose()
        return await self._finish(stopped, error)

    async def _relay(self, chunk: Json) -> str | None:
        """Pass one chunk on; why the stream stops before it, if it does."""
        usage = chunk_usage(chunk)
        if usage is not None:
            self.reported = usage
        if is_usage_only(chunk):
            return None  # the gateway sends its own usage chunk, of what it charged
        tokens = chunk_tokens(chunk)
        if self.delivered + tokens > self.bill.limit_tokens:
            return STOP_LENGTH
        if self.watcher.gone:
            return STOP_CLIENT
        if self.request.include_usage:
            chunk["usage"] = None
        else:
            chunk.pop("usage", None)
        await self._event(chunk)
        self.delivered += tokens
        self.finish = finish_reason(chunk) or self.finish
        if isinstance(chunk.get("id"), str):
            self.id = chunk["id"]
        return None

    async def _finish(self, stopped: str | None, error: UpstreamError | None) -> dict[str, Any]:
        complete = stopped is None
        usage, source = self._usage(complete)
        self.finished = True
        if self.delivered == 0 and not complete:
            record = await self.bill.cancel()
        else:
            try:
                record = await self.bill.close(usage, source)
            except GatewayError as failure:  # the content went out; say the charge failed
                record = {"scheme": self.bill.scheme, "charged": "0", **failure.body()}
        record["stopped"] = stopped or self.finish or "stop"
        if not self.watcher.gone:
            if stopped == STOP_LENGTH:
                await self._event(
                    self._chunk([{"index": 0, "delta": {}, "finish_reason": "length"}])
                )
            if error is not None:
                await self._event(
                    {
                        "error": {
                            "message": error.message,
                            "type": "upstream_error",
                            "code": error.code,
                        }
                    }
                )
            if self.request.include_usage:
                await self._event({**self._chunk([]), "usage": record.get("usage")})
            await self._event({**self._chunk([]), "paywire": record})
            await self._data(b"[DONE]")
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        return record

    def _usage(self, complete: bool) -> tuple[Usage, UsageSource]:
        if complete and self.reported is not None:
            try:
                return Usage.from_openai(self.reported), "upstream"
            except InvalidUsage:
                pass
        return self.quote.delivered_usage(self.delivered)

    def _chunk(self, choices: list[Json]) -> Json:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.request.model,
            "choices": choices,
        }

    async def _event(self, data: Mapping[str, Any]) -> None:
        await self._data(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())

    async def _data(self, data: bytes) -> None:
        await self.send(
            {"type": "http.response.body", "body": b"data: " + data + b"\n\n", "more_body": True}
        )
