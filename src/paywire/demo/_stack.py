"""The demo's machinery: one operator, one LLM gateway and one paid search API, each a
real HTTP server on loopback, over one SQLite ledger and an in-process EVM chain.

Nothing here is mocked: the operator is `paywire serve`'s app (facilitator, chain desk,
channels), the gateway is `paywire gateway`'s app in front of the real local model
(SmolLM2-135M-Instruct, in process), the search API is a Starlette app behind paywire's
`PaymentMiddleware`. Only the search results are canned (a search engine is outside).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from paywire._dev.http import ServedApps
from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, Ledger, NewAccount
from paywire.money import Asset
from paywire.protocol import RemoteFacilitator
from paywire.protocol.channel import ChannelBook, RemoteLedgerChannelBackend
from paywire.service.operator import ChainDesk

SEARCH_PRICE = "$0.01"
"""What one search costs (x402 `exact`, per request)."""

FEES_ACCOUNT = "operator:fees:USDC"

CLAIM_INTERVAL_S = 0.5
"""How soon the demo's gateway claims what it charged."""

CLAIM_WAIT_S = 20.0
"""How long the story waits for the gateway's claims to land."""

CORPUS = (
    (
        "payment channels",
        "A payment channel locks a deposit once; each request then carries a signed "
        "voucher for the running total, and the provider claims the total in one batch.",
    ),
    (
        "x402",
        "x402 revives HTTP 402 Payment Required: the server names its price in a header, "
        "the client signs a payment and retries, the facilitator verifies and settles.",
    ),
    (
        "agent budgets",
        "A mandate is a budget a human signs for an agent key: totals, per-payment caps "
        "and time windows, enforced by the facilitator atomically with each payment.",
    ),
    (
        "fees",
        "Settling every small payment on chain costs more in fees than the payment; "
        "channels and ledgers batch them, so thousands of calls need one or two transactions.",
    ),
    (
        "transparency logs",
        "An append-only Merkle log with signed checkpoints lets anyone check offline that "
        "every debit was authorized and every balance adds up.",
    ),
)


def search(query: str, count: int = 3) -> list[dict[str, str]]:
    """Canned results for `query`: the corpus ranked by shared words, deterministic."""
    words = set(query.lower().split())
    ranked = sorted(
        CORPUS,
        key=lambda item: (-len(words & set((item[0] + " " + item[1]).lower().split())), item[0]),
    )
    return [{"title": title, "snippet": text} for title, text in ranked[:count]]


def search_app() -> Starlette:
    async def endpoint(request: Request) -> JSONResponse:
        query = request.query_params.get("q", "")[:200]
        return JSONResponse({"query": query, "results": search(query)})

    return Starlette(routes=[Route("/search", endpoint)])


@dataclass
class Stack:
    """The running servers and what the story needs to reach them."""

    ledger: Ledger
    operator_key: PrivateKey
    desk: ChainDesk
    asset: Asset
    operator_url: str
    gateway_url: str
    search_url: str
    gateway_key: PrivateKey
    search_key: PrivateKey
    channel_book: ChannelBook
    servers: ServedApps
    gateway_servers: ServedApps

    def wait_for_claims(self) -> int:
        """Wait until the gateway has claimed every charge; returns what it claimed."""
        deadline = time.monotonic() + CLAIM_WAIT_S
        while time.monotonic() < deadline:
            channels = list(self.channel_book.channels.values())
            if all(channel.claimed >= channel.charged for channel in channels):
                return sum(channel.claimed for channel in channels)
            time.sleep(0.05)
        raise TimeoutError(f"the gateway did not claim its vouchers within {CLAIM_WAIT_S} s")

    def close_gateway(self) -> None:
        """Stop the gateway: its channel book claims everything it charged."""
        self.gateway_servers.close()

    def close(self) -> None:
        self.gateway_servers.close()
        self.servers.close()


def start_stack(
    folder: Path,
    operator_key: PrivateKey,
    gateway_key: PrivateKey,
    search_key: PrivateKey,
    *,
    n_threads: int,
) -> Stack:
    """Open the ledger, start the operator, the gateway and the search API."""
    from paywire.cli._operator import operator_service
    from paywire.ledger.open import open_ledger
    from paywire.server import PaymentMiddleware
    from paywire.server.gateway import LocalModelUpstream, default_price_book, gateway_app

    ledger = open_ledger(f"sqlite:///{folder / 'ledger.db'}")
    servers = ServedApps()
    service = operator_service(ledger, operator_key, url="(loopback)", chain="local")
    assert service.desk is not None
    desk = service.desk
    operator_url = servers.start(service.app)
    asset = desk.reserve.asset
    ledger.open_account(NewAccount(FEES_ACCOUNT, asset, AccountKind.FEES))

    tool = PaymentMiddleware(
        search_app(),
        routes={"GET /search": SEARCH_PRICE},
        pay_to=search_key.address,
        facilitator=RemoteFacilitator(operator_url),
        description="web search, 3 results",
    )
    search_url = servers.start(tool)

    upstream = LocalModelUpstream(n_threads=n_threads)
    upstream.load()
    backend = RemoteLedgerChannelBackend(
        operator_url, gateway_key, network=ledger.network, asset=asset
    )
    # Claims every half second (a production gateway claims every few minutes or past a
    # threshold): the task's books see the per-token spending before the task settles.
    book = ChannelBook(
        backend, folder / "gateway-vouchers.db", claim_interval_s=CLAIM_INTERVAL_S, tick_s=0.25
    )
    gateway = gateway_app(
        upstream, default_price_book(), gateway_key.address, RemoteFacilitator(operator_url), book
    )
    gateway_servers = ServedApps()
    gateway_url = gateway_servers.start(gateway)
    return Stack(
        ledger=ledger,
        operator_key=operator_key,
        desk=desk,
        asset=asset,
        operator_url=operator_url,
        gateway_url=gateway_url,
        search_url=search_url,
        gateway_key=gateway_key,
        search_key=search_key,
        channel_book=book,
        servers=servers,
        gateway_servers=gateway_servers,
    )


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run(coroutine: object) -> object:
    assert asyncio.iscoroutine(coroutine)
    return asyncio.run(coroutine)
