"""The task sweeper: acceptances past their dispute window are released and tasks past
their review window expire, without anyone asking; settled tasks are left alone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from paywire.crypto.keys import parse_address
from paywire.errors import InvalidInput
from paywire.ledger import AccountKind, Ledger, NewAccount, transfer
from paywire.ledger.names import wallet_account_id
from paywire.money import USDC
from paywire.tasks import REVIEW_WINDOW_S, TaskBook, TaskState
from paywire.tasks.sweep import run_sweeper

if TYPE_CHECKING:
    from conftest import FakeClock

USD = USDC.atomic
PRINCIPAL = parse_address("0x" + "a1" * 20)
ALICE = parse_address("0x" + "b2" * 20)
FUNDED = 10_000_000


@pytest.fixture
def book(ledger: Ledger) -> Iterator[TaskBook]:
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    for address in (PRINCIPAL, ALICE):
        account = wallet_account_id(address, "USDC")
        ledger.open_account(NewAccount(account, USDC, AccountKind.AGENT, owner=address))
    ledger.submit(transfer("fund", "world", wallet_account_id(PRINCIPAL, "USDC"), USD(FUNDED)))
    yield TaskBook(ledger)
    report = ledger.log.verify()
    assert report.ok and set(report.assets.values()) == {0}


def delivered(book: TaskBook, task_id: str, dispute_window_s: int = 0) -> None:
    book.post(task_id, PRINCIPAL, USD(1_000), 3600, [ALICE], "x", dispute_window_s=dispute_window_s)
    book.take(task_id, ALICE)
    book.deliver(task_id, ALICE, "sha256:r")


def test_due_releases_and_expiries_are_swept(book: TaskBook, clock: FakeClock) -> None:
    delivered(book, "releasing", dispute_window_s=600)
    book.accept("releasing")
    delivered(book, "forgotten")
    book.post("untaken", PRINCIPAL, USD(1_000), 3600, [ALICE], "x")
    delivered(book, "settled")
    book.accept("settled")
    first = book.sweep()  # nothing is due yet
    assert (first.released, first.expired, first.failed) == ([], [], {})
    assert first.open_tasks == 3
    clock.advance(601)
    second = book.sweep()
    assert second.released == ["releasing"] and second.expired == []
    assert book.task("releasing").state is TaskState.ACCEPTED
    clock.advance(3600 + REVIEW_WINDOW_S)
    third = book.sweep()
    assert sorted(third.expired) == ["forgotten", "untaken"] and not third.failed
    assert book.task("forgotten").state is TaskState.EXPIRED
    assert book.sweep().open_tasks == 0
    assert book.ledger.balance(wallet_account_id(ALICE, "USDC")).posted == 2_000


def test_the_sweeper_thread_sweeps_until_stopped(book: TaskBook, clock: FakeClock) -> None:
    delivered(book, "t1", dispute_window_s=60)
    book.accept("t1")
    clock.advance(61)
    stop = threading.Event()
    thread = threading.Thread(target=run_sweeper, args=(book, stop, 0.01), daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if book.task("t1").state is TaskState.ACCEPTED:
                break
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert book.task("t1").state is TaskState.ACCEPTED and not thread.is_alive()


def test_the_task_list_pages_and_refuses_bad_bounds(book: TaskBook) -> None:
    for n in range(5):
        book.post(f"t{n}", PRINCIPAL, USD(1_000), 3600, [ALICE], "x")
    first = book.tasks(principal=PRINCIPAL, limit=2)
    assert [task.id for task in first] == ["t0", "t1"]
    rest = book.tasks(principal=PRINCIPAL, after="t1", limit=10)
    assert [task.id for task in rest] == ["t2", "t3", "t4"]
    assert book.tasks(agent=ALICE) == []  # nobody took anything yet
    book.take("t3", ALICE)
    assert [task.id for task in book.tasks(agent=ALICE)] == ["t3"]
    for bad in ({"limit": 0}, {"limit": 10**6}, {"limit": True}, {"after": "no spaces"}):
        with pytest.raises(InvalidInput):
            book.tasks(**bad)  # type: ignore[arg-type]
    for n in range(5):
        book.cancel(f"t{n}")
