"""Spend limits on PostgreSQL: a batch that names limits costs the round trips one that
names none does (the limits are read in the accounts' round trip, written in the batch's
one statement)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from paywire.ledger import AccountKind, Ledger, NewAccount, NewLimit, open_ledger, transfer
from paywire.ledger.postgres import PostgresStore
from paywire.money import USDC

_DIRECTION = re.compile(r"^[^\t]*\t([FB])\t")


def round_trips(trace: Path) -> int:
    """Times the client waited for the server: each switch from sending to receiving."""
    lines = trace.read_text().splitlines()
    directions = [m.group(1) for line in lines if (m := _DIRECTION.match(line))]
    return sum(1 for pair in itertools.pairwise(directions) if pair == ("F", "B"))


def traced_batch(ledger: Ledger, trace: Path, tag: str, limits: tuple[str, ...]) -> int:
    store = ledger.store
    assert isinstance(store, PostgresStore)
    writer = store._writer
    assert writer is not None
    with trace.open("w") as out:
        writer.pgconn.trace(out.fileno())
        try:
            results = ledger.submit_many(
                [
                    transfer(f"{tag}-{n}", "payer", "payee", USDC.atomic(1), limits=limits)
                    for n in range(50)
                ]
            )
        finally:
            writer.pgconn.untrace()
    assert all(not isinstance(result, Exception) for result in results)
    return round_trips(trace)


def test_limits_cost_no_round_trip(postgres_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with open_ledger(postgres_server.new_database()) as ledger:
        ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
        ledger.open_account(NewAccount("payer", USDC, AccountKind.AGENT))
        ledger.open_account(NewAccount("payee", USDC, AccountKind.PROVIDER))
        ledger.submit(transfer("funding", "world", "payer", USDC.atomic(10**9)))
        limits = ("total", "hourly", "daily")
        ledger.open_limit(NewLimit("total", USDC, 10**9))
        ledger.open_limit(NewLimit("hourly", USDC, 10**9, 3600))
        ledger.open_limit(NewLimit("daily", USDC, 10**9, 86400))
        trace = tmp_path / "trace.log"
        for n in range(6):  # until psycopg has prepared its statements
            traced_batch(ledger, trace, f"warm{n}", limits if n % 2 else ())
        plain = [traced_batch(ledger, trace, f"plain{n}", ()) for n in range(4)]
        limited = [traced_batch(ledger, trace, f"limited{n}", limits) for n in range(4)]
        assert min(plain) == min(limited) == 4, (plain, limited)
        assert max(limited) <= max(plain), (plain, limited)
        assert ledger.limit("daily").used_atomic == 50 * 4 + 50 * 3
        assert ledger.log.verify().ok
