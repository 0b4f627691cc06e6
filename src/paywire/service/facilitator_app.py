"""x402's facilitator API over HTTP: `POST /verify`, `POST /settle`, `GET /supported`.

Request and response bodies are x402 v2's (camelCase). A body that is not JSON, too
large, or not the x402 shape gets 400 with an x402 reason; a payment that is refused gets
200 with `isValid: false` / `success: false` and the reason, as x402 facilitators answer.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from x402.schemas import SettleRequest, VerifyRequest

from paywire._json import JsonTooDeep
from paywire._json import loads as load_json
from paywire.protocol import errors
from paywire.protocol.facilitator import Facilitator
from paywire.protocol.headers import MAX_JSON_DEPTH
from paywire.service.channels import channel_routes

MAX_BODY_BYTES = 64 * 1024
"""A verify or settle request is a few KB (a mandate chain included)."""


def _json(model: Any, status: int = 200) -> Response:
    return Response(
        model.model_dump_json(by_alias=True, exclude_none=True),
        status_code=status,
        media_type="application/json",
    )


def _bad(message: str, *, settle: bool) -> JSONResponse:
    if settle:
        body = {
            "success": False,
            "errorReason": errors.INVALID_PAYLOAD,
            "errorMessage": message,
            "transaction": "",
            "network": "",
        }
    else:
        body = {
            "isValid": False,
            "invalidReason": errors.INVALID_PAYLOAD,
            "invalidMessage": message,
        }
    return JSONResponse(body, status_code=400)


async def _read(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise ValueError(f"the body is larger than {MAX_BODY_BYTES} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ValueError(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the body is not UTF-8") from None
    try:
        return load_json(text, max_depth=MAX_JSON_DEPTH)
    except JsonTooDeep:
        raise ValueError(f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None


def facilitator_app(facilitator: Facilitator) -> Starlette:
    """An ASGI app serving `facilitator` (run it with uvicorn, or mount it)."""

    async def supported(request: Request) -> Response:
        return _json(facilitator.supported())

    async def verify(request: Request) -> Response:
        try:
            call = VerifyRequest.model_validate(await _read(request))
        except (ValueError, ValidationError) as error:
            return _bad(_why(error), settle=False)
        return _json(await facilitator.verify(call.payment_payload, call.payment_requirements))

    async def settle(request: Request) -> Response:
        try:
            call = SettleRequest.model_validate(await _read(request))
        except (ValueError, ValidationError) as error:
            return _bad(_why(error), settle=True)
        resource = call.payment_payload.resource
        return _json(
            await facilitator.settle(
                call.payment_payload,
                call.payment_requirements,
                resource=resource.url if resource else None,
            )
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "facilitator": facilitator.address})

    return Starlette(
        routes=[
            Route("/supported", supported, methods=["GET"]),
            Route("/verify", verify, methods=["POST"]),
            Route("/settle", settle, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            *channel_routes(facilitator),  # /channels: payment channels on the ledger
        ]
    )


def _why(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top)"
        return f"malformed request at {where}: {first['msg']}"
    if isinstance(error, json.JSONDecodeError):
        return "the body is not JSON"
    return str(error)
