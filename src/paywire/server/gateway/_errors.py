"""Errors in OpenAI's shape, ``{"error": {"message", "type", "code", "param"}}``, and the
ASGI plumbing to send JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.types import Send

INVALID_REQUEST = "invalid_request_error"
PAYMENT_REQUIRED_TYPE = "payment_required"
UPSTREAM_ERROR = "upstream_error"
SERVER_ERROR = "server_error"

JSON_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


class GatewayError(Exception):
    """A request the gateway answers with an error: `status` and OpenAI's error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        type_: str = INVALID_REQUEST,
        param: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type_
        self.param = param
        self.extra = dict(extra or {})
        self.headers = list(headers or [])

    def body(self) -> dict[str, Any]:
        """The error as OpenAI sends it (plus any `extra` fields beside ``error``)."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            },
            **self.extra,
        }


def bad_request(
    message: str, code: str = "invalid_request", param: str | None = None
) -> GatewayError:
    return GatewayError(400, message, code=code, param=param)


def dump(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def send_json(
    send: Send,
    status: int,
    body: Mapping[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    data = dump(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *JSON_HEADERS,
                *(headers or []),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def send_error(send: Send, error: GatewayError) -> None:
    await send_json(send, error.status, error.body(), error.headers)
