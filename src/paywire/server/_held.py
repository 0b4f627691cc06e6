"""x402's verify, serve, settle for EVM payments: the handler runs after the payment was
verified, and its response is held back until the payment settled (see the middleware's
docstring for the trade-off against settling first)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.types import Message, Receive, Scope, Send
from x402.schemas import PaymentPayload, PaymentRequirements, SettleResponse

from paywire.protocol import errors
from paywire.protocol.headers import encode
from paywire.server._asgi import with_header, without_pathsend

if TYPE_CHECKING:
    from paywire.server.middleware import PaymentMiddleware

logger = logging.getLogger("paywire.server")


async def serve_then_settle(
    middleware: PaymentMiddleware,
    scope: Scope,
    receive: Receive,
    send: Send,
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    url: str,
    accepts: list[PaymentRequirements],
    response_header: str,
) -> str | None:
    """x402's verify, serve, settle: the response is held until the payment settled.
    The `PAYMENT-RESPONSE` sent if the money moved, None if it did not."""
    path = scope["path"]
    try:
        verified = await middleware.facilitator.verify(payload, requirements)
    except Exception as error:
        logger.warning("facilitator failed for %s: %s", path, type(error).__name__)
        await middleware.refuse(
            send, url, accepts, errors.UNEXPECTED_ERROR, "the facilitator failed", None
        )
        return None
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
        await middleware.refused_settlement(send, url, accepts, refused)
        return None
    held: list[Message] = []
    held_bytes = 0
    state = "hold"  # "hold": keep the response back; "pass": forward it; "drop": refused
    settlement: str | None = None

    async def settle_and_release() -> None:
        nonlocal state, settlement
        settled = await middleware.settle(payload, requirements, url, path)
        if not settled.success:
            state = "drop"
            held.clear()
            await middleware.refused_settlement(send, url, accepts, settled)
            return
        state = "pass"
        settlement = encode(settled)
        released = with_header(send, response_header, settlement)
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
        if not message.get("more_body", False) or held_bytes > middleware.max_held_bytes:
            await settle_and_release()

    await middleware.app(without_pathsend(scope), receive, hold)
    if state == "hold" and held:
        await settle_and_release()  # a handler that ended its response oddly
    return settlement
