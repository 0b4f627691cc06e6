"""What only the PostgreSQL store does: URLs, connections, the shared schema, several
writers on one database, u128 columns. (The ledger's operations run on both stores in
test_ledger_ops.py.)"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import psycopg
import pytest

from paywire._dev.postgres import PostgresServer
from paywire.ledger import (
    AccountKind,
    Balance,
    ExceedsCredits,
    HoldState,
    InvalidRequest,
    Ledger,
    LedgerUnavailable,
    NewAccount,
    StoreCorrupt,
    hold,
    open_ledger,
    post,
    postgres,
    transfer,
    void,
)
from paywire.ledger.open import open_store
from paywire.ledger.postgres import PostgresStore
from paywire.ledger.store import SCHEMA_VERSION, StoredCheckpoint
from paywire.ledger.verify import verify_store
from paywire.money import MAX_ATOMIC, USDC

USD = USDC.atomic


class Clock(Protocol):
    """The `clock` fixture: wall time in ns that a test moves by hand."""

    def __call__(self) -> int: ...

    def advance(self, seconds: float) -> None: ...


SECRET = "s3cr3t-pw:/@x"
SECRET_URL = "s3cr3t-pw%3A%2F%40x"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    return postgres_server.new_database()


@pytest.fixture
def ledgers(pg_url: str) -> Iterator[Callable[[], Ledger]]:
    """Ledgers on one database, each with its own store: like several processes."""
    opened: list[Ledger] = []

    def make() -> Ledger:
        ledger = open_ledger(pg_url)
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        ledger.close()


def _setup(ledger: Ledger, alice: int = 0) -> None:
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount("alice", USDC, AccountKind.AGENT))
    ledger.open_account(NewAccount("bob", USDC, AccountKind.PROVIDER))
    if alice:
        ledger.submit(transfer("fund-alice", "world", "alice", USD(alice)))


def _verify(ledger: Ledger) -> None:
    """Re-derive everything the store holds from its log (accounts, holds, Merkle nodes)."""
    with ledger.reader() as reader:
        report = verify_store(reader, ledger.ledger_id)
    assert report.ok, report.problems


def _sql(url: str, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(query, params)
        return cursor.fetchall() if cursor.description else []


# ----- URLs and connections --------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://paywire:{SECRET_URL}@localhost:notaport/db",
        f"postgresql://paywire:{SECRET_URL}@localhost/db?no_such_option=1",
        "postgresql://localhost/db?sslmode",
        "mysql://paywire@localhost/db",
    ],
)
def test_bad_urls_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        PostgresStore(url)
    assert SECRET not in str(refused.value) and SECRET_URL not in str(refused.value)


def test_description_never_shows_the_password() -> None:
    store = PostgresStore(f"postgresql://paywire:{SECRET_URL}@db.example:5433/books")
    assert store.description == "postgresql://paywire@db.example:5433/books"
    store = PostgresStore(f"postgres://h1:1,h2:2/books?password={SECRET_URL}&sslmode=disable")
    assert store.description == "postgres://h1:1,h2:2/books?sslmode=disable"
    assert isinstance(open_store("postgresql://paywire@localhost/books"), PostgresStore)


def test_unreachable_server_is_unavailable_and_the_message_keeps_the_password() -> None:
    url = f"postgresql://paywire:{SECRET_URL}@127.0.0.1:{_free_port()}/books?connect_timeout=5"
    with pytest.raises(LedgerUnavailable) as failed:
        open_ledger(url)
    message = str(failed.value)
    assert "127.0.0.1" in message
    assert SECRET not in message and SECRET_URL not in message and "s3cr3t" not in message


def test_refused_login_is_unavailable_without_the_password(pg_url: str) -> None:
    role = "paywire_pw_user"
    _sql(pg_url, f"CREATE ROLE {role} LOGIN PASSWORD 'right-one'")
    # The test server trusts every local login; a role without CONNECT right is refused.
    database = pg_url.rsplit("/", 1)[1]
    _sql(pg_url, f'REVOKE CONNECT ON DATABASE "{database}" FROM PUBLIC')
    url = pg_url.replace("paywire@", f"{role}:{SECRET_URL}@")
    with pytest.raises(LedgerUnavailable) as failed:
        PostgresStore(url).initialize({})
    assert role in str(failed.value)
    assert "s3cr3t" not in str(failed.value)


# ----- schema --------------------------------------------------------------------------


def test_schema_is_created_once_and_reopened(pg_url: str) -> None:
    with open_ledger(pg_url) as first:
        _setup(first, alice=100)
        first.submit(transfer("t1", "alice", "bob", USD(40)))
        ledger_id, head = first.ledger_id, first.head()
    tables = _sql(pg_url, "SELECT relname, oid FROM pg_class WHERE relkind = 'r' ORDER BY 1")
    names = [name for name, _ in tables if not str(name).startswith(("pg_", "sql_"))]
    assert names == [
        *("accounts", "checkpoints", "limit_usage", "limits", "log", "log_head", "log_nodes"),
        *("meta", "transfers"),
    ]
    with open_ledger(pg_url) as again:
        assert again.ledger_id == ledger_id
        assert again.head() == head
        assert again.balance("alice") == Balance(0, 40, 0, 100)
        assert again.transfer("t1").amount == USD(40)
    assert _sql(pg_url, "SELECT relname, oid FROM pg_class WHERE relkind = 'r' ORDER BY 1") == (
        tables
    )
    assert _sql(pg_url, "SELECT count(*) FROM log_head") == [(1,)]
    meta = {str(key): str(value) for key, value in _sql(pg_url, "SELECT key, value FROM meta")}
    assert meta["ledger_id"] == ledger_id
    assert meta["schema_version"] == str(SCHEMA_VERSION)


def test_processes_initializing_at_once_agree(pg_url: str) -> None:
    barrier = threading.Barrier(6)
    found: list[str] = []
    errors: list[BaseException] = []

    def start(n: int) -> None:
        store = PostgresStore(pg_url)
        try:
            barrier.wait()
            found.append(store.initialize({"ledger_id": f"ledger{n}"})["ledger_id"])
        except BaseException as error:
            errors.append(error)
        finally:
            store.close()

    threads = [threading.Thread(target=start, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(found) == 6 and len(set(found)) == 1


def test_unknown_schema_version_is_refused(pg_url: str) -> None:
    open_ledger(pg_url).close()
    _sql(pg_url, "UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(StoreCorrupt, match="999"):
        open_ledger(pg_url)


def test_amount_columns_hold_u128(pg_url: str) -> None:
    with open_ledger(pg_url) as ledger:
        _setup(ledger)
        done = ledger.submit(transfer("max", "world", "bob", USD(MAX_ATOMIC)))
        assert done.amount == USD(MAX_ATOMIC)
        ledger.open_account(NewAccount("mint", USDC, AccountKind.EXTERNAL))
        ledger.submit(hold("h", "mint", "alice", USD(MAX_ATOMIC)))
    with open_ledger(pg_url) as again:
        assert again.balance("bob") == Balance(0, 0, 0, MAX_ATOMIC)
        assert again.balance("alice") == Balance(0, 0, MAX_ATOMIC, 0)
        assert again.balance("world") == Balance(0, MAX_ATOMIC, 0, 0)
        assert again.balance("mint") == Balance(MAX_ATOMIC, 0, 0, 0)
        assert again.transfer("max").amount.atomic == MAX_ATOMIC
        again.submit(post("p", "h"))
        assert again.balance("alice") == Balance(0, 0, 0, MAX_ATOMIC)
    assert _sql(pg_url, "SELECT amount::text FROM transfers WHERE id = 'max'") == [
        (str(2**128 - 1),)
    ]
    columns = _sql(
        pg_url,
        "SELECT column_name, numeric_precision, numeric_scale FROM information_schema.columns "
        "WHERE data_type = 'numeric' AND table_schema = current_schema() "
        "ORDER BY table_name, column_name",
    )
    assert {(precision, scale) for _, precision, scale in columns} == {(39, 0)}
    assert len(columns) == 8  # 4 balances, an amount, a cap, a total and a bucket's usage


def test_ids_sort_by_code_point_whatever_the_locale(ledgers: Callable[[], Ledger]) -> None:
    ledger = ledgers()
    for account in ("b", "B", "a-c", "ab", "a_b", "Z9"):
        ledger.open_account(NewAccount(account, USDC, AccountKind.AGENT))
    assert [a.id for a in ledger.accounts()] == sorted(["b", "B", "a-c", "ab", "a_b", "Z9"])


# ----- several stores on one database --------------------------------------------------


def test_two_stores_on_one_database_share_the_books(ledgers: Callable[[], Ledger]) -> None:
    one, two = ledgers(), ledgers()
    assert one.ledger_id == two.ledger_id
    _setup(one, alice=100)
    assert two.balance("alice").available == 100
    two.submit(transfer("t1", "alice", "bob", USD(30)))
    one.submit(transfer("t2", "alice", "bob", USD(30)))
    with pytest.raises(ExceedsCredits):
        two.submit(transfer("t3", "alice", "bob", USD(41)))
    assert one.head() == two.head()
    assert one.transfer("t1").log_index + 1 == two.transfer("t2").log_index
    # A retry through the other store is answered from the first result.
    again = one.submit(transfer("t1", "alice", "bob", USD(30)))
    assert again.replayed and again.log_index == two.transfer("t1").log_index
    # A hold made through one store is resolved through the other.
    one.submit(hold("h1", "alice", "bob", USD(10)))
    two.submit(void("v1", "h1"))
    assert one.hold_status("h1").state is HoldState.VOIDED
    assert one.balance("alice") == two.balance("alice") == Balance(0, 60, 0, 100)
    _verify(one)


def test_concurrent_writers_never_overdraw(ledgers: Callable[[], Ledger]) -> None:
    first, second = ledgers(), ledgers()
    _setup(first, alice=300)
    outcomes: list[str] = []
    lock = threading.Lock()

    def spend(ledger: Ledger, name: str) -> None:
        for n in range(100):
            try:
                ledger.submit(transfer(f"{name}-{n}", "alice", "bob", USD(2)))
                result = "ok"
            except ExceedsCredits:
                result = "refused"
            with lock:
                outcomes.append(result)

    threads = [
        threading.Thread(target=spend, args=(ledger, f"w{k}-{n}"))
        for k, ledger in enumerate((first, second))
        for n in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == 150 and outcomes.count("refused") == 450
    assert first.balance("alice") == Balance(0, 300, 0, 300)
    assert second.balance("bob").posted == 300
    total = sum(first.balance(a).posted for a in ("world", "alice", "bob"))
    assert total == 0
    assert first.head().size == 3 + 1 + 150  # accounts, funding, the transfers that passed
    indexes = sorted(t.log_index for t in first.history("bob", limit=1000))
    assert indexes == list(range(4, 154))
    _verify(second)


def test_a_writer_waits_for_another_process_lock(pg_url: str) -> None:
    with open_ledger(pg_url) as ledger:
        _setup(ledger, alice=10)
        with psycopg.connect(pg_url) as other:  # another process, mid-transaction
            other.execute("SELECT * FROM log_head WHERE id = 1 FOR UPDATE")
            done = threading.Event()

            def pay() -> None:
                ledger.submit(transfer("t", "alice", "bob", USD(1)))
                done.set()

            writer = threading.Thread(target=pay)
            writer.start()
            assert not done.wait(0.3)
            other.rollback()
            writer.join(10)
        assert done.is_set()
        assert ledger.balance("bob").posted == 1


# ----- reads ---------------------------------------------------------------------------


def test_a_reader_sees_one_snapshot(ledgers: Callable[[], Ledger]) -> None:
    ledger = ledgers()
    _setup(ledger, alice=10)
    with ledger.reader() as reader:
        before = reader.get_account("alice")
        ledger.submit(transfer("t", "alice", "bob", USD(4)))
        assert reader.get_account("alice") == before
        assert reader.get_transfer("t") is None
        assert reader.head().size == 4
    assert ledger.balance("alice").available == 6


def test_long_scans_page_through_the_snapshot(
    ledgers: Callable[[], Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "SCAN_ROWS", 3)
    ledger = ledgers()
    names = [f"acct{n:02}" for n in range(10)]
    for name in names:
        ledger.open_account(NewAccount(name, USDC, AccountKind.AGENT))
    with ledger.reader() as reader:
        assert [a.id for a in reader.all_accounts()] == names
        assert [index for index, _ in reader.entries(2, 9)] == list(range(2, 9))
        assert len(reader.leaf_hashes(0, 10)) == 10
        with pytest.raises(StoreCorrupt):
            reader.leaf_hashes(0, 11)


def test_checkpoints_are_kept_under_the_write_lock(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    first, second = (
        StoredCheckpoint(5, b"r" * 32, 7, b"s" * 65),
        StoredCheckpoint(9, b"q" * 32, 9, b"z" * 65),
    )
    try:
        store.initialize({"ledger_id": "checkpoints0"})
        transaction = store.begin_write()
        assert transaction.latest_checkpoint() is None
        transaction.add_checkpoint(first)
        transaction.commit()
        transaction = store.begin_write()
        assert transaction.latest_checkpoint() == first
        transaction.add_checkpoint(second)
        transaction.rollback()
        with store.read() as reader:
            assert reader.checkpoints() == [first]
        transaction = store.begin_write()
        transaction.add_checkpoint(second)
        transaction.commit()
        with store.read() as reader:
            assert reader.checkpoints() == [first, second]
    finally:
        store.close()


# ----- big batches and lost connections -----------------------------------------------


@pytest.mark.parametrize("copy_min_rows", [1, 10_000])
def test_batches_by_copy_and_by_arrays_agree(
    ledgers: Callable[[], Ledger], monkeypatch: pytest.MonkeyPatch, copy_min_rows: int
) -> None:
    monkeypatch.setattr(postgres, "COPY_MIN_ROWS", copy_min_rows)
    ledger = ledgers()
    _setup(ledger, alice=1000)
    ledger.open_account(
        NewAccount("carol", USDC, AccountKind.AGENT, owner="0xC", metadata={"a": 1})
    )
    ledger.submit(hold("h1", "alice", "bob", USD(100), timeout_s=60))
    ledger.open_account(NewAccount("mint", USDC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount("vault", USDC, AccountKind.PROVIDER))
    results = ledger.submit_many(
        [transfer("huge", "mint", "vault", USD(MAX_ATOMIC))]
        + [transfer(f"m{n}", "alice", "carol", USD(n + 1)) for n in range(40)]
        + [post("p1", "h1", USD(60)), hold("h2", "alice", "bob", USD(5)), void("v2", "h2")]
    )
    assert not any(isinstance(result, Exception) for result in results)
    spent = sum(range(1, 41))
    assert ledger.balance("carol") == Balance(0, 0, 0, spent)
    assert ledger.balance("alice") == Balance(0, spent + 60, 0, 1000)
    assert ledger.hold_status("h1").state is HoldState.POSTED
    assert ledger.hold_status("h2").state is HoldState.VOIDED
    assert ledger.account("carol").metadata == {"a": 1}
    assert ledger.account("carol").owner == "0xC"
    assert ledger.balance("vault").posted == MAX_ATOMIC
    assert ledger.transfer("huge").amount.atomic == MAX_ATOMIC
    _verify(ledger)


def test_the_store_reconnects_after_the_server_drops_it(pg_url: str) -> None:
    with open_ledger(pg_url) as ledger:
        _setup(ledger, alice=10)
        assert ledger.balance("alice").available == 10
        database = pg_url.rsplit("/", 1)[1]
        killed = _sql(
            pg_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
        assert len(killed) >= 2  # the writer and a reader
        time.sleep(0.1)
        ledger.submit(transfer("t", "alice", "bob", USD(3)))
        assert ledger.balance("alice").available == 7


@pytest.mark.parametrize("copy_min_rows", [1, 10_000])
def test_a_failed_write_applies_nothing_and_the_store_carries_on(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, copy_min_rows: int
) -> None:
    monkeypatch.setattr(postgres, "COPY_MIN_ROWS", copy_min_rows)
    with open_ledger(pg_url) as ledger:
        _setup(ledger, alice=10)
        size = ledger.head().size
        # Someone writes into the log behind the ledger's back: the next batch collides.
        _sql(pg_url, "INSERT INTO log (idx, entry, leaf_hash) VALUES (%s, 'x', 'y')", (size,))
        with pytest.raises(LedgerUnavailable, match="duplicate key"):
            ledger.submit(transfer("t", "alice", "bob", USD(4)))
        assert ledger.balance("alice").available == 10
        assert ledger.head().size == size
        _sql(pg_url, "DELETE FROM log WHERE idx = %s", (size,))
        ledger.submit(transfer("t", "alice", "bob", USD(4)))
        assert ledger.balance("alice").available == 6


def test_holds_made_by_another_process_expire_here(pg_url: str, clock: Clock) -> None:
    with open_ledger(pg_url, clock=clock) as one, open_ledger(pg_url, clock=clock) as two:
        _setup(one, alice=100)
        one.submit(hold("h1", "alice", "bob", USD(100), timeout_s=5))
        with pytest.raises(ExceedsCredits):
            two.submit(transfer("t1", "alice", "bob", USD(1)))
        clock.advance(6)
        two.submit(transfer("t1", "alice", "bob", USD(100)))  # the hold expires first
        assert one.hold_status("h1").state is HoldState.EXPIRED


def test_more_holds_due_than_read_with_the_lock(pg_url: str, clock: Clock) -> None:
    count = postgres.EXPIRY_PREFETCH + 4
    with open_ledger(pg_url, clock=clock) as ledger:
        _setup(ledger, alice=1000)
        for n in range(count):
            ledger.submit(hold(f"soon{n}", "alice", "bob", USD(1), timeout_s=1))
            ledger.submit(hold(f"late{n}", "alice", "bob", USD(1), timeout_s=100))
        clock.advance(2)
        ledger.expire_due()
        assert all(ledger.hold_status(f"soon{n}").state is HoldState.EXPIRED for n in range(count))
        assert all(ledger.hold_status(f"late{n}").state is HoldState.PENDING for n in range(count))
        assert ledger.balance("alice").debits_pending == count
        clock.advance(100)
        ledger.expire_due()
        assert ledger.balance("alice") == Balance(0, 0, 0, 1000)
        _verify(ledger)
