"""Direct payments on the ledger network (`paywire.client.direct.direct_payment`): a
wallet pays another with no HTTP 402, through the real facilitator and ledger."""

from __future__ import annotations

import asyncio
import time

import pytest
from payment_helpers import fund

from paywire.client import MandateDeclined
from paywire.client.direct import direct_payment
from paywire.crypto.keys import PrivateKey
from paywire.errors import InvalidInput
from paywire.ledger import Ledger
from paywire.ledger.names import wallet_account_id
from paywire.mandate import AssetLimit, Mandate, MandateChain, SignedMandate
from paywire.money import EURC, USDC
from paywire.protocol import Facilitator


def test_a_wallet_pays_another_once(ledger: Ledger) -> None:
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    fund(ledger, payer, 1_000_000)
    facilitator = Facilitator.for_ledger(ledger, PrivateKey.generate())
    payment = direct_payment(payer, ledger.network, payee.address, USDC.atomic(250_000))
    assert asyncio.run(facilitator.settle(*payment)).success
    again = asyncio.run(facilitator.settle(*payment))  # the same signed payment: refused
    assert not again.success
    assert ledger.balance(wallet_account_id(payee.address, "USDC")).posted == 250_000


def test_under_a_mandate_the_task_is_tagged_and_the_limit_holds(ledger: Ledger) -> None:
    principal, agent, payee = (PrivateKey.generate() for _ in range(3))
    fund(ledger, agent, 1_000_000)
    now = int(time.time())
    mandate = Mandate(
        issuer=principal.address,
        agent=agent.address,
        limits=(AssetLimit(ledger.network, "USDC", 100_000, 100_000),),
        valid_after=now - 60,
        valid_before=now + 3600,
        task_id="t-7",
    )
    chain = MandateChain((SignedMandate.sign(mandate, principal),))
    facilitator = Facilitator.for_ledger(ledger, PrivateKey.generate())
    payment = direct_payment(
        agent, ledger.network, payee.address, USDC.atomic(60_000), mandate=chain
    )
    assert asyncio.run(facilitator.settle(*payment)).success
    [paid] = ledger.all_task_transfers("t-7")
    assert paid.amount.atomic == 60_000
    with pytest.raises(MandateDeclined):  # past the total on its own: the client refuses
        direct_payment(agent, ledger.network, payee.address, USDC.atomic(120_000), mandate=chain)
    # Past the total with what was spent (which a new client does not know), or as a
    # modified client would send it: the facilitator refuses on its own.
    forced = direct_payment(
        agent,
        ledger.network,
        payee.address,
        USDC.atomic(60_000),
        mandate=chain,
        check_mandate=False,
    )
    refused = asyncio.run(facilitator.settle(*forced))
    assert not refused.success and "mandate" in str(refused.error_reason)


@pytest.mark.parametrize(
    ("network", "amount"),
    [
        ("eip155:1", USDC.atomic(1)),
        ("paywire:", USDC.atomic(1)),
        ("paywire:abc", USDC.atomic(0)),
        ("paywire:abc", 5),
    ],
)
def test_bad_payments_are_refused_before_signing(network: str, amount: object) -> None:
    with pytest.raises(InvalidInput):
        direct_payment(PrivateKey.generate(), network, "0x" + "11" * 20, amount)  # type: ignore[arg-type]


def test_a_payee_that_is_not_an_address_is_refused() -> None:
    with pytest.raises(InvalidInput):
        direct_payment(PrivateKey.generate(), "paywire:abc", "alice", EURC.atomic(1))
