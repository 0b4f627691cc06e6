"""Helpers for the HTTP 402 tests: funding wallets, a priced provider app."""

from __future__ import annotations

import base64
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, Ledger, NewAccount, transfer
from paywire.ledger.names import wallet_account_id
from paywire.money import USDC
from paywire.server import PaymentMiddleware


def without_payment_id(header: str) -> str:
    """A PAYMENT-SIGNATURE header without its payment-identifier id (as sent by a client
    that does not use the extension)."""
    payment = json.loads(base64.b64decode(header))
    payment.pop("extensions", None)
    return base64.b64encode(json.dumps(payment).encode()).decode()


def fund(ledger: Ledger, key: PrivateKey, atomic: int) -> str:
    account = wallet_account_id(key.address, "USDC")
    ledger.open_account(NewAccount(account, USDC, AccountKind.AGENT, owner=key.address))
    ledger.submit(transfer(f"fund-{key.address}-{atomic}", "world", account, USDC.atomic(atomic)))
    return account


class Calls:
    """How many times each handler ran (content must never be served unpaid)."""

    def __init__(self) -> None:
        self.count = 0


def provider_app(
    facilitator: object, pay_to: str, calls: Calls, routes: dict[str, str] | None = None
) -> ASGIApp:
    async def search(request: Request) -> Response:
        calls.count += 1
        return JSONResponse({"results": ["a", "b"], "q": request.query_params.get("q")})

    async def echo(request: Request) -> Response:
        calls.count += 1
        return Response(await request.body(), media_type="application/octet-stream")

    async def free(request: Request) -> Response:
        return JSONResponse({"free": True})

    app = Starlette(
        routes=[
            Route("/search", search),
            Route("/echo", echo, methods=["POST"]),
            Route("/free", free),
        ]
    )
    app.add_middleware(
        PaymentMiddleware,
        routes=routes or {"GET /search": "$0.001", "POST /echo": "$0.002"},
        pay_to=pay_to,
        facilitator=facilitator,  # type: ignore[arg-type]
        description="test search",
    )
    return app
