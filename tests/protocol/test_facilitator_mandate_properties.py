"""Random mandate trees and random payments through the real facilitator and ledger: no
limit of any mandate is ever exceeded, and every refusal names a limit the payment really
would have broken (checked against an exact model of what was spent)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from payment_helpers import fund

from paywire.client.direct import direct_payment
from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, NewAccount, open_ledger
from paywire.mandate import AssetLimit, Mandate, MandateChain, SignedMandate, Window
from paywire.money import USDC
from paywire.protocol import Facilitator

KEYS = [PrivateKey.generate() for _ in range(8)]
"""Keys are slow to make: the trees reuse these (a node's key is its index)."""

SHOP = PrivateKey.generate().address


@dataclass
class Node:
    mandate: Mandate
    chain: MandateChain
    parent: int | None
    total: int
    per_payment: int
    window_cap: int
    spent: int = 0
    children: list[int] = field(default_factory=list)


def _limit(network: str, total: int, per_payment: int, window_cap: int) -> AssetLimit:
    return AssetLimit(network, "USDC", total, per_payment, (Window(3600, window_cap),))


@st.composite
def trees(draw: st.DrawFn) -> list[tuple[int | None, int, int, int]]:
    """(parent, total, per-payment, hour cap) per node, root first; children narrower."""
    nodes: list[tuple[int | None, int, int, int]] = []
    count = draw(st.integers(1, 5))
    for index in range(count):
        parent = None if index == 0 else draw(st.integers(0, index - 1))
        if parent is not None and _depth(nodes, parent) >= 2:
            parent = 0
        bound = nodes[parent] if parent is not None else (None, 20_000, 20_000, 20_000)
        total = draw(st.integers(1, bound[1]))
        per_payment = draw(st.integers(1, bound[2]))
        window_cap = draw(st.integers(1, bound[3]))
        nodes.append((parent, total, per_payment, window_cap))
    return nodes


def _depth(nodes: list[tuple[int | None, int, int, int]], index: int) -> int:
    depth = 0
    parent = nodes[index][0]
    while parent is not None:
        depth += 1
        parent = nodes[parent][0]
    return depth


def _build(network: str, shape: list[tuple[int | None, int, int, int]]) -> list[Node]:
    now = int(time.time())
    principal = KEYS[-1]
    nodes: list[Node] = []
    for index, (parent, total, per_payment, window_cap) in enumerate(shape):
        limits = (_limit(network, total, per_payment, window_cap),)
        if parent is None:
            mandate = Mandate(
                issuer=principal.address,
                agent=KEYS[index].address,
                limits=limits,
                valid_after=now - 60,
                valid_before=now + 3600,
            )
            chain = MandateChain((SignedMandate.sign(mandate, principal),))
        else:
            above = nodes[parent]
            mandate = above.mandate.delegate(KEYS[index].address, limits=limits)
            chain = above.chain.extend(SignedMandate.sign(mandate, KEYS[parent]))
            above.children.append(index)
        nodes.append(Node(mandate, chain, parent, total, per_payment, window_cap))
    return nodes


def _ancestry(nodes: list[Node], index: int) -> list[int]:
    line = [index]
    while nodes[line[-1]].parent is not None:
        line.append(nodes[line[-1]].parent)  # type: ignore[arg-type]
    return line


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    shape=trees(),
    payments=st.lists(st.tuples(st.integers(0, 4), st.integers(1, 12_000)), max_size=12),
)
def test_no_mandate_limit_is_ever_exceeded(
    shape: list[tuple[int | None, int, int, int]], payments: list[tuple[int, int]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        ledger = open_ledger(f"sqlite:///{Path(folder) / 'books.db'}")
        try:
            ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
            nodes = _build(ledger.network, shape)
            for index in range(len(nodes)):
                fund(ledger, KEYS[index], 10**9)
            facilitator = Facilitator.for_ledger(ledger, KEYS[-2])
            for who, amount in payments:
                index = who % len(nodes)
                _pay(ledger.network, facilitator, nodes, index, amount)
            for node in nodes:
                assert node.spent <= node.total and node.spent <= node.window_cap
            assert ledger.log.verify().ok
        finally:
            ledger.close()


def _pay(
    network: str, facilitator: Facilitator, nodes: list[Node], index: int, amount: int
) -> None:
    payment = direct_payment(
        KEYS[index],
        network,
        SHOP,
        USDC.atomic(amount),
        mandate=nodes[index].chain,
        check_mandate=False,
        resource="http://s/x",
    )
    settled = asyncio.run(facilitator.settle(*payment))
    line = _ancestry(nodes, index)
    if settled.success:
        for at in line:
            nodes[at].spent += amount
        return
    reason = settled.error_reason
    message = settled.error_message or ""
    broken = {
        "mandate_per_payment_exceeded": [at for at in line if amount > nodes[at].per_payment],
        "mandate_total_exceeded": [at for at in line if nodes[at].spent + amount > nodes[at].total],
        "mandate_window_exceeded": [
            at for at in line if nodes[at].spent + amount > nodes[at].window_cap
        ],
    }
    assert reason in broken, (reason, message)
    assert broken[reason], f"{reason} but no such limit is broken: {message}"
    assert any(nodes[at].mandate.id[2:] in message for at in broken[reason]), message
