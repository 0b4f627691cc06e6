"""Ledger write throughput: paywire on SQLite and PostgreSQL beside raw SQLite inserts.

The baseline writes the very rows a paywire transfer writes (its log entry and leaf hash,
its transfer index row, the two balance updates, the log head) with plain `executemany`,
1,000 per transaction, in the same schema, with the same pragmas, and none of the checks.

A second table prices spend limits: group commits of transfers that each count against 0,
3 or 9 limits (one mandate's total, hour and day; or a chain of three such mandates), as
ratios to 0 (``python -m bench.bench_ledger limits`` runs only that table).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench._harness import DEFAULT_SECONDS, Rate, report
from paywire.ledger import (
    AccountKind,
    Ledger,
    NewAccount,
    NewLimit,
    NewTransfer,
    new_id,
    transfer,
)
from paywire.ledger.sqlite import SQLiteStore
from paywire.money import USDC

ACCOUNTS = 100
BATCH = 1000
THREADS = 64
SYNCHRONOUS = os.environ.get("PAYWIRE_BENCH_SQLITE_SYNC", "FULL")


def _requests(count: int) -> list[NewTransfer]:
    return [
        transfer(new_id(), "source", f"agent{n % ACCOUNTS}", USDC.atomic(1 + n % 997))
        for n in range(count)
    ]


def _setup(ledger: Ledger) -> None:
    ledger.open_account(NewAccount("source", USDC, AccountKind.EXTERNAL))
    for n in range(ACCOUNTS):
        ledger.open_account(NewAccount(f"agent{n}", USDC, AccountKind.AGENT))


def _budget() -> float:
    return DEFAULT_SECONDS


def _raw_rows(first: int) -> list[tuple[int, str, bytes, bytes]]:
    """One batch of the rows a transfer writes: index, id, entry bytes, leaf hash."""
    rows = []
    for index in range(first, first + BATCH):
        tid = new_id()
        entry = (
            f'{{"amount":"{1 + index % 997}","asset":"USDC","code":1,'
            f'"credit":"agent{index % ACCOUNTS}","debit":"source","id":"{tid}",'
            f'"index":{index},"kind":"single","timestamp":{time.time_ns()},"type":"transfer"}}'
        ).encode()
        rows.append((index, tid, entry, hashlib.sha256(b"\0" + entry).digest()))
    return rows


def raw_sqlite(folder: Path, *, prebuilt: bool) -> Rate:
    """The same rows with plain executemany. `prebuilt`: the rows are made before the clock
    starts (SQLite alone); otherwise each batch's rows are made in the loop, as the
    simplest application writing these rows would."""
    path = folder / f"raw-{prebuilt}.db"
    SQLiteStore(path).initialize({"ledger_id": "raw"})
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")
    db.executemany(
        "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (f"agent{n}", "USDC", 6, "agent", None, 1, "{}", "0", "0", "0", "0", n, n, bytes(32))
            for n in range(ACCOUNTS)
        ],
    )
    firsts = range(0, int(80_000 * _budget()), BATCH)
    ready = {first: _raw_rows(first) for first in firsts} if prebuilt else {}
    done = 0
    start = time.perf_counter()
    deadline = start + _budget()
    for first in firsts:
        if time.perf_counter() >= deadline:
            break
        rows = ready.pop(first) if prebuilt else _raw_rows(first)
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO log (idx, entry, leaf_hash) VALUES (?, ?, ?)",
            [(index, entry, leaf) for index, _, entry, leaf in rows],
        )
        db.executemany(
            "INSERT INTO transfers (id, kind, debit, credit, amount, asset, code, timestamp, "
            "log_index, fingerprint, pending_id, expires_at, hold_state, resolved_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    tid,
                    "single",
                    "source",
                    f"agent{index % ACCOUNTS}",
                    str(1 + index % 997),
                    "USDC",
                    1,
                    index,
                    index,
                    leaf,
                    None,
                    None,
                    None,
                    None,
                )
                for index, tid, _, leaf in rows
            ],
        )
        db.executemany(
            "UPDATE accounts SET debits_pending = ?, debits_posted = ?, credits_pending = ?, "
            "credits_posted = ? WHERE id = ?",
            [("0", str(first), "0", str(first), f"agent{n}") for n in range(ACCOUNTS)],
        )
        db.execute(
            "UPDATE log_head SET size = ?, frontier = ?, last_timestamp = ? WHERE id = 1",
            (first + BATCH, bytes(64), time.time_ns()),
        )
        db.execute("COMMIT")
        done += BATCH
    elapsed = time.perf_counter() - start
    db.close()
    how = "made beforehand" if prebuilt else "made in the loop"
    return Rate(f"raw SQLite, the same rows {how}, 1,000 a transaction", done, elapsed)


def single(name: str, ledger: Ledger) -> Rate:
    pool = iter(_requests(200_000))
    done = 0
    start = time.perf_counter()
    deadline = start + _budget()
    while time.perf_counter() < deadline:
        ledger.submit(next(pool))
        done += 1
    return Rate(
        f"{name}: one submitter, one transfer per commit", done, time.perf_counter() - start
    )


def batched(name: str, ledger: Ledger) -> Rate:
    pool = _requests(int(60_000 * _budget()))
    done = 0
    start = time.perf_counter()
    deadline = start + _budget()
    for first in range(0, len(pool), BATCH):
        if time.perf_counter() >= deadline:
            break
        results = ledger.submit_many(pool[first : first + BATCH])
        assert not any(isinstance(result, Exception) for result in results)
        done += BATCH
    return Rate(f"{name}: group commit, submit_many of {BATCH}", done, time.perf_counter() - start)


def threaded(name: str, ledger: Ledger) -> Rate:
    pool = _requests(int(25_000 * _budget()))
    cursor = itertools.count()
    stop = threading.Event()
    counts = [0] * THREADS

    def work(slot: int) -> None:
        while not stop.is_set():
            index = next(cursor)
            if index >= len(pool):
                return
            ledger.submit(pool[index])
            counts[slot] += 1

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(THREADS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(_budget())
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return Rate(f"{name}: group commit, {THREADS} threads submitting", sum(counts), elapsed)


LIMIT_COUNTS = (0, 3, 9)
"""Limits per transfer in the limits table: none; one mandate (total, hour, day); three."""


def _open_limits(ledger: Ledger, count: int) -> tuple[str, ...]:
    """`count` limits, a third each for all time, an hour and a day, none ever reached."""
    ids = []
    for n in range(count):
        window = (None, 3600, 86400)[n % 3]
        ledger.open_limit(NewLimit(f"limit{n}", USDC, 10**30, window))
        ids.append(f"limit{n}")
    return tuple(ids)


def limited(folder: Path, count: int) -> Rate:
    """`batched` on SQLite, each transfer counting against `count` limits."""
    ledger = Ledger(SQLiteStore(folder / f"limits{count}.db", synchronous=SYNCHRONOUS))
    try:
        _setup(ledger)
        limits = _open_limits(ledger, count)
        pool = [
            transfer(
                new_id(), "source", f"agent{n % ACCOUNTS}", USDC.atomic(1 + n % 997), limits=limits
            )
            for n in range(int(60_000 * _budget()))
        ]
        done = 0
        start = time.perf_counter()
        deadline = start + _budget()
        for first in range(0, len(pool), BATCH):
            if time.perf_counter() >= deadline:
                break
            results = ledger.submit_many(pool[first : first + BATCH])
            assert not any(isinstance(result, Exception) for result in results)
            done += BATCH
        elapsed = time.perf_counter() - start
        assert ledger.log.verify().ok
    finally:
        ledger.close()
    return Rate(f"SQLite group commit of {BATCH}, {count} limits per transfer", done, elapsed)


def main_limits() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rates = [limited(Path(tmp), count) for count in LIMIT_COUNTS]
    report(
        "Ledger transfers per second with spend limits",
        rates,
        baseline=rates[0].name,
        goal="9 limits per transfer >= 0.5x no limits",
    )


def run_store(name: str, make: Callable[[], Ledger]) -> list[Rate]:
    rates = []
    for measure in (single, batched, threaded):
        ledger = make()
        try:
            _setup(ledger)
            rates.append(measure(name, ledger))
        finally:
            ledger.close()
    return rates


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rates = [raw_sqlite(folder, prebuilt=True), raw_sqlite(folder, prebuilt=False)]
        files = (folder / f"ledger{n}.db" for n in itertools.count())
        rates += run_store(
            f"paywire SQLite ({SYNCHRONOUS})",
            lambda: Ledger(SQLiteStore(next(files), synchronous=SYNCHRONOUS)),
        )
        rates += _postgres()
    report(
        "Ledger transfers per second",
        rates,
        baseline=rates[0].name,
        goal="group commit on SQLite >= 0.80x raw; PostgreSQL >= 10,000/s",
    )
    main_limits()


def _postgres() -> list[Rate]:
    from paywire._dev.postgres import PostgresUnavailable, binaries, postgres_server

    if binaries() is None:
        print("PostgreSQL: skipped (initdb/pg_ctl not on PATH)")
        return []
    from paywire.ledger import open_ledger

    try:
        with postgres_server(durable=True) as server:
            return run_store("paywire PostgreSQL", lambda: open_ledger(server.new_database()))
    except PostgresUnavailable as error:
        print(f"PostgreSQL: skipped ({error})")
        return []


if __name__ == "__main__":
    main_limits() if "limits" in sys.argv[1:] else main()
