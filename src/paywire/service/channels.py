"""The facilitator's channel endpoints (ledger network), beside /verify and /settle:

    GET  /channels               what a client needs: network, assets, their EIP-712
                                 domains, the channel lifetimes allowed
    POST /channels/open          {paymentPayload}: open or top up (the payer's signed
                                 OpenChannel, its mandate chain in the payment's
                                 paywire-mandate extension) -> the channel
    GET  /channels/<channel id>  the channel as the ledger says now (404: none)
    POST /channels/claim         a receiver's signed ClaimBatch -> {"outcomes": [...]}

The bodies are those of `paywire.protocol.channel.ledger_wire`. A refusal is JSON
``{"error": <reason>, "message": ...}``: 400 for a malformed request, 402 for a refused
open (``insufficient_funds``, ``mandate_total_exceeded``, ...), 503 when the ledger is
unavailable. A claim batch answers 200 with one outcome per claim, refused ones included.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from x402.schemas import PaymentPayload

from paywire._json import loads as load_json
from paywire.errors import PaywireError
from paywire.protocol.channel import ClaimBatch, LedgerChannels
from paywire.protocol.errors import INVALID_PAYLOAD, PaymentProblem
from paywire.protocol.facilitator import Facilitator
from paywire.protocol.ledger_network import LedgerExactScheme

MAX_BODY_BYTES = 1024 * 1024
"""A claim batch of a few hundred channels with their charges' summaries."""

_CHANNELS: weakref.WeakKeyDictionary[Facilitator, LedgerChannels] = weakref.WeakKeyDictionary()


def channels_for(facilitator: Facilitator) -> LedgerChannels | None:
    """The `LedgerChannels` of `facilitator`'s ledger network (one per facilitator, shared
    by its HTTP endpoints and an in-process provider), None if it settles no ledger."""
    known = _CHANNELS.get(facilitator)
    if known is not None:
        return known
    handler = next((h for h in facilitator.handlers if isinstance(h, LedgerExactScheme)), None)
    if handler is None:
        return None
    channels = LedgerChannels(
        handler.ledger, assets=getattr(handler, "_assets", None), mandates=handler.mandates
    )
    _CHANNELS[facilitator] = channels
    return channels


def _refused(reason: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": reason, "message": message}, status_code=status)


async def _body(request: Request) -> Any:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise PaymentProblem(INVALID_PAYLOAD, "the body is too large", status=400)
    try:
        return load_json(raw)
    except ValueError:
        raise PaymentProblem(INVALID_PAYLOAD, "the body is not JSON", status=400) from None


def channel_routes(facilitator: Facilitator) -> list[Route]:
    """The ``/channels`` routes for `facilitator` (none if it settles no ledger)."""
    channels = channels_for(facilitator)
    if channels is None:
        return []
    return channels_routes(channels)


_Work = Callable[[Request], Awaitable[Response]]


def channels_routes(channels: LedgerChannels) -> list[Route]:
    """The ``/channels`` routes serving `channels`."""

    async def guarded(work: _Work, request: Request) -> Response:
        try:
            return await work(request)
        except PaymentProblem as problem:
            return _refused(problem.reason, problem.message, problem.status)
        except PaywireError as error:
            status = 503 if error.code == "ledger_unavailable" else 400
            return _refused(error.code, str(error), status)

    async def info(request: Request) -> Response:
        return JSONResponse(channels.info())

    async def open_channel(request: Request) -> Response:
        data = await _body(request)
        if isinstance(data, dict) and "paymentPayload" in data:
            data = data["paymentPayload"]
        try:
            payload = PaymentPayload.model_validate(data)
        except ValidationError as error:
            where = ".".join(str(part) for part in error.errors()[0]["loc"]) or "(top)"
            message = f"malformed payment at {where}"
            raise PaymentProblem(INVALID_PAYLOAD, message, status=400) from None
        state = await channels.open(payload)
        return JSONResponse(state.to_json())

    async def claim(request: Request) -> Response:
        batch = ClaimBatch.from_json(await _body(request))
        outcomes = await channels.claim(batch)
        return JSONResponse({"outcomes": [outcome.to_json() for outcome in outcomes]})

    async def channel(request: Request) -> Response:
        state = await channels.state(str(request.path_params["channel_id"]))
        if state is None:
            return _refused("channel_unknown", "no such channel", 404)
        return JSONResponse(state.to_json())

    def route(path: str, work: _Work, method: str) -> Route:
        async def endpoint(request: Request) -> Response:
            return await guarded(work, request)

        return Route(path, endpoint, methods=[method])

    return [
        route("/channels", info, "GET"),
        route("/channels/open", open_channel, "POST"),
        route("/channels/claim", claim, "POST"),
        route("/channels/{channel_id}", channel, "GET"),
    ]
