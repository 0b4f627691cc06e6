"""Helpers for the channel tests: wallets, opened channels, a metered provider app."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo

from paywire.client import Payer
from paywire.client.channels import ChannelPayer
from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, Ledger, NewAccount, transfer
from paywire.ledger.names import wallet_account_id
from paywire.mandate import MandateChain
from paywire.money import USDC
from paywire.protocol.channel import (
    ChannelBook,
    LedgerChannelBackend,
    LedgerChannels,
    corrective_accepts,
)
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.headers import (
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    decode_payment,
    encode,
)

PRICE_MAX = 5_000
"""The most one request may cost in these tests (atomic units of USDC)."""


class Clock:
    """Ledger time in ns, moved by hand (starts now); the `ticking` fixture's."""

    def __init__(self) -> None:
        self.now = time.time_ns()

    def __call__(self) -> int:
        return self.now

    def seconds(self) -> float:
        return self.now / 1e9

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1e9)


def wallet(ledger: Ledger, key: PrivateKey, atomic: int = 0) -> str:
    """`key`'s USDC account, opened, holding `atomic` more."""
    account = wallet_account_id(key.address, "USDC")
    ledger.open_account(NewAccount(account, USDC, AccountKind.AGENT, owner=key.address))
    if atomic:
        ledger.submit(
            transfer(f"fund-{key.address}-{time.time_ns()}", "world", account, USDC.atomic(atomic))
        )
    return account


def available(ledger: Ledger, key: PrivateKey | str) -> int:
    address = key if isinstance(key, str) else key.address
    return ledger.balance(wallet_account_id(address, "USDC")).available


def held(ledger: Ledger, key: PrivateKey) -> int:
    return ledger.balance(wallet_account_id(key.address, "USDC")).debits_pending


def posted(ledger: Ledger, key: PrivateKey | str) -> int:
    address = key if isinstance(key, str) else key.address
    return ledger.balance(wallet_account_id(address, "USDC")).posted


def terms(channels: LedgerChannels, payee: str, price: int = PRICE_MAX) -> PaymentRequirements:
    """A provider's batch-settlement option (as a book would offer it), without a book."""
    from paywire.protocol.channel.wire import channel_requirements

    return channel_requirements(
        network=channels.network,
        asset="USDC",
        amount=price,
        pay_to=payee,
        domain=channels.domain("USDC"),
        max_timeout_s=300,
        min_deposit=price * 10,
    )


async def open_channel(
    channels: LedgerChannels,
    payer_key: PrivateKey,
    payee: str,
    deposit: int,
    *,
    ttl_s: int = 3600,
    mandate: MandateChain | None = None,
    salt: bytes | None = None,
    expiry: int | None = None,
) -> ChannelPayer:
    """Open a channel in process (no HTTP): the payer's `ChannelPayer` for it."""
    payer = Payer.create(
        payer_key, max_per_payment="$10", clock=lambda: channels.ledger.clock() / 1e9
    )
    if mandate is not None:
        payer.mandate = mandate
    requirements = terms(channels, payee)
    payment = ChannelPayer.open_payload(
        payer,
        requirements,
        deposit,
        ttl_s=ttl_s,
        salt=salt,
        expiry=expiry,
        resource="http://shop.example/v1/chat",
    )
    state = await channels.open(payment)
    return ChannelPayer.opened(payer, requirements, state.to_json(), opened_with=payment)


def voucher_payment(channel: ChannelPayer, most: int, price: int = PRICE_MAX) -> PaymentPayload:
    """A payment carrying a voucher for exactly `most` in all (whatever the payer knows)."""
    from paywire.protocol.channel.wire import sign_voucher

    voucher = sign_voucher(channel.domain, channel.payer.key, channel.channel_id, most)
    accepted = channel.requirements.model_copy(update={"amount": str(price)})
    return PaymentPayload(accepted=accepted, payload=voucher.to_payload())


def in_process_book(
    channels: LedgerChannels, payee_key: PrivateKey, path: Path, **options: object
) -> ChannelBook:
    backend = LedgerChannelBackend(channels, payee_key)
    return ChannelBook(backend, path, **options)  # type: ignore[arg-type]


def provider_app(book: ChannelBook, cost: Callable[[dict[str, object]], int]) -> Starlette:
    """A provider of one metered route, ``POST /v1/chat``: 402 with the channel option,
    then per request: authorize, do the "work" (`cost` of the JSON body, capped at what the
    voucher allows), charge, answer with PAYMENT-RESPONSE; a refused voucher gets the
    corrective 402."""

    async def chat(request: Request) -> Response:
        accepts = book.requirements(PRICE_MAX, book.backend.receiver)
        url = str(request.url)
        header = request.headers.get(PAYMENT_SIGNATURE)
        if header is None:
            return _payment_required(url, accepts, "payment required")
        try:
            payment = decode_payment(header)
            assert isinstance(payment, PaymentPayload)
            auth = await book.authorize(payment, accepts[0])
        except PaymentProblem as problem:
            if problem.status == 400:
                return JSONResponse({"error": problem.reason}, status_code=400)
            fixed = corrective_accepts(accepts, problem)
            return _payment_required(url, fixed, f"{problem.reason}: {problem.message}")
        try:
            body = await request.json()
            amount = min(cost(body), auth.max_charge_atomic)
            meter = {"model": "tiny", "tokens": {"input": 7, "output": amount % 97}}
            charge = await book.charge(auth, amount, {"meter": meter})
        except BaseException:
            await book.release(auth)
            raise
        return JSONResponse(
            {"charged": charge.charged_atomic, "total": charge.charged_total_atomic},
            headers={PAYMENT_RESPONSE: encode(charge.settle_response())},
        )

    async def claim(request: Request) -> Response:
        outcomes = await book.claim_all()
        return JSONResponse([outcome.to_json() for outcome in outcomes])

    async def close(request: Request) -> Response:
        outcome = await book.close(request.path_params["channel_id"])
        return JSONResponse(outcome.to_json())

    calls: list[str] = []

    async def counted(request: Request) -> Response:
        calls.append(request.headers.get(PAYMENT_SIGNATURE, ""))
        return await chat(request)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await book.start()  # the book lives in the server's event loop
        yield
        await book.aclose()

    app = Starlette(
        routes=[
            Route("/v1/chat", counted, methods=["POST"]),
            Route("/admin/claim", claim, methods=["POST"]),
            Route("/admin/close/{channel_id}", close, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.calls = calls
    return app


def _payment_required(url: str, accepts: list[PaymentRequirements], error: str) -> Response:
    required = PaymentRequired(error=error, resource=ResourceInfo(url=url), accepts=accepts)
    return JSONResponse({}, status_code=402, headers={PAYMENT_REQUIRED: encode(required)})
