"""The provider `bench_http` measures, in its own process: uvicorn, the payment middleware,
an in-process facilitator over a SQLite ledger. Usage: python -m bench._http_server PORT DB.
The facilitator key comes from $BENCH_OPERATOR_KEY and the payee from $BENCH_PAY_TO."""

from __future__ import annotations

import os
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paywire.crypto.keys import PrivateKey
from paywire.ledger import open_ledger
from paywire.protocol import Facilitator
from paywire.server import PaymentMiddleware


async def search(request: Request) -> Response:
    return JSONResponse({"results": ["a", "b", "c"]})


def build(db: str) -> Starlette:
    ledger = open_ledger(f"sqlite:///{db}")
    facilitator = Facilitator.for_ledger(
        ledger, PrivateKey.from_hex(os.environ["BENCH_OPERATOR_KEY"])
    )
    app = Starlette(routes=[Route("/search", search), Route("/free", search)])
    app.add_middleware(
        PaymentMiddleware,
        routes={"GET /search": "$0.001"},
        pay_to=os.environ["BENCH_PAY_TO"],
        facilitator=facilitator,
    )
    return app


if __name__ == "__main__":
    port, db = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(build(db), host="127.0.0.1", port=port, log_level="warning")
