"""Paid requests over real HTTP on the ledger network, beside the same endpoint unpaid.

The provider runs in its own process (uvicorn, the payment middleware, an in-process
facilitator, a SQLite ledger with synchronous=FULL); the client is one keep-alive httpx
connection, one request at a time. The paying client pays known terms up front: one round
trip per paid request, as for an unpaid one. Then, in process with no network, the time
the middleware and the settlement add on the server, p50 and p99.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench._harness import DEFAULT_SECONDS, Rate, measure, report
from paywire._dev.http import free_port
from paywire.client import SyncPaywireClient
from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, NewAccount, open_ledger, transfer
from paywire.ledger.names import wallet_account_id
from paywire.money import USDC


def _books(db: Path, agent: PrivateKey) -> None:
    with open_ledger(f"sqlite:///{db}") as ledger:
        ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
        account = wallet_account_id(agent.address, "USDC")
        ledger.open_account(NewAccount(account, USDC, AccountKind.AGENT, owner=agent.address))
        ledger.submit(transfer("fund", "world", account, USDC.atomic(10**12)))


def over_http(folder: Path) -> list[Rate]:
    agent, operator, provider = (PrivateKey.generate() for _ in range(3))
    db = folder / "http.db"
    _books(db, agent)
    port = free_port()
    env = {
        **os.environ,
        "BENCH_OPERATOR_KEY": operator.to_hex(),
        "BENCH_PAY_TO": provider.address,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "bench._http_server", str(port), str(db)], env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/free")
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with httpx.Client() as plain:
            unpaid = measure("unpaid GET, httpx keep-alive", lambda: plain.get(f"{base}/free"))
        with SyncPaywireClient(agent, max_per_payment="$0.01") as client:
            assert client.get(f"{base}/search").status_code == 200

            def paid_call() -> None:
                response = client.get(f"{base}/search")
                assert response.status_code == 200

            paid = measure("paid GET (x402 exact, ledger network)", paid_call)
    finally:
        server.terminate()
        server.wait(timeout=10)
    return [unpaid, paid]


def server_side_ms() -> tuple[list[float], list[float]]:
    """Per-request server time (ms), no network: unpaid route vs paid route."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from paywire.protocol import Facilitator
    from paywire.server import PaymentMiddleware

    agent, operator, provider = (PrivateKey.generate() for _ in range(3))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "inproc.db"
        _books(db, agent)
        ledger = open_ledger(f"sqlite:///{db}")
        app = Starlette(
            routes=[
                Route("/search", lambda request: JSONResponse({"ok": 1})),
                Route("/free", lambda request: JSONResponse({"ok": 1})),
            ]
        )
        app.add_middleware(
            PaymentMiddleware,
            routes={"GET /search": "$0.001"},
            pay_to=provider.address,
            facilitator=Facilitator.for_ledger(ledger, operator),
        )
        timings: list[float] = []

        async def timed(scope: Any, receive: Any, send: Any) -> None:
            # Server-side time only: from the request reaching the app to its last byte.
            start = time.perf_counter()
            await app(scope, receive, send)
            timings.append((time.perf_counter() - start) * 1000)

        transport = httpx.ASGITransport(app=timed)
        count = max(200, int(DEFAULT_SECONDS * 300))

        async def run() -> tuple[list[float], list[float]]:
            from paywire.client import PaywireClient

            async with httpx.AsyncClient(transport=transport, base_url="http://t") as plain:
                for _ in range(count):
                    await plain.get("/free")
            free = timings[:]
            async with PaywireClient(
                agent, max_per_payment="$1", transport=transport, base_url="http://t"
            ) as client:
                await client.get("/search")
                timings.clear()
                for _ in range(count):
                    await client.get("/search")
            return free, timings[:]

        try:
            return asyncio.run(run())
        finally:
            ledger.close()


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rates = over_http(Path(tmp))
    report(
        "Paid requests over HTTP (uvicorn, loopback, one connection)",
        rates,
        baseline=rates[0].name,
        goal="paid >= 0.50x unpaid",
    )
    free, paid = server_side_ms()
    print("\n## Server-side time per request, in process, SQLite synchronous=FULL (ms)")
    print("goal: the payment adds under 1 ms at p50")
    print(f"{'':<40} {'p50':>8} {'p99':>8}")
    print(f"{'unpaid route':<40} {_pct(free, 50):>8.3f} {_pct(free, 99):>8.3f}")
    print(
        f"{'paid route (sign + verify + settle)':<40} {_pct(paid, 50):>8.3f} {_pct(paid, 99):>8.3f}"
    )
    print(
        f"{'added by payment':<40} {_pct(paid, 50) - _pct(free, 50):>8.3f} "
        f"{_pct(paid, 99) - _pct(free, 99):>8.3f}"
    )


if __name__ == "__main__":
    main()
