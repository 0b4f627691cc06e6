"""Payments against a chain: boundaries of every limit, what is allowed, the overrun
reported, and the in-memory spend tracker."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from mandate_helpers import (
    BASE,
    END,
    LEDGER,
    ORIGIN,
    OUTSIDER,
    PAYEE,
    START,
    SUB_AGENT,
    TOKEN,
    chain_of,
    root_mandate,
    three_deep,
    usdc_limit,
)

from paywire.errors import InvalidInput, PaywireError
from paywire.mandate import (
    CLOCK_SKEW_S,
    MAX_TRACKED_PAYMENTS,
    AssetLimit,
    InvalidMandate,
    MandateAssetNotAllowed,
    MandateChain,
    MandateExpired,
    MandateLimitExceeded,
    MandateNetworkNotAllowed,
    MandateNotYetValid,
    MandateOriginNotAllowed,
    MandatePayeeNotAllowed,
    MandatePerPaymentExceeded,
    MandateTotalExceeded,
    MandateWindowExceeded,
    MemorySpendTracker,
    Payment,
    check_payment,
    origin_of,
)

NOW = START + 1000


def pay(amount: int, at: int = NOW, **changes: Any) -> Payment:
    fields: dict[str, Any] = {
        "network": LEDGER,
        "asset": "USDC",
        "amount_atomic": amount,
        "payee": PAYEE,
        "origin": ORIGIN,
        "at_s": at,
    }
    fields.update(changes)
    return Payment(**fields)


def single(**limit: Any) -> MandateChain:
    return chain_of(root_mandate(limits=(usdc_limit(**limit),)))


def test_per_payment_boundary() -> None:
    chain, tracker = single(per_payment=100), MemorySpendTracker()
    check_payment(chain, pay(100), tracker)
    with pytest.raises(MandatePerPaymentExceeded) as caught:
        check_payment(chain, pay(101), tracker)
    error = caught.value
    assert (error.limit, error.allowed, error.amount, error.overrun) == ("perPayment", 100, 101, 1)
    assert error.code == "mandate_per_payment_exceeded" and error.mandate_id == chain.ids[0]
    assert "0.0001 USDC (100 atomic)" in str(error) and "by 0.000001 USDC (1 atomic)" in str(error)


def test_total_boundary_reports_what_was_spent() -> None:
    chain, tracker = single(total=1000, per_payment=600, windows=()), MemorySpendTracker()
    tracker.charge(chain, pay(600))
    tracker.charge(chain, pay(400))  # exactly the total
    assert tracker.spent_total(chain.ids[0], LEDGER, "USDC") == 1000
    with pytest.raises(MandateTotalExceeded) as caught:
        tracker.charge(chain, pay(1))
    error = caught.value
    assert (error.allowed, error.spent, error.amount, error.overrun) == (1000, 1000, 1, 1)
    assert (error.network, error.asset) == (LEDGER, "USDC")
    assert "already spent 0.001 USDC" in str(error)


def test_window_boundary_in_time_and_amount() -> None:
    chain = single(total=10_000, per_payment=150, windows=((60, 150),))
    tracker = MemorySpendTracker()
    tracker.charge(chain, pay(100, NOW))
    tracker.charge(chain, pay(50, NOW + 59))  # exactly the limit within 60 s
    with pytest.raises(MandateWindowExceeded) as caught:
        tracker.charge(chain, pay(1, NOW + 59))
    error = caught.value
    assert (error.window_s, error.allowed, error.spent, error.overrun) == (60, 150, 150, 1)
    with pytest.raises(MandateWindowExceeded) as caught:
        tracker.charge(chain, pay(101, NOW + 60))  # the first payment has left the window
    assert (caught.value.spent, caught.value.overrun) == (50, 1)
    tracker.charge(chain, pay(100, NOW + 60))
    assert tracker.spent_between(chain.ids[0], LEDGER, "USDC", NOW, NOW + 60) == 150


def test_every_window_is_checked() -> None:
    chain = single(total=10_000, per_payment=100, windows=((60, 100), (3600, 250)))
    tracker = MemorySpendTracker()
    for minute in range(2):
        tracker.charge(chain, pay(100, NOW + 60 * minute))
    tracker.charge(chain, pay(50, NOW + 120))
    with pytest.raises(MandateWindowExceeded) as caught:
        tracker.charge(chain, pay(1, NOW + 180))
    assert caught.value.window_s == 3600 and caught.value.overrun == 1


@pytest.mark.parametrize(
    ("payment", "error", "limit"),
    [
        (pay(10, network="paywire:other"), MandateNetworkNotAllowed, "networks"),
        (pay(10, asset="EURC"), MandateAssetNotAllowed, "limits"),
        (pay(10, network=BASE), MandateAssetNotAllowed, "limits"),  # USDC code is not on Base
        (pay(10, payee=OUTSIDER.address), MandatePayeeNotAllowed, "payees"),
        (pay(10, origin="https://evil.example.com"), MandateOriginNotAllowed, "origins"),
        (pay(10, origin=None), MandateOriginNotAllowed, "origins"),
        (pay(10, at=START - CLOCK_SKEW_S - 1), MandateNotYetValid, "validAfter"),
        (pay(10, at=END + CLOCK_SKEW_S), MandateExpired, "validBefore"),
    ],
)
def test_what_is_not_allowed(
    payment: Payment, error: type[MandateLimitExceeded], limit: str
) -> None:
    chain = chain_of(root_mandate())
    with pytest.raises(error) as caught:
        check_payment(chain, payment, MemorySpendTracker())
    assert caught.value.limit == limit and caught.value.mandate_id == chain.ids[0]


def test_allowed_on_every_allowed_network() -> None:
    chain = chain_of(root_mandate())
    tracker = MemorySpendTracker()
    tracker.charge(chain, pay(10))
    tracker.charge(chain, pay(10, network=BASE, asset=TOKEN.lower()))
    assert tracker.spent_total(chain.ids[0], BASE, TOKEN) == 10


def test_origins_match_in_canonical_form() -> None:
    chain = chain_of(root_mandate())
    check_payment(chain, pay(1, origin="HTTPS://API.EXAMPLE.COM:443"), MemorySpendTracker())
    assert origin_of("https://API.example.com:443/v1/chat?x=1#f") == ORIGIN
    assert origin_of("http://[::1]:8080/x") == "http://[::1]:8080"
    for bad in ("ftp://x.com/", "not a url", "https://", "https://exa mple.com/"):
        with pytest.raises(InvalidMandate):
            origin_of(bad)


def test_network_patterns_govern_every_network_of_a_namespace() -> None:
    mandate = root_mandate(
        networks=("eip155:*", LEDGER),
        limits=(AssetLimit("eip155:*", TOKEN, 100, 60), usdc_limit()),
    )
    chain, tracker = chain_of(mandate), MemorySpendTracker()
    tracker.charge(chain, pay(60, network="eip155:1", asset=TOKEN))
    with pytest.raises(MandateTotalExceeded) as caught:
        tracker.charge(chain, pay(41, network="eip155:10", asset=TOKEN))  # one budget for all
    assert caught.value.network == "eip155:*" and caught.value.overrun == 1


def test_spending_by_a_child_counts_against_every_ancestor() -> None:
    root = root_mandate(limits=(usdc_limit(1000, 600, ()),))
    first = root.delegate(SUB_AGENT.address, limits=(usdc_limit(700, 600, ()),))
    second = root.delegate(SUB_AGENT.address, limits=(usdc_limit(700, 600, ()),))
    one, two = chain_of(root, first), chain_of(root, second)
    tracker = MemorySpendTracker()
    tracker.charge(one, pay(600))
    assert tracker.spent_total(root.id, LEDGER, "USDC") == 600
    with pytest.raises(MandateTotalExceeded) as caught:
        tracker.charge(two, pay(401))  # within the sibling's 700, past the root's 1000
    assert caught.value.mandate_id == root.id and caught.value.spent == 600
    tracker.charge(two, pay(400))


def test_the_leafs_own_limit_is_named_first() -> None:
    root, child, grandchild = three_deep()
    chain = chain_of(root, child, grandchild)
    with pytest.raises(MandatePerPaymentExceeded) as caught:
        check_payment(chain, pay(100_000), MemorySpendTracker())
    assert caught.value.mandate_id == grandchild.id and caught.value.allowed == 20_000


def test_bad_payments_are_invalid_input() -> None:
    for changes in (
        {"amount_atomic": 0},
        {"amount_atomic": -5},
        {"network": "eip155:*"},
        {"payee": "0x12"},
        {"asset": "usdc"},
        {"origin": "https://x.com/path"},
        {"at_s": 1.5},
    ):
        with pytest.raises(InvalidInput) as caught:
            pay(1, **changes)
        assert str(caught.value).startswith("payment ")


def test_record_charges_nothing_when_a_mandate_has_no_limit() -> None:
    root = root_mandate(limits=(usdc_limit(),))
    child = root.delegate(SUB_AGENT.address)
    chain, tracker = chain_of(root, child), MemorySpendTracker()
    with pytest.raises(MandateAssetNotAllowed):
        tracker.record(chain, pay(1, asset="EURC"))
    assert tracker.spent_total(root.id, LEDGER, "EURC") == 0
    tracker.record(chain, pay(5))
    assert [tracker.spent_total(i, LEDGER, "USDC") for i in chain.ids] == [5, 5]


def test_payments_dated_back_never_overflow_a_window() -> None:
    chain = single(total=10**9, per_payment=100, windows=((10, 100),))
    tracker = MemorySpendTracker()
    tracker.charge(chain, pay(100, NOW + 20))
    tracker.charge(chain, pay(100, NOW))  # ten seconds apart or more: separate windows
    with pytest.raises(MandateWindowExceeded):
        tracker.charge(chain, pay(1, NOW + 15))  # would share a window with NOW + 20


def test_old_payments_are_folded_and_answers_stay_safe() -> None:
    chain = single(total=10**9, per_payment=100, windows=((10, 1000),))
    tracker = MemorySpendTracker()
    for second in range(100):
        tracker.charge(chain, pay(10, NOW + second))
    mandate_id = chain.ids[0]
    spend = tracker._spends[(mandate_id, LEDGER, "USDC")]
    assert len(spend.times) <= 21  # two windows' worth are kept
    assert tracker.spent_total(mandate_id, LEDGER, "USDC") == 1000
    assert tracker.spent_between(mandate_id, LEDGER, "USDC", NOW + 89, NOW + 99) == 100
    # A span reaching back past what is kept counts everything folded: more, never less.
    assert tracker.spent_between(mandate_id, LEDGER, "USDC", NOW, NOW + 10) >= 100
    assert MAX_TRACKED_PAYMENTS >= 1000


def test_charge_is_atomic_across_threads() -> None:
    chain = single(total=1000, per_payment=10, windows=())
    tracker = MemorySpendTracker()
    refused: list[PaywireError] = []

    def spend() -> None:
        for _ in range(30):
            try:
                tracker.charge(chain, pay(10))
            except MandateTotalExceeded as error:
                refused.append(error)

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tracker.spent_total(chain.ids[0], LEDGER, "USDC") == 1000
    assert len(refused) == 4 * 30 - 100
