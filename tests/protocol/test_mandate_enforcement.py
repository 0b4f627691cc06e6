"""The facilitator enforces mandates on the ledger network, atomically with the money: a
modified client that ignores its mandate still cannot spend past it. Real ledgers (SQLite
and PostgreSQL), real signatures, real concurrency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from payment_helpers import Calls, fund, provider_app
from starlette.types import ASGIApp
from x402.schemas import PaymentPayload, PaymentRequirements

from paywire.client.direct import direct_payment
from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, Ledger, NewAccount, transfer
from paywire.ledger.names import wallet_account_id
from paywire.mandate import (
    AssetLimit,
    Mandate,
    MandateChain,
    Revocation,
    SignedMandate,
    SignedRevocation,
    Window,
)
from paywire.money import USDC
from paywire.protocol import Facilitator
from paywire.protocol.headers import encode

pytestmark = pytest.mark.anyio

PRICE = 1_000


def limit(
    network: str, total: int, per_payment: int = 10**9, windows: tuple[tuple[int, int], ...] = ()
) -> AssetLimit:
    return AssetLimit(network, "USDC", total, per_payment, tuple(Window(w, c) for w, c in windows))


def root(principal: PrivateKey, agent: PrivateKey, *limits: AssetLimit, **more: Any) -> Mandate:
    now = int(time.time())
    return Mandate(
        issuer=principal.address,
        agent=agent.address,
        limits=limits,
        valid_after=now - 60,
        valid_before=now + 3600,
        **more,
    )


def chain_of(*signed: tuple[Mandate, PrivateKey]) -> MandateChain:
    return MandateChain(tuple(SignedMandate.sign(mandate, key) for mandate, key in signed))


def payment(
    ledger: Ledger,
    payer: PrivateKey,
    payee: str,
    amount: int,
    chain: MandateChain | None,
) -> tuple[PaymentPayload, PaymentRequirements]:
    """A signed payment as a modified client would send it: no client-side mandate check."""
    return direct_payment(
        payer,
        ledger.network,
        payee,
        USDC.atomic(amount),
        mandate=chain,
        check_mandate=False,
        resource="http://shop.example/search",
    )


def settle(
    facilitator: Facilitator,
    ledger: Ledger,
    payer: PrivateKey,
    payee: str,
    amount: int,
    chain: MandateChain | None,
) -> Any:
    payload, requirements = payment(ledger, payer, payee, amount, chain)
    return asyncio.run(facilitator.settle(payload, requirements))


@pytest.fixture
def books(make_ledger: Callable[..., Ledger]) -> Ledger:
    ledger = make_ledger()
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    return ledger


def test_the_facilitator_refuses_past_the_total_whatever_the_client_does(
    books: Ledger,
) -> None:
    principal, agent, shop = PrivateKey.generate(), PrivateKey.generate(), PrivateKey.generate()
    fund(books, agent, 1_000_000)
    chain = chain_of((root(principal, agent, limit(books.network, 2_500)), principal))
    facilitator = Facilitator.for_ledger(books, PrivateKey.generate())
    first = settle(facilitator, books, agent, shop.address, PRICE, chain)
    second = settle(facilitator, books, agent, shop.address, PRICE, chain)
    third = settle(facilitator, books, agent, shop.address, PRICE, chain)
    assert first.success and second.success
    assert not third.success
    assert third.error_reason == "mandate_total_exceeded"
    assert "go over by 500" in third.error_message
    assert books.balance(wallet_account_id(agent.address, "USDC")).available == 998_000
    assert books.log.verify().ok


def test_a_payment_under_a_task_mandate_is_tagged_with_the_task(books: Ledger) -> None:
    principal, agent = PrivateKey.generate(), PrivateKey.generate()
    fund(books, agent, 100_000)
    chain = chain_of(
        (root(principal, agent, limit(books.network, 50_000), task_id="task-42"), principal)
    )
    facilitator = Facilitator.for_ledger(books, PrivateKey.generate())
    settled = settle(facilitator, books, agent, PrivateKey.generate().address, PRICE, chain)
    assert books.transfer(settled.transaction).metadata["task"] == "task-42"


def test_a_storm_to_many_merchants_never_passes_the_budget_by_one_unit(
    books: Ledger,
) -> None:
    principal, agent = PrivateKey.generate(), PrivateKey.generate()
    fund(books, agent, 10_000_000)
    payments = 48
    budget = payments * PRICE - 1  # together they would exceed it by one atomic unit
    chain = chain_of((root(principal, agent, limit(books.network, budget)), principal))
    facilitator = Facilitator.for_ledger(books, PrivateKey.generate())
    merchants = [PrivateKey.generate().address for _ in range(8)]
    signed = [
        payment(books, agent, merchants[index % len(merchants)], PRICE, chain)
        for index in range(payments)
    ]

    def attempt(index: int) -> bool:
        payload, requirements = signed[index]
        return asyncio.run(facilitator.settle(payload, requirements)).success

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(attempt, range(payments)))
    assert results.count(True) == payments - 1
    spent = 10_000_000 - books.balance(wallet_account_id(agent.address, "USDC")).available
    assert spent == (payments - 1) * PRICE <= budget
    assert books.log.verify().ok


def test_a_sub_agent_spends_against_every_ancestor(books: Ledger) -> None:
    principal, agent, sub = (PrivateKey.generate() for _ in range(3))
    fund(books, agent, 1_000_000)
    fund(books, sub, 1_000_000)
    parent = root(principal, agent, limit(books.network, 5_000))
    child = parent.delegate(sub.address, limits=(limit(books.network, 5_000),))
    agent_chain = chain_of((parent, principal))
    sub_chain = chain_of((parent, principal), (child, agent))
    facilitator = Facilitator.for_ledger(books, PrivateKey.generate())
    shop = PrivateKey.generate().address
    assert settle(facilitator, books, agent, shop, 3_000, agent_chain).success
    assert settle(facilitator, books, sub, shop, 2_000, sub_chain).success
    refused = settle(facilitator, books, sub, shop, 1, sub_chain)
    assert refused.error_reason == "mandate_total_exceeded"
    assert parent.id in refused.error_message  # the parent's total is the one that binds


def test_revoking_a_mandate_stops_it_and_its_subtree_at_once(books: Ledger) -> None:
    principal, agent, sub = (PrivateKey.generate() for _ in range(3))
    fund(books, agent, 1_000_000)
    fund(books, sub, 1_000_000)
    parent = root(principal, agent, limit(books.network, 50_000))
    child = parent.delegate(sub.address, limits=(limit(books.network, 10_000),))
    sub_chain = chain_of((parent, principal), (child, agent))
    facilitator = Facilitator.for_ledger(books, PrivateKey.generate())
    scheme = facilitator.handlers[0]
    shop = PrivateKey.generate().address
    assert settle(facilitator, books, sub, shop, PRICE, sub_chain).success
    revocation = SignedRevocation.sign(
        Revocation(parent.id, principal.address, int(time.time())), principal
    )
    closed = scheme.mandates.mandates.revoke(chain_of((parent, principal)), revocation)  # type: ignore[attr-defined]
    assert closed
    refused = settle(facilitator, books, sub, shop, PRICE, sub_chain)
    assert refused.error_reason == "mandate_revoked"
    refused = settle(facilitator, books, agent, shop, PRICE, chain_of((parent, principal)))
    assert refused.error_reason == "mandate_revoked"


def test_only_an_issuer_or_an_ancestor_may_revoke(books: Ledger) -> None:
    principal, agent, sub = (PrivateKey.generate() for _ in range(3))
    parent = root(principal, agent, limit(books.network, 50_000))
    child = parent.delegate(sub.address, limits=(limit(books.network, 10_000),))
    facilitator = Facilitator.for_ledger(books, PrivateKey.generate())
    gate = facilitator.handlers[0].mandates.mandates  # type: ignore[attr-defined]
    by_sub = SignedRevocation.sign(Revocation(parent.id, sub.address, int(time.time())), sub)
    with pytest.raises(Exception, match="not signed by"):
        gate.revoke(chain_of((parent, principal), (child, agent)), by_sub)


@pytest.mark.parametrize(
    ("what", "reason"),
    [
        ("payee", "mandate_payee_not_allowed"),
        ("per_payment", "mandate_per_payment_exceeded"),
        ("network", "mandate_asset_not_allowed"),
        ("expired", "mandate_expired"),
        ("wrong_signer", "mandate_signature_invalid"),
        ("other_agent", "mandate_invalid"),
    ],
)
def test_a_payment_outside_the_mandate_is_refused_with_its_reason(
    books: Ledger, what: str, reason: str
) -> None:
    principal, agent, stranger = (PrivateKey.generate() for _ in range(3))
    fund(books, agent, 1_000_000)
    shop = PrivateKey.generate().address
    now = int(time.time())
    fields: dict[str, Any] = {}
    network, per_payment = books.network, 10**9
    signer, mandate_agent = principal, agent
    if what == "payee":
        fields["payees"] = (PrivateKey.generate().address,)
    elif what == "per_payment":
        per_payment = PRICE - 1
    elif what == "network":
        network = "paywire:another-ledger"
    elif what == "expired":
        fields.update(valid_after=now - 7200, valid_before=now - 3600)
    elif what == "wrong_signer":
        signer = stranger
    elif what == "other_agent":
        mandate_agent = stranger
    mandate = Mandate(
        issuer=principal.address,
        agent=mandate_agent.address,
        limits=(limit(network, 100_000, per_payment),),
        valid_after=fields.pop("valid_after", now - 60),
        valid_before=fields.pop("valid_before", now + 3600),
        **fields,
    )
    if what == "wrong_signer":
        signed = SignedMandate(mandate, stranger.sign_digest(mandate.digest))
        chain = MandateChain((signed,))
    else:
        chain = chain_of((mandate, signer))
    facilitator = Facilitator.for_ledger(books, PrivateKey.generate())
    refused = settle(facilitator, books, agent, shop, PRICE, chain)
    assert not refused.success
    assert refused.error_reason == reason
    assert books.balance(wallet_account_id(agent.address, "USDC")).available == 1_000_000


def test_a_window_limit_binds_at_the_facilitator(books: Ledger) -> None:
    principal, agent = PrivateKey.generate(), PrivateKey.generate()
    fund(books, agent, 1_000_000)
    chain = chain_of(
        (root(principal, agent, limit(books.network, 100_000, windows=((3600, 1_500),))), principal)
    )
    facilitator = Facilitator.for_ledger(books, PrivateKey.generate())
    shop = PrivateKey.generate().address
    assert settle(facilitator, books, agent, shop, PRICE, chain).success
    refused = settle(facilitator, books, agent, shop, PRICE, chain)
    assert refused.error_reason == "mandate_window_exceeded"
    assert "3600" in refused.error_message


def test_a_principal_may_require_its_agents_to_pay_under_a_mandate(books: Ledger) -> None:
    principal, agent = PrivateKey.generate(), PrivateKey.generate()
    account = wallet_account_id(agent.address, "USDC")
    books.open_account(
        NewAccount(
            account,
            USDC,
            AccountKind.AGENT,
            owner=agent.address,
            metadata={"mandatePrincipal": principal.address},
        )
    )
    books.submit(transfer("fund-required", "world", account, USDC.atomic(100_000)))
    facilitator = Facilitator.for_ledger(books, PrivateKey.generate())
    shop = PrivateKey.generate().address
    bare = settle(facilitator, books, agent, shop, PRICE, None)
    assert bare.error_reason == "mandate_required"
    other = PrivateKey.generate()
    foreign = chain_of((root(other, agent, limit(books.network, 100_000)), other))
    assert settle(facilitator, books, agent, shop, PRICE, foreign).error_reason == (
        "mandate_required"
    )
    own = chain_of((root(principal, agent, limit(books.network, 100_000)), principal))
    assert settle(facilitator, books, agent, shop, PRICE, own).success


async def test_over_http_a_refusal_is_a_402_naming_the_limit(
    serve: Callable[[ASGIApp], str], ledger: Ledger, provider: PrivateKey, calls: Calls
) -> None:
    principal, agent = PrivateKey.generate(), PrivateKey.generate()
    fund(ledger, agent, 100_000)
    chain = chain_of((root(principal, agent, limit(ledger.network, 1_500)), principal))
    facilitator = Facilitator.for_ledger(ledger, PrivateKey.generate())
    base = serve(provider_app(facilitator, provider.address, calls))
    headers = []
    for _ in range(2):
        payload, _ = payment(ledger, agent, provider.address, PRICE, chain)
        headers.append(encode(payload))
    async with httpx.AsyncClient() as plain:
        first = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": headers[0]})
        second = await plain.get(f"{base}/search", headers={"PAYMENT-SIGNATURE": headers[1]})
    assert first.status_code == 200
    assert second.status_code == 402
    assert "mandate_total_exceeded" in second.json()["error"]
    assert calls.count == 1
