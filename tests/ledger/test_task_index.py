"""The task index: `Ledger.task_transfers` lists a task's transfers from the index, in log
order, on SQLite and PostgreSQL alike; holds, their resolutions and linked batches are
indexed with the transfer, a failed batch indexes nothing, verify checks the index, and a
store from before the index rebuilds it from its log when it opens."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

import psycopg
import pytest

from paywire.ledger import (
    AccountKind,
    ExceedsCredits,
    InvalidRequest,
    Ledger,
    LinkedBatchFailed,
    NewAccount,
    NewTransfer,
    TooManyTransfers,
    TransferKind,
    hold,
    ledger_reads,
    open_ledger,
    post,
    postgres,
    task_index,
    transfer,
    void,
)
from paywire.ledger._sqlite_tasks import _PAGE as SQLITE_PAGE
from paywire.ledger.postgres._tasks import _PAGE as POSTGRES_PAGE
from paywire.ledger.store import MAX_READ_ROWS, SCHEMA_VERSION
from paywire.money import USDC

if TYPE_CHECKING:
    from conftest import FakeClock

USD = USDC.atomic


def books(ledger: Ledger) -> None:
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount("payer", USDC, AccountKind.AGENT))
    ledger.open_account(NewAccount("payee", USDC, AccountKind.PROVIDER))
    ledger.submit(transfer("funding", "world", "payer", USD(1_000_000)))


def pay(tid: str, atomic: int = 1, task: object = None, **metadata: object) -> NewTransfer:
    if task is not None:
        metadata["task"] = task
    return transfer(tid, "payer", "payee", USD(atomic), metadata=metadata or None)  # type: ignore[arg-type]


def ids(ledger: Ledger, task: str, **page: int) -> list[str]:
    return [t.id for t in ledger.task_transfers(task, **page)]


def run_sql(url: str, *statements: str) -> None:
    """Change the store behind the ledger's back (as an older paywire, or a tamperer)."""
    if url.startswith("sqlite:///"):
        db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            for statement in statements:
                db.execute(statement)
        finally:
            db.close()
    else:
        with psycopg.connect(url, autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)


def assert_verified(ledger: Ledger) -> None:
    report = ledger.log.verify()
    assert report.ok, report.problems


# ----- what is indexed --------------------------------------------------------------------


def test_tagged_transfers_are_listed_oldest_first(ledger: Ledger) -> None:
    books(ledger)
    ledger.submit(pay("a1", task="t-a"))
    ledger.submit(pay("plain"))
    ledger.submit(pay("b1", task="t-b", note="x"))
    ledger.submit(pay("a2", 7, task="t-a", meter={"task": "nested"}))
    for tag in (5, "", "x" * (task_index.MAX_TASK_CHARS + 1), ["t-a"], None):
        ledger.submit(pay(f"odd-{len(str(tag))}-{type(tag).__name__}", task=tag))
    ledger.submit(pay("long", task="y" * task_index.MAX_TASK_CHARS))
    assert ledger.submit(pay("a1", task="t-a")).replayed  # a replay adds nothing

    found = ledger.task_transfers("t-a")
    assert [t.id for t in found] == ["a1", "a2"]
    assert found == [ledger.transfer("a1"), ledger.transfer("a2")]  # the full records
    assert found[1].metadata == {"task": "t-a", "meter": {"task": "nested"}}
    assert ids(ledger, "t-b") == ["b1"]
    assert ids(ledger, "y" * task_index.MAX_TASK_CHARS) == ["long"]
    for unknown in ("nested", "5", "plain", "never-seen"):
        assert ledger.task_transfers(unknown) == []
        assert ledger.all_task_transfers(unknown) == []
    assert_verified(ledger)


def test_holds_and_their_resolutions_belong_to_the_task(ledger: Ledger, clock: FakeClock) -> None:
    books(ledger)
    tag = {"task": "t1"}
    ledger.submit(hold("h-post", "payer", "payee", USD(50), metadata=tag))
    ledger.submit(hold("h-void", "payer", "payee", USD(20), metadata=tag))
    ledger.submit(hold("h-expire", "payer", "payee", USD(10), timeout_s=60, metadata=tag))
    ledger.submit(hold("h-other", "payer", "payee", USD(5)))  # no task
    ledger.submit(post("p", "h-post", USD(30), metadata=tag))
    ledger.submit(void("v", "h-void"))  # untagged, yet of the hold's task
    ledger.submit(post("p-other", "h-other", metadata={"task": "t2"}))  # its own tag
    clock.advance(61)
    ledger.expire_due()  # the refund of an unsettled task carries no metadata at all

    found = ledger.task_transfers("t1")
    assert [t.id for t in found] == ["h-post", "h-void", "h-expire", "p", "v", "h-expire~expire"]
    assert [t.kind for t in found] == [
        *(TransferKind.PENDING,) * 3,
        TransferKind.POST,
        TransferKind.VOID,
        TransferKind.EXPIRE,
    ]
    assert found[3].amount == USD(30) and found[5].metadata == {}
    assert ids(ledger, "t2") == ["p-other"]
    assert_verified(ledger)


def test_linked_batches_are_indexed_all_or_nothing(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    books(ledger)
    ledger.submit_linked(
        [
            hold("escrow", "payer", "payee", USD(100), metadata={"task": "t1"}),
            post("settle", "escrow", USD(60), metadata={"task": "t1"}),
            pay("fee", 5, task="t1"),
            pay("other", 5, task="t2"),
        ]
    )
    with pytest.raises(LinkedBatchFailed) as failed:
        ledger.submit_linked([pay("lost-1", task="t1"), pay("lost-2", 10**12, task="t3")])
    assert isinstance(failed.value.cause, ExceedsCredits)
    assert ids(ledger, "t1") == ["escrow", "settle", "fee"]
    assert ids(ledger, "t3") == []
    # A big batch: PostgreSQL writes its rows with COPY past `COPY_MIN_ROWS`.
    monkeypatch.setattr(postgres, "COPY_MIN_ROWS", 2)
    ledger.submit_linked([pay(f"big-{n}", task="t4") for n in range(5)])
    results = ledger.submit_many([pay(f"many-{n}", task="t4") for n in range(3)])
    assert all(not isinstance(result, Exception) for result in results)
    assert ids(ledger, "t4") == [f"big-{n}" for n in range(5)] + [f"many-{n}" for n in range(3)]
    assert_verified(ledger)


# ----- paging and bounds ------------------------------------------------------------------


def test_pages_follow_the_log(ledger: Ledger) -> None:
    books(ledger)
    for n in range(7):
        ledger.submit(pay(f"t{n}", task="task"))
        ledger.submit(pay(f"u{n}"))
    first = ledger.task_transfers("task", limit=3)
    assert [t.id for t in first] == ["t0", "t1", "t2"]
    second = ledger.task_transfers("task", after=first[-1].log_index, limit=3)
    assert [t.id for t in second] == ["t3", "t4", "t5"]
    last = ledger.task_transfers("task", after=second[-1].log_index, limit=3)
    assert [t.id for t in last] == ["t6"]
    assert ledger.task_transfers("task", after=last[-1].log_index) == []
    assert ledger.task_transfers("task", after=2**63 - 1) == []
    assert ids(ledger, "task", after=0) == [f"t{n}" for n in range(7)]
    assert ids(ledger, "task", limit=MAX_READ_ROWS) == [f"t{n}" for n in range(7)]
    assert ledger.all_task_transfers("task") == first + second + last


def test_all_task_transfers_pages_and_stops_at_its_bound(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    books(ledger)
    ledger.submit_linked([pay(f"t{n}", task="task") for n in range(7)])
    monkeypatch.setattr(ledger_reads, "MAX_READ_ROWS", 2)  # pages of 2 in one snapshot
    assert [t.id for t in ledger.all_task_transfers("task")] == [f"t{n}" for n in range(7)]
    monkeypatch.setattr(task_index, "MAX_TASK_TRANSFERS", 7)
    assert len(ledger.all_task_transfers("task")) == 7
    monkeypatch.setattr(task_index, "MAX_TASK_TRANSFERS", 6)
    with pytest.raises(TooManyTransfers, match="more than 6 transfers") as error:
        ledger.all_task_transfers("task")
    assert error.value.code == "too_many_transfers"


def test_bad_task_ids_and_pages_are_refused(ledger: Ledger) -> None:
    books(ledger)
    for read in (ledger.task_transfers, ledger.all_task_transfers):
        for bad in ("", "x" * (task_index.MAX_TASK_CHARS + 1)):
            with pytest.raises(InvalidRequest, match="task id is 1-80 characters"):
                read(bad)
        for wrong in (None, 5, b"t1", ["t1"]):
            with pytest.raises(InvalidRequest, match="task id must be text"):
                read(wrong)  # type: ignore[arg-type]
    for limit in (0, -1, MAX_READ_ROWS + 1, True, 2.0, "5", None):
        with pytest.raises(
            InvalidRequest, match=f"limit must be a whole number from 1 to {MAX_READ_ROWS}"
        ):
            ledger.task_transfers("t1", limit=limit)  # type: ignore[arg-type]
    for after in (-1, 2**63, True, 1.0, "3"):
        with pytest.raises(InvalidRequest, match="after must be the log index"):
            ledger.task_transfers("t1", after=after)  # type: ignore[arg-type]


# ----- the stores -------------------------------------------------------------------------


def test_reads_walk_the_index(store_url: str, make_ledger: Callable[..., Ledger]) -> None:
    """The page query follows `transfers_task` (no scan of transfers or the log)."""
    books(make_ledger())
    if store_url.startswith("sqlite:///"):
        db = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        try:
            plan = " ".join(
                str(row) for row in db.execute(f"EXPLAIN QUERY PLAN {SQLITE_PAGE}", ("t", -1, 5))
            )
        finally:
            db.close()
        assert "USING INDEX transfers_task" in plan or "USING COVERING INDEX transfers_task" in plan
    else:
        with psycopg.connect(store_url, autocommit=True) as connection:
            connection.execute("SET enable_seqscan = off")  # as the store's sessions run
            rows = connection.execute(f"EXPLAIN {POSTGRES_PAGE}", ("t", -1, 5)).fetchall()
        plan = " ".join(str(row[0]) for row in rows)
        assert "transfers_task" in plan, plan


def test_verify_checks_the_index(store_url: str, make_ledger: Callable[..., Ledger]) -> None:
    ledger = make_ledger()
    books(ledger)
    ledger.submit(pay("a", task="t1"))
    ledger.submit(pay("b"))
    assert_verified(ledger)
    run_sql(store_url, "UPDATE transfers SET task = 't2' WHERE id = 'a'")
    report = ledger.log.verify()
    assert [p.message for p in report.problems] == [
        "transfer 'a' in the store differs from the log"
    ]
    run_sql(
        store_url,
        "UPDATE transfers SET task = 't1' WHERE id = 'a'",
        "UPDATE transfers SET task = 't1' WHERE id = 'b'",
    )
    assert not ledger.log.verify().ok


def test_a_store_from_before_the_index_rebuilds_it(
    store_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version 2 store (no `transfers.task`, no index) is brought to version 3 when it
    opens, its index rebuilt from the log entries; it reads, verifies and writes as new."""
    with open_ledger(store_url, clock=clock) as ledger:
        books(ledger)
        ledger.open_account(NewAccount("escrow", USDC, AccountKind.ESCROW, metadata={"task": "t1"}))
        ledger.submit(pay("a1", task="t1"))
        ledger.submit(pay("plain", meter={"task": "t1"}))  # a nested key is no tag
        ledger.submit(hold("h1", "payer", "payee", USD(40), timeout_s=60, metadata={"task": "t1"}))
        ledger.submit(hold("h2", "payer", "payee", USD(40), metadata={"task": "t1"}))
        ledger.submit(void("v2", "h2"))
        ledger.submit(pay("b1", task="t2"))
        ledger.submit(pay("odd", task=7))
        ledger.submit_linked([pay(f"l{n}", task="t1") for n in range(3)])
        clock.advance(61)
        ledger.expire_due()
        before = {task: ledger.task_transfers(task) for task in ("t1", "t2")}
    assert [t.id for t in before["t1"]] == ["a1", "h1", "h2", "v2", "l0", "l1", "l2", "h1~expire"]
    run_sql(
        store_url,
        "DROP INDEX transfers_task",
        "ALTER TABLE transfers DROP COLUMN task",
        "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
    )
    monkeypatch.setattr(task_index, "BACKFILL_ROWS", 2)  # the rebuild reads several pages
    with open_ledger(store_url, clock=clock) as ledger:
        with ledger.reader() as reader:
            assert reader.meta()["schema_version"] == str(SCHEMA_VERSION) == "3"
        assert {task: ledger.task_transfers(task) for task in ("t1", "t2")} == before
        assert_verified(ledger)
        ledger.submit(pay("new", task="t2"))
        assert ids(ledger, "t2") == ["b1", "new"]
        assert_verified(ledger)
    with open_ledger(store_url, clock=clock) as ledger:  # and opens again as version 3
        assert ids(ledger, "t1") == [t.id for t in before["t1"]]
    index = (
        "SELECT name FROM sqlite_master WHERE name = 'transfers_task'"
        if store_url.startswith("sqlite:///")
        else "SELECT indexname FROM pg_indexes WHERE indexname = 'transfers_task'"
    )
    assert _rows(store_url, index) == [("transfers_task",)]


def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    if url.startswith("sqlite:///"):
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return db.execute(query).fetchall()
        finally:
            db.close()
    with psycopg.connect(url) as connection:
        return connection.execute(query).fetchall()
