"""Paid requests over real HTTP on the ledger network, beside the same endpoint unpaid.

The provider runs in its own process (uvicorn, the payment middleware, an in-process
facilitator, a SQLite ledger with synchronous=FULL). First one client, one keep-alive
httpx connection, one request at a time; the paying client pays known terms up front: one
round trip per paid request, as for an unpaid one. Then many clients at once, as a
provider sees them in production, the paid ones sending payments signed ahead (a load
generator's way: the bench measures the server, not the client's signing). Then, in
process with no network, the time the middleware and the settlement add on the server,
p50 and p99.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


CONCURRENT_CLIENTS = 32
"""Requests in flight at once in the concurrent run (one connection each)."""

PRESIGNED_PAYMENTS = 12_000
"""Payments signed before the concurrent paid run (signing is the client's work, not the
server's: a load generator does it ahead of time)."""


@contextmanager
def _provider(folder: Path) -> Iterator[tuple[str, PrivateKey]]:
    """The provider in its own process; yields its base URL and a funded agent key."""
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
        yield base, agent
    finally:
        server.terminate()
        server.wait(timeout=10)


def over_http(folder: Path) -> list[Rate]:
    with _provider(folder) as (base, agent):
        with httpx.Client() as plain:
            unpaid = measure("unpaid GET, httpx keep-alive", lambda: plain.get(f"{base}/free"))
        with SyncPaywireClient(agent, max_per_payment="$0.01") as client:
            assert client.get(f"{base}/search").status_code == 200

            def paid_call() -> None:
                response = client.get(f"{base}/search")
                assert response.status_code == 200

            paid = measure("paid GET (x402 exact, ledger network)", paid_call)
    return [unpaid, paid]


def _presigned(base: str, agent: PrivateKey, count: int) -> list[str]:
    """`count` distinct signed payments for GET /search (headers, with payment ids)."""
    from paywire.client import Payer
    from paywire.protocol.headers import decode_payment_required, encode

    required = decode_payment_required(httpx.get(f"{base}/search").headers["payment-required"])
    payer = Payer.create(agent, max_per_payment="$0.01")
    requirements = payer.choose(required)
    return [encode(payer.pay(required, requirements)) for _ in range(count)]


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """One HTTP/1.1 request on a kept-alive connection; the response's status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def _flood(base: str, path: str, headers: list[str] | None) -> Rate:
    """`CONCURRENT_CLIENTS` connections sending requests for about `DEFAULT_SECONDS`.

    The load generator speaks HTTP/1.1 on raw asyncio streams: an httpx client in one
    process tops out near a few hundred requests per second with 32 connections, which
    would measure the client, not the server."""
    host, port = base.removeprefix("http://").split(":")
    done = 0
    queue = iter(headers) if headers is not None else None

    async def worker(deadline: float) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                extra = b""
                if queue is not None:
                    header = next(queue, None)
                    if header is None:
                        return
                    extra = f"PAYMENT-SIGNATURE: {header}\r\n".encode()
                request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n".encode() + extra + b"\r\n"
                status = await _exchange(reader, writer, request)
                assert status == 200, status
                done += 1
        finally:
            writer.close()

    warm = time.perf_counter() + 0.3
    await asyncio.gather(*(worker(warm) for _ in range(CONCURRENT_CLIENTS)))
    done = 0
    start = time.perf_counter()
    deadline = start + DEFAULT_SECONDS
    await asyncio.gather(*(worker(deadline) for _ in range(CONCURRENT_CLIENTS)))
    seconds = time.perf_counter() - start
    what = "paid GET, pre-signed payments" if headers is not None else "unpaid GET"
    return Rate(f"{what}, {CONCURRENT_CLIENTS} clients at once", done, seconds)


def concurrently(folder: Path) -> list[Rate]:
    with _provider(folder) as (base, agent):
        headers = _presigned(base, agent, PRESIGNED_PAYMENTS)
        unpaid = asyncio.run(_flood(base, "/free", None))
        paid = asyncio.run(_flood(base, "/search", headers))
    if paid.ops + CONCURRENT_CLIENTS >= PRESIGNED_PAYMENTS:
        print(f"(the paid run used all {PRESIGNED_PAYMENTS} pre-signed payments)")
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
    with tempfile.TemporaryDirectory() as tmp:
        rates = concurrently(Path(tmp))
    report(
        "Paid requests over HTTP (uvicorn, loopback, many clients at once)",
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
