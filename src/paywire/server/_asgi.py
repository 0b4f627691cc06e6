"""ASGI plumbing for the middleware: responses, headers, and a response recorder."""

from __future__ import annotations

import time

from starlette.datastructures import Headers
from starlette.types import Message, Scope, Send

from paywire.protocol.idempotency import PaidResult

EXPOSE = "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE"
"""Headers a browser client may read (CORS)."""


class Recorder:
    """Passes a response on to the client and keeps a copy for replay (the body up to
    `max_kept_bytes`). The last body message is held until `flush`, so the answer is
    kept before the client has all of it: a client that retries at once finds it."""

    def __init__(self, send: Send, max_kept_bytes: int) -> None:
        self._send = send
        self._max_kept_bytes = max_kept_bytes
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.complete = False
        self._last: Message | None = None

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = [
                (bytes(name), bytes(value))
                for name, value in message.get("headers", [])
                if bytes(name).lower() != b"content-length"
            ]
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            self.size += len(body)
            if self.size <= self._max_kept_bytes:
                self.chunks.append(body)
            self.complete = not message.get("more_body", False)
            if self.complete:
                self._last = message
                return
        await self._send(message)

    async def flush(self) -> None:
        """Send the held last body message, if any."""
        last, self._last = self._last, None
        if last is not None:
            await self._send(last)

    def result(self, fingerprint: str, settlement: str) -> PaidResult:
        kept = self.size <= self._max_kept_bytes
        return PaidResult(
            fingerprint=fingerprint,
            status=self.status,
            headers=tuple(self.headers),
            body=b"".join(self.chunks) if kept else b"",
            settlement=settlement,
            created_at_s=time.time(),
            body_kept=kept,
        )


def request_url(scope: Scope, headers: Headers) -> str:
    host = headers.get("host", "localhost")
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope["path"] + (f"?{query}" if query else "")
    return f"{scope.get('scheme', 'http')}://{host}{path}"


def without_pathsend(scope: Scope) -> Scope:
    """`scope` without the ``http.response.pathsend`` extension, so a file response comes
    as body messages, which can be held back until the payment settled."""
    extensions = scope.get("extensions") or {}
    if "http.response.pathsend" not in extensions:
        return scope
    rest = {name: value for name, value in extensions.items() if name != "http.response.pathsend"}
    return {**scope, "extensions": rest}


def with_header(send: Send, name: str, value: str) -> Send:
    encoded = (name.lower().encode(), value.encode())

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [
                    *message.get("headers", []),
                    encoded,
                    (b"access-control-expose-headers", EXPOSE.encode()),
                ],
            }
        await send(message)

    return wrapped


async def respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
