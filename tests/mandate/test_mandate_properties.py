"""Property: random mandate trees (depth <= 3) and random payments through
`MemorySpendTracker.charge`. No limit of any mandate is ever exceeded by what was
recorded, and every refusal names a limit that this payment really would exceed, with
the values (spent, overrun) the books give."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from paywire.crypto.keys import PrivateKey
from paywire.mandate import (
    AssetLimit,
    Mandate,
    MandateChain,
    MandateLimitExceeded,
    MandateWiderThanParent,
    MemorySpendTracker,
    Payment,
    SignedMandate,
    Window,
    check_delegation,
)

KEYS = [PrivateKey.from_bytes((3000 + i).to_bytes(32, "big")) for i in range(8)]
BY_ADDRESS = {key.address: key for key in KEYS}
PAYEES = [PrivateKey.from_bytes((4000 + i).to_bytes(32, "big")).address for i in range(3)]
LEDGER = "paywire:propertytests"
OTHER = "paywire:elsewhere"
ASSETS = ("USDC", "EURC")
T0 = 1_700_000_000
LIFE = 240

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def root_limits(draw: st.DrawFn) -> tuple[AssetLimit, ...]:
    assets = draw(st.lists(st.sampled_from(ASSETS), min_size=1, max_size=2, unique=True))
    limits = []
    for asset in assets:
        lengths = draw(st.lists(st.sampled_from([5, 20, 60]), max_size=2, unique=True))
        windows = tuple(Window(w, draw(st.integers(10, 200))) for w in lengths)
        limits.append(
            AssetLimit(
                LEDGER, asset, draw(st.integers(50, 400)), draw(st.integers(5, 100)), windows
            )
        )
    return tuple(limits)


@st.composite
def narrower_limit(draw: st.DrawFn, parent: AssetLimit) -> AssetLimit:
    windows: dict[int, int] = {}
    for window in parent.windows:
        # the same window or a longer one, at most as high; sometimes an extra shorter one
        length = window.window_s * draw(st.sampled_from([1, 1, 2]))
        windows[length] = min(
            windows.get(length, window.limit_atomic), draw(st.integers(1, window.limit_atomic))
        )
    if draw(st.booleans()):
        windows.setdefault(draw(st.sampled_from([2, 3])), draw(st.integers(1, 50)))
    return AssetLimit(
        parent.network,
        parent.asset,
        draw(st.integers(1, parent.total_atomic)),
        draw(st.integers(1, parent.per_payment_atomic)),
        tuple(Window(length, limit) for length, limit in windows.items()),
    )


@st.composite
def child_of(draw: st.DrawFn, parent: Mandate, agent: PrivateKey) -> Mandate:
    limits = draw(st.lists(st.sampled_from(parent.limits), min_size=1, unique=True))
    payees = parent.payees or tuple(PAYEES)
    chosen = draw(st.lists(st.sampled_from(payees), min_size=1, unique=True))
    start = parent.valid_after + draw(st.integers(0, 30))
    any_payee = not parent.payees and draw(st.booleans())
    any_network = not parent.networks and draw(st.booleans())
    child = parent.delegate(
        agent.address,
        limits=[draw(narrower_limit(limit)) for limit in limits],
        payees=() if any_payee else chosen,
        networks=() if any_network else (LEDGER,),
        valid_after=start,
        valid_before=parent.valid_before - draw(st.integers(0, 30)),
    )
    try:
        check_delegation(parent, child)
    except MandateWiderThanParent:  # the extra short window was too loose: drop it
        child = parent.delegate(
            agent.address,
            limits=[parent.limit_for(LEDGER, limit.asset) or limit for limit in child.limits],
            payees=child.payees,
            networks=child.networks,
            valid_after=child.valid_after,
            valid_before=child.valid_before,
        )
        check_delegation(parent, child)
    return child


@st.composite
def trees(draw: st.DrawFn) -> list[MandateChain]:
    """Every chain of a random tree: root, up to 2 children, up to 2 grandchildren each."""
    root = Mandate(
        issuer=KEYS[0].address,
        agent=KEYS[1].address,
        limits=draw(root_limits()),
        payees=draw(st.sampled_from([(), tuple(PAYEES[:2])])),
        networks=draw(st.sampled_from([(), (LEDGER,)])),
        valid_after=T0,
        valid_before=T0 + LIFE,
    )
    chains = [MandateChain((sign(root),))]
    next_key = 2
    for _ in range(draw(st.integers(0, 2))):
        child = draw(child_of(root, KEYS[next_key]))
        next_key += 1
        chains.append(chains[0].extend(sign(child)))
        parent_chain = chains[-1]
        for _ in range(draw(st.integers(0, 2))):
            grandchild = draw(child_of(child, KEYS[next_key % len(KEYS)]))
            next_key += 1
            chains.append(parent_chain.extend(sign(grandchild)))
    return chains


def sign(mandate: Mandate) -> SignedMandate:
    return SignedMandate.sign(mandate, BY_ADDRESS[mandate.issuer])


@dataclass(frozen=True)
class Charged:
    mandate_ids: tuple[str, ...]
    payment: Payment


def spent(books: list[Charged], mandate: Mandate, limit: AssetLimit, after: int, until: int) -> int:
    """What the books say was charged to `limit` of `mandate` at times in (after, until]."""
    return sum(
        entry.payment.amount_atomic
        for entry in books
        if mandate.id in entry.mandate_ids
        and mandate.limit_for(entry.payment.network, entry.payment.asset) == limit
        and after < entry.payment.at_s <= until
    )


def check_refusal(
    error: MandateLimitExceeded, chain: MandateChain, payment: Payment, books: list[Charged]
) -> None:
    """The refusal names a mandate of the chain and a limit this payment really breaks."""
    mandate = next(m for m in chain if m.id == error.mandate_id)
    at, amount = payment.at_s, payment.amount_atomic
    code = error.code
    if code == "mandate_not_yet_valid":
        assert at < mandate.valid_after
        return
    if code == "mandate_expired":
        assert at >= mandate.valid_before
        return
    if code == "mandate_network_not_allowed":
        assert mandate.networks and payment.network not in mandate.networks
        return
    if code == "mandate_asset_not_allowed":
        assert mandate.limit_for(payment.network, payment.asset) is None
        return
    if code == "mandate_payee_not_allowed":
        assert mandate.payees and payment.payee not in mandate.payees
        return
    limit = mandate.limit_for(payment.network, payment.asset)
    assert limit is not None and (error.network, error.asset) == limit.key
    if code == "mandate_per_payment_exceeded":
        assert error.overrun == amount - limit.per_payment_atomic > 0
        return
    if code == "mandate_total_exceeded":
        already = spent(books, mandate, limit, -1, 2**63)
        assert error.spent == already
        assert error.overrun == already + amount - limit.total_atomic > 0
        return
    assert code == "mandate_window_exceeded", code
    window = next(w for w in limit.windows if w.window_s == error.window_s)
    already = spent(books, mandate, limit, at - window.window_s, at)  # times only move on
    assert error.spent == already
    assert error.overrun == already + amount - window.limit_atomic > 0


def check_books(chains: list[MandateChain], books: list[Charged]) -> None:
    """No limit of any mandate is exceeded by what was recorded, over any window."""
    mandates = {m.id: m for chain in chains for m in chain}
    for mandate in mandates.values():
        mine = [entry.payment for entry in books if mandate.id in entry.mandate_ids]
        for payment in mine:
            assert mandate.valid_after <= payment.at_s < mandate.valid_before
            assert not mandate.payees or payment.payee in mandate.payees
            assert not mandate.networks or payment.network in mandate.networks
            limit = mandate.limit_for(payment.network, payment.asset)
            assert limit is not None and payment.amount_atomic <= limit.per_payment_atomic
        for limit in mandate.limits:
            assert spent(books, mandate, limit, -1, 2**63) <= limit.total_atomic
            for window in limit.windows:
                for end in {payment.at_s for payment in mine}:
                    assert (
                        spent(books, mandate, limit, end - window.window_s, end)
                        <= window.limit_atomic
                    )


payments = st.tuples(
    st.integers(0, 11),  # which chain (modulo their number)
    st.sampled_from([LEDGER, LEDGER, LEDGER, OTHER]),
    st.sampled_from(ASSETS),
    st.integers(1, 60),
    st.sampled_from(PAYEES),
    st.sampled_from([0, 1, 2, 3, 5, 8, 13, 21, 60]),  # seconds since the previous payment
)


@SETTINGS
@given(chains=trees(), plan=st.lists(payments, min_size=5, max_size=40))
def test_random_trees_never_overspend_and_refusals_are_true(
    chains: list[MandateChain], plan: list[tuple[int, str, str, int, str, int]]
) -> None:
    for chain in chains:
        chain.verify(chain.leaf.valid_after, principal=KEYS[0].address, skew_s=0)
    tracker = MemorySpendTracker()
    books: list[Charged] = []
    at = T0 - 2
    for which, network, asset, amount, payee, step in plan:
        at += step
        chain = chains[which % len(chains)]
        payment = Payment(network, asset, amount, payee, None, at)
        try:
            tracker.charge(chain, payment, skew_s=0)
        except MandateLimitExceeded as error:
            check_refusal(error, chain, payment, books)
            event(error.code)
        else:
            books.append(Charged(chain.ids, payment))
    event(f"depth {max(len(chain) for chain in chains)}")
    check_books(chains, books)
    for chain in chains:
        for mandate in chain:
            for limit in mandate.limits:
                assert tracker.spent_total(mandate.id, *limit.key) == spent(
                    books, mandate, limit, -1, 2**63
                )


@SETTINGS
@given(
    chains=trees(),
    plan=st.lists(st.tuples(payments, st.integers(0, LIFE)), min_size=5, max_size=40),
)
def test_payments_in_any_time_order_never_overspend(
    chains: list[MandateChain], plan: list[tuple[tuple[int, str, str, int, str, int], int]]
) -> None:
    """With times out of order the window check may refuse more than needed (it looks
    on both sides of the payment), but never lets any window overflow."""
    tracker = MemorySpendTracker()
    books: list[Charged] = []
    for (which, network, asset, amount, payee, _), offset in plan:
        chain = chains[which % len(chains)]
        payment = Payment(network, asset, amount, payee, None, T0 + offset)
        try:
            tracker.charge(chain, payment, skew_s=0)
        except MandateLimitExceeded as error:
            if error.code != "mandate_window_exceeded":
                check_refusal(error, chain, payment, books)
        else:
            books.append(Charged(chain.ids, payment))
    check_books(chains, books)
