"""Concurrency: many threads, several ledgers on one store, and several processes at once.

Whatever the interleaving, a bounded account is never overdrawn, exactly the transfers
that fit are written, one id is applied once, one hold is resolved once, no acknowledged
transfer is lost, and `log.verify()` passes. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from ledger_threads import attempt, run_threads

from paywire.crypto.keys import PrivateKey
from paywire.ledger import (
    AccountKind,
    Balance,
    ExceedsCredits,
    HoldState,
    IdempotencyConflict,
    Ledger,
    LedgerError,
    LinkedBatchFailed,
    NewAccount,
    NewTransfer,
    PendingAlreadyPosted,
    PendingAlreadyVoided,
    Transfer,
    TransferNotFound,
    hold,
    open_ledger,
    post,
    transfer,
    void,
)
from paywire.ledger.checkpoint import Checkpoint
from paywire.money import USDC

USD = USDC.atomic
T = TypeVar("T")


def open_books(ledger: Ledger, funding: int) -> None:
    """world (a source), payer (a wallet holding `funding`), payee (a provider)."""
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount("payer", USDC, AccountKind.AGENT))
    ledger.open_account(NewAccount("payee", USDC, AccountKind.PROVIDER))
    ledger.submit(transfer("funding", "world", "payer", USD(funding)))


def assert_verified(ledger: Ledger) -> None:
    report = ledger.log.verify()
    assert report.ok, report.problems
    assert set(report.assets.values()) == {0}
    assert report.balances == {a.id: a.balance for a in ledger.accounts(limit=1000)}


# ----- (a) double spending from many threads ---------------------------------------------------


@pytest.mark.parametrize("ledgers", [1, 4])
def test_threads_double_spending_never_overdraw(
    make_ledger: Callable[..., Ledger], ledgers: int
) -> None:
    """20 threads x 50 transfers of 3 from a wallet holding one unit less than all of them:
    exactly all but one are written, and the wallet ends with 2 units."""
    threads, each, amount = 20, 50, 3
    books = [make_ledger() for _ in range(ledgers)]
    open_books(books[0], threads * each * amount - 1)

    def spend(i: int) -> list[Transfer | LedgerError]:
        ledger = books[i % ledgers]
        return [
            attempt(ledger, transfer(f"s-{i}-{n}", "payer", "payee", USD(amount)))
            for n in range(each)
        ]

    results = [r for batch in run_threads(threads, spend) for r in batch]
    written = [r for r in results if isinstance(r, Transfer)]
    refused = [r for r in results if not isinstance(r, Transfer)]
    assert len(written) == threads * each - 1
    assert len(refused) == 1 and isinstance(refused[0], ExceedsCredits), refused
    ledger = books[-1]
    total = threads * each * amount
    assert ledger.balance("payer") == Balance(0, total - amount, 0, total - 1)
    assert ledger.balance("payee").posted == total - amount
    assert len({t.log_index for t in written}) == len(written)
    for done in written[:: max(1, len(written) // 50)]:
        assert ledger.transfer(done.id) == done
    assert_verified(ledger)


def test_threads_spending_holds_and_transfers_refuse_only_what_does_not_fit(
    make_ledger: Callable[..., Ledger],
) -> None:
    """Random amounts, transfers and holds mixed: what is written never exceeds the
    funds, and every refusal is for an amount larger than what is left at the end (the
    balance only falls, so anything that fits at the end fitted when it was refused)."""
    rng = random.Random()
    threads, each = 16, 40
    plans = [
        [(rng.choice(["transfer", "hold"]), rng.randint(1, 60)) for _ in range(each)]
        for _ in range(threads)
    ]
    funding = sum(amount for plan in plans for _, amount in plan) * 2 // 3
    books = [make_ledger() for _ in range(2)]
    open_books(books[0], funding)

    def spend(i: int) -> list[tuple[int, Transfer | LedgerError]]:
        out = []
        for n, (kind, amount) in enumerate(plans[i]):
            make = transfer if kind == "transfer" else hold
            request = make(f"m-{i}-{n}", "payer", "payee", USD(amount))
            out.append((amount, attempt(books[n % 2], request)))
        return out

    results = [r for batch in run_threads(threads, spend) for r in batch]
    ledger = books[0]
    left = ledger.balance("payer").available
    spent = sum(amount for amount, r in results if isinstance(r, Transfer))
    assert left == funding - spent >= 0
    for amount, result in results:
        if not isinstance(result, Transfer):
            assert isinstance(result, ExceedsCredits), result
            assert amount > left, f"{amount} was refused though {left} is still available"
    holds = [r for _, r in results if isinstance(r, Transfer) and r.kind == "pending"]
    assert ledger.balance("payer").debits_pending == sum(h.amount.atomic for h in holds)
    assert_verified(ledger)


# ----- (b) one id from many threads --------------------------------------------------------------


@pytest.mark.parametrize("ledgers", [1, 4])
def test_one_id_from_many_threads_is_applied_once(
    make_ledger: Callable[..., Ledger], ledgers: int
) -> None:
    threads, rounds = 24, 10
    books = [make_ledger() for _ in range(ledgers)]
    open_books(books[0], 1_000_000)
    for n in range(rounds):
        request = transfer(f"once-{n}", "payer", "payee", USD(1_000), metadata={"round": n})
        before = books[0].head().size

        def send(i: int, request: NewTransfer = request) -> Transfer:
            return books[i % ledgers].submit(request)

        results = run_threads(threads, send)
        assert sum(not r.replayed for r in results) == 1, "applied more than once, or never"
        first = next(r for r in results if not r.replayed)
        assert all(r == first for r in results), "a replay differs from the first result"
        assert books[0].head().size == before + 1
        assert books[0].transfer(request.id) == first
    assert books[0].balance("payer").available == 1_000_000 - rounds * 1_000
    assert_verified(books[0])


@pytest.mark.parametrize("ledgers", [1, 3])
def test_one_id_with_two_bodies_from_many_threads(
    make_ledger: Callable[..., Ledger], ledgers: int
) -> None:
    """Half the threads send body A, half body B under one id: one body wins; the threads
    that sent it get replays, the others a conflict, and only the winner moved money."""
    threads, rounds = 16, 8
    books = [make_ledger() for _ in range(ledgers)]
    open_books(books[0], 1_000_000)
    for n in range(rounds):
        bodies = [
            transfer(f"two-{n}", "payer", "payee", USD(100)),
            transfer(f"two-{n}", "payer", "payee", USD(200)),
        ]

        def send_either(i: int, bodies: list[NewTransfer] = bodies) -> Transfer | LedgerError:
            return attempt(books[i % ledgers], bodies[i % 2])

        results = run_threads(threads, send_either)
        written = [(i, r) for i, r in enumerate(results) if isinstance(r, Transfer)]
        fresh = [(i, r) for i, r in written if not r.replayed]
        assert len(fresh) == 1
        winner_parity, first = fresh[0][0] % 2, fresh[0][1]
        for i, result in enumerate(results):
            if i % 2 == winner_parity:
                assert result == first, result
            else:
                assert isinstance(result, IdempotencyConflict), result
        assert books[-1].transfer(f"two-{n}") == first
    moved = books[0].balance("payee").posted
    assert rounds * 100 <= moved <= rounds * 200
    assert_verified(books[0])


@pytest.mark.parametrize("ledgers", [1, 3])
def test_one_linked_batch_from_many_threads_is_applied_once(
    make_ledger: Callable[..., Ledger], ledgers: int
) -> None:
    threads = 12
    books = [make_ledger() for _ in range(ledgers)]
    open_books(books[0], 10_000)
    batch = [
        transfer("split-a", "payer", "payee", USD(600), metadata={"task": "t-1"}),
        hold("split-b", "payer", "payee", USD(300), timeout_s=3600),
        post("split-c", "split-b", USD(200)),
    ]
    results = run_threads(threads, lambda i: books[i % ledgers].submit_linked(batch))
    fresh = [r for r in results if not any(t.replayed for t in r)]
    assert len(fresh) == 1
    assert all(all(t.replayed for t in r) for r in results if r is not fresh[0])
    assert all(r == fresh[0] for r in results)
    assert books[0].balance("payer") == Balance(0, 800, 0, 10_000)
    assert_verified(books[0])


# ----- (c) several processes on one store --------------------------------------------------------


def _spend_in_process(
    url: str,
    worker: int,
    threads: int,
    each: int,
    start: Any,
    results: Any,
) -> None:
    """A process of its own: open the ledger, wait for the others, spend from `payer`
    on `threads` threads, and report every answer as (id, error code or "ok")."""
    answers: list[tuple[str, str]] = []
    lock = threading.Lock()
    try:
        with open_ledger(url) as ledger:

            def spend(thread: int) -> None:
                for n in range(each):
                    tid = f"p{worker}-{thread}-{n}"
                    request = transfer(tid, "payer", "payee", USD(1), metadata={"p": worker})
                    if n % 10 == 9:  # a retry of the last one: must be a replay, never new
                        previous = f"p{worker}-{thread}-{n - 1}"
                        done = answers_of(previous)
                        if done == "ok":
                            again = ledger.submit(
                                transfer(previous, "payer", "payee", USD(1), metadata={"p": worker})
                            )
                            if not again.replayed:
                                with lock:
                                    answers.append((previous, "applied twice"))
                    try:
                        ledger.submit(request)
                    except LedgerError as error:
                        outcome = error.code
                    else:
                        outcome = "ok"
                    with lock:
                        answers.append((tid, outcome))

            def answers_of(tid: str) -> str | None:
                with lock:
                    return next((o for i, o in reversed(answers) if i == tid), None)

            start.wait()
            pool = [threading.Thread(target=spend, args=(t,)) for t in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
    except BaseException as error:
        answers.append(("-", f"crashed: {error!r}"))
    results.put((worker, answers))


def test_processes_spending_one_wallet(store_url: str, make_ledger: Callable[..., Ledger]) -> None:
    """4 processes x 4 threads x 50 transfers of 1 from a wallet holding 799: exactly 799
    are written, none is lost or applied twice, verify passes."""
    processes, threads, each = 4, 4, 50
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
    problems = [a for a in answers if a[1] not in ("ok", ExceedsCredits.code)]
    assert not problems, problems
    written = {tid for tid, outcome in answers if outcome == "ok"}
    refused = {tid for tid, outcome in answers if outcome != "ok"}
    assert len(answers) == total
    assert len(written) == total - 1 and len(refused) == 1
    with make_ledger() as ledger:
        for tid in written:
            assert ledger.transfer(tid).amount == USD(1)
        for tid in refused:
            with pytest.raises(TransferNotFound):
                ledger.transfer(tid)
        assert ledger.balance("payer") == Balance(0, total - 1, 0, total - 1)
        assert ledger.balance("payee").posted == total - 1
        assert ledger.head().size == 3 + 1 + total - 1  # accounts, funding, transfers
        assert_verified(ledger)


# ----- (d) racing to resolve one hold ------------------------------------------------------------


@pytest.mark.parametrize("ledgers", [1, 4])
def test_one_hold_is_resolved_once(make_ledger: Callable[..., Ledger], ledgers: int) -> None:
    """Many threads post (some void) one hold through several ledgers: one wins, every
    other gets the refusal that names what the winner did."""
    threads, rounds = 16, 8
    books = [make_ledger() for _ in range(ledgers)]
    open_books(books[0], 100_000)
    posted_total = 0
    for n in range(rounds):
        books[0].submit(hold(f"h{n}", "payer", "payee", USD(1_000), timeout_s=3600))

        def resolve(i: int, n: int = n) -> tuple[NewTransfer, Transfer | LedgerError]:
            if i % 4 == 3:
                request = void(f"v{n}-{i}", f"h{n}")
            else:
                request = post(f"p{n}-{i}", f"h{n}", USD(100 + i))
            return request, attempt(books[i % ledgers], request)

        results = run_threads(threads, resolve)
        winners = [(q, r) for q, r in results if isinstance(r, Transfer)]
        assert len(winners) == 1, winners
        request, won = winners[0]
        loser_error = PendingAlreadyPosted if request.kind == "post" else PendingAlreadyVoided
        for q, r in results:
            if q is not request:
                assert isinstance(r, loser_error), (q.id, r)
        status = books[-1].hold_status(f"h{n}")
        assert status.resolved_by == request.id
        assert status.state is (HoldState.POSTED if request.kind == "post" else HoldState.VOIDED)
        posted_total += won.amount.atomic if request.kind == "post" else 0
    assert books[0].balance("payer") == Balance(0, posted_total, 0, 100_000)
    assert books[0].balance("payee") == Balance(0, 0, 0, posted_total)
    assert_verified(books[0])


# ----- (e) group commit: one batch, many independent outcomes ---------------------------------


def _wallet_script(ledger: Ledger, wallet: str, r: int) -> None:
    """Requests on one wallet whose outcomes do not depend on other threads: refusals
    inside a group commit must leave no trace on the requests batched with them."""
    w = f"{wallet}-{r}"
    ledger.submit(transfer(f"{w}-fund", "world", wallet, USD(1_000)))
    ledger.submit(hold(f"{w}-h", wallet, "payee", USD(500)))
    with pytest.raises(LinkedBatchFailed) as failed:
        ledger.submit_linked(
            [post(f"{w}-p1", f"{w}-h", USD(300)), transfer(f"{w}-big", wallet, "payee", USD(10**9))]
        )
    assert failed.value.index == 1 and isinstance(failed.value.cause, ExceedsCredits)
    assert ledger.hold_status(f"{w}-h").state is HoldState.PENDING
    with pytest.raises(LinkedBatchFailed) as failed:
        ledger.submit_linked([post(f"{w}-p2", f"{w}-h", USD(300)), void(f"{w}-v", f"{w}-h")])
    assert failed.value.index == 1 and isinstance(failed.value.cause, PendingAlreadyPosted)
    a = transfer(f"{w}-a", wallet, "payee", USD(100))
    many = ledger.submit_many([a, transfer(f"{w}-b", wallet, "payee", USD(10**9)), a])
    assert isinstance(many[0], Transfer) and not many[0].replayed
    assert isinstance(many[1], ExceedsCredits)
    assert isinstance(many[2], Transfer) and many[2].replayed and many[2] == many[0]
    assert ledger.submit(post(f"{w}-p3", f"{w}-h", USD(200))).amount == USD(200)
    linked = ledger.submit_linked(
        [
            transfer(f"{w}-x1", wallet, "payee", USD(50)),
            hold(f"{w}-x2", wallet, "payee", USD(650)),
            void(f"{w}-x3", f"{w}-x2"),
        ]
    )
    assert [t.replayed for t in linked] == [False, False, False]
    assert ledger.balance(wallet).available == 650
    ledger.submit(transfer(f"{w}-rest", wallet, "payee", USD(650)))
    for missing in ("p1", "big", "p2", "v", "b"):
        with pytest.raises(TransferNotFound):
            ledger.transfer(f"{w}-{missing}")


@pytest.mark.parametrize("ledgers", [1, 3])
def test_refusals_in_a_group_commit_leave_no_trace(
    make_ledger: Callable[..., Ledger], ledgers: int
) -> None:
    """16 threads, each on a wallet of its own, send requests that mix successes, refused
    linked batches and partly refused `submit_many` groups; the writer batches them into
    shared transactions. Each thread sees exactly the outcomes it would see alone."""
    threads, rounds = 16, 4
    books = [make_ledger() for _ in range(ledgers)]
    open_books(books[0], 1)
    for t in range(threads):
        books[0].open_account(NewAccount(f"w{t}", USDC, AccountKind.AGENT))

    def script(t: int) -> None:
        for r in range(rounds):
            _wallet_script(books[t % ledgers], f"w{t}", r)

    run_threads(threads, script)
    ledger = books[0]
    for t in range(threads):
        assert ledger.balance(f"w{t}") == Balance(0, rounds * 1_000, 0, rounds * 1_000)
    assert ledger.balance("payee") == Balance(0, 0, 0, threads * rounds * 1_000)
    assert_verified(ledger)


# ----- (f) verify while the ledger writes -------------------------------------------------------


def test_verify_passes_while_ledgers_write_and_sign(make_ledger: Callable[..., Ledger]) -> None:
    """`verify` reads one snapshot: run over and over while two ledgers write holds (some
    expiring), posts and linked batches and a third signs checkpoints, it always passes."""
    writers = [make_ledger(), make_ledger()]
    signer, checker = make_ledger(), make_ledger()
    open_books(writers[0], 10**9)
    operator = PrivateKey.generate()

    def write(t: int) -> None:
        ledger = writers[t % 2]
        for n in range(60):
            tid = f"{t}-{n}"
            ledger.submit(hold(f"h{tid}", "payer", "payee", USD(10), timeout_s=1 + n % 2))
            if n % 2:
                ledger.submit(post(f"p{tid}", f"h{tid}", USD(5)))
            ledger.submit_linked(
                [
                    transfer(f"x{tid}", "payer", "payee", USD(2)),
                    transfer(f"y{tid}", "payee", "payer", USD(1)),
                ]
            )
            if t == 0 and n % 10 == 0:  # one signer (concurrent signers: see (g))
                signer.log.checkpoint(operator)

    pool = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for thread in pool:
        thread.start()
    reports = []
    while any(thread.is_alive() for thread in pool) or not reports:
        reports.append(checker.log.verify())
    for thread in pool:
        thread.join()
    bad = [report.problems for report in reports if not report.ok]
    assert not bad, bad[0]
    # The holds time out after 1-2 s, and every ledger's writer expires them on its own:
    # let them all expire before comparing the verified books with the stored balances,
    # or an expiry between the two reads makes them differ.
    time.sleep(2.1)
    checker.expire_due()
    assert_verified(checker)


# ----- (g) checkpoints signed by two ledgers at once --------------------------------------------


def _racing_checkpoints(
    make_ledger: Callable[..., Ledger], write_meanwhile: bool
) -> tuple[Ledger, Checkpoint | None]:
    """Two ledgers on one store (two processes of one operator) sign a checkpoint each:
    while the first is signing (when it asks the time), the second (after one more transfer
    if `write_meanwhile`) starts signing its own, in another thread. The store's write lock
    must order them: whatever the interleaving, the stored checkpoints stay in order.
    Returns the first ledger and what its `checkpoint` answered (None: it refused)."""
    operator = PrivateKey.generate()
    hook: list[Callable[[], None]] = []
    test_thread = threading.get_ident()
    racers: list[threading.Thread] = []
    errors: list[BaseException] = []

    def clock() -> int:
        if hook and threading.get_ident() == test_thread:  # not the ledger's writer thread
            racer = threading.Thread(target=hook.pop())
            racer.start()
            racers.append(racer)
            time.sleep(0.05)  # give the racer time to reach the store's lock
        return time.time_ns()

    first = make_ledger(clock=clock)
    second = make_ledger()
    open_books(first, 1_000)

    def meanwhile() -> None:
        try:
            if write_meanwhile:
                second.submit(transfer("meanwhile", "payer", "payee", USD(1)))
            second.log.checkpoint(operator)
        except BaseException as error:  # reported by the test thread
            errors.append(error)

    hook.append(meanwhile)
    try:
        signed: Checkpoint | None = first.log.checkpoint(operator)
    except LedgerError:
        signed = None  # refusing to store a checkpoint that lost the race is a fair answer
    assert not hook, "the interleaving did not happen"
    for racer in racers:
        racer.join(timeout=60)
    assert not errors, errors
    return first, signed


def test_checkpoints_signed_concurrently_keep_the_log_verifiable(
    make_ledger: Callable[..., Ledger],
) -> None:
    """The first ledger signs the smaller tree with the later timestamp. Whatever it does
    with that checkpoint, the stored checkpoints must stay in order and verify must pass."""
    ledger, signed = _racing_checkpoints(make_ledger, write_meanwhile=True)
    kept = ledger.log.checkpoints()
    assert [c.tree_size for c in kept] == sorted(c.tree_size for c in kept)
    assert [c.timestamp for c in kept] == sorted(c.timestamp for c in kept), kept
    report = ledger.log.verify()
    assert report.ok, report.problems
    assert signed is None or signed in kept


def test_a_checkpoint_signed_concurrently_is_the_one_kept(
    make_ledger: Callable[..., Ledger],
) -> None:
    """Both ledgers sign the same tree: only one checkpoint per tree size is stored, so the
    one handed back to the caller must be that one (a client keeps and shows it)."""
    ledger, signed = _racing_checkpoints(make_ledger, write_meanwhile=False)
    kept = ledger.log.checkpoints()
    assert len(kept) == 1  # the second signer found the tree already signed
    assert signed is None or signed == kept[0], (signed, kept)
    assert ledger.log.verify().ok
