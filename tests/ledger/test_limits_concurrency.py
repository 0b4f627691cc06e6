"""Spend limits under concurrency: threads, several ledgers on one store, and processes.

Transfers that together ask for one atomic unit more than a limit allows: whatever the
interleaving, exactly the cap is spent (never a unit more) and exactly one is refused,
with `LimitExceeded`. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from ledger_threads import attempt, run_threads

from paywire.ledger import (
    AccountKind,
    HoldState,
    Ledger,
    LedgerError,
    LimitExceeded,
    NewAccount,
    NewLimit,
    Transfer,
    TransferKind,
    TransferNotFound,
    hold,
    open_ledger,
    post,
    transfer,
    void,
)
from paywire.money import USDC

USD = USDC.atomic
T = TypeVar("T")
LIMITS = ("total", "daily")


def open_books(ledger: Ledger, cap: int) -> None:
    """A payer with plenty, a payee, and two limits of `cap`: one for all time, one a day."""
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount("payer", USDC, AccountKind.AGENT))
    ledger.open_account(NewAccount("payee", USDC, AccountKind.PROVIDER))
    ledger.submit(transfer("funding", "world", "payer", USD(10**9)))
    ledger.open_limit(NewLimit("total", USDC, cap))
    ledger.open_limit(NewLimit("daily", USDC, cap, 86_400))


def assert_verified(ledger: Ledger) -> None:
    report = ledger.log.verify()
    assert report.ok, report.problems
    assert report.limits == 2


@pytest.mark.parametrize("ledgers", [1, 3])
def test_threads_spend_exactly_the_cap(make_ledger: Callable[..., Ledger], ledgers: int) -> None:
    """16 threads x 40 transfers of 1 (some in linked pairs), against limits of 639."""
    threads, each = 16, 40
    cap = threads * each - 1
    books = [make_ledger() for _ in range(ledgers)]
    open_books(books[0], cap)

    def spend(i: int) -> list[Transfer | LedgerError]:
        ledger = books[i % ledgers]
        out: list[Transfer | LedgerError] = []
        n = 0
        while n < each:
            if i % 4 == 0 and n + 2 <= each:  # a linked pair: both or neither
                pair = [
                    transfer(f"s-{i}-{n + k}", "payer", "payee", USD(1), limits=LIMITS)
                    for k in range(2)
                ]
                try:
                    out += ledger.submit_linked(pair)
                except LedgerError as error:
                    out += [error, error]
                n += 2
            else:
                request = transfer(f"s-{i}-{n}", "payer", "payee", USD(1), limits=LIMITS)
                out.append(attempt(ledger, request))
                n += 1
        return out

    results = [r for batch in run_threads(threads, spend) for r in batch]
    written = [r for r in results if isinstance(r, Transfer)]
    refused = [r for r in results if not isinstance(r, Transfer)]
    # A refused linked pair refuses two transfers: then one unit of the cap stays unspent.
    assert len(written) in (cap, cap - 1)
    assert len(refused) == threads * each - len(written)
    assert all(
        isinstance(r, LimitExceeded) or isinstance(getattr(r, "cause", None), LimitExceeded)
        for r in refused
    ), refused
    ledger = books[-1]
    for limit_id in LIMITS:
        status = ledger.limit(limit_id)
        assert status.used_atomic == status.total_atomic == len(written) <= cap
    assert ledger.balance("payee").posted == len(written)
    assert_verified(ledger)


def test_threads_holding_voiding_and_posting_never_pass_the_cap(
    make_ledger: Callable[..., Ledger],
) -> None:
    """Random holds, posts, voids and transfers: the limits always hold exactly what the
    transfers present imply, never more than the cap."""
    rng = random.Random()
    threads, each, cap = 12, 30, 500
    books = [make_ledger() for _ in range(2)]
    open_books(books[0], cap)

    def work(i: int) -> None:
        ledger = books[i % 2]
        mine: list[str] = []
        for n in range(each):
            tid = f"m-{i}-{n}"
            choice = rng.random()
            if choice < 0.4:
                attempt(
                    ledger, transfer(tid, "payer", "payee", USD(rng.randint(1, 9)), limits=LIMITS)
                )
            elif choice < 0.7 or not mine:
                done = attempt(
                    ledger, hold(tid, "payer", "payee", USD(rng.randint(1, 9)), limits=LIMITS)
                )
                if isinstance(done, Transfer):
                    mine.append(tid)
            elif choice < 0.85:
                attempt(ledger, void(tid, mine.pop(rng.randrange(len(mine)))))
            else:
                held = mine.pop(rng.randrange(len(mine)))
                attempt(ledger, post(tid, held, USD(1)))
            status = ledger.limit("total")
            assert status.used_atomic <= cap

    run_threads(threads, work)
    ledger = books[0]
    implied = 0
    for i in range(threads):
        for n in range(each):
            try:
                found = ledger.transfer(f"m-{i}-{n}")
            except TransferNotFound:
                continue
            if found.kind is TransferKind.SINGLE:
                implied += found.amount.atomic
            elif found.kind is TransferKind.PENDING:
                state = ledger.hold_status(found.id)
                if state.state is HoldState.PENDING:
                    implied += found.amount.atomic
            elif found.kind is TransferKind.POST:
                implied += found.amount.atomic
    for limit_id in LIMITS:
        status = ledger.limit(limit_id)
        assert status.used_atomic == status.total_atomic == implied <= cap
    assert_verified(ledger)


def _spend_in_process(
    url: str, worker: int, threads: int, each: int, start: Any, results: Any
) -> None:
    """A process of its own: spend 1 unit per transfer against both limits from `threads`
    threads; report every answer as (id, error code or "ok")."""
    answers: list[tuple[str, str]] = []
    lock = threading.Lock()
    try:
        with open_ledger(url) as ledger:

            def spend(thread: int) -> None:
                for n in range(each):
                    tid = f"p{worker}-{thread}-{n}"
                    try:
                        ledger.submit(transfer(tid, "payer", "payee", USD(1), limits=LIMITS))
                    except LedgerError as error:
                        outcome = error.code
                    else:
                        outcome = "ok"
                    with lock:
                        answers.append((tid, outcome))

            start.wait()
            pool = [threading.Thread(target=spend, args=(t,)) for t in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
    except BaseException as error:
        answers.append(("-", f"crashed: {error!r}"))
    results.put((worker, answers))


def test_processes_spend_exactly_the_cap(
    store_url: str, make_ledger: Callable[..., Ledger]
) -> None:
    """3 processes x 3 threads x 30 transfers of 1 against limits of 269: exactly 269 are
    written (in each limit, in the balances, in the log), one is refused."""
    processes, threads, each = 3, 3, 30
    total = processes * threads * each
    open_books(make_ledger(), total - 1)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes)
    queue = context.Queue()
    workers = [
        context.Process(target=_spend_in_process, args=(store_url, w, threads, each, start, queue))
        for w in range(processes)
    ]
    for process in workers:
        process.start()
    reports = dict(queue.get(timeout=120) for _ in workers)
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    answers = [answer for w in sorted(reports) for answer in reports[w]]
    assert len(answers) == total
    problems = [a for a in answers if a[1] not in ("ok", LimitExceeded.code)]
    assert not problems, problems
    written = [tid for tid, outcome in answers if outcome == "ok"]
    assert len(written) == total - 1
    with make_ledger() as ledger:
        for limit_id in LIMITS:
            status = ledger.limit(limit_id)
            assert status.used_atomic == status.total_atomic == total - 1
            assert status.remaining_atomic == 0
        assert ledger.balance("payee").posted == total - 1
        assert_verified(ledger)
