"""A connection of the PostgreSQL store: its type, its session set-up, and ending its
transaction before it is reused."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.numeric import Int8BinaryDumper, Int8Dumper

from paywire.ledger import postgres
from paywire.ledger.errors import LedgerUnavailable

Connection = psycopg.Connection[tuple[Any, ...]]

IDLE = psycopg.pq.TransactionStatus.IDLE


def _session(connection: Connection, *, writer: bool) -> None:
    """Set up a new connection; session settings only, nothing changes on the server."""
    adapters = connection.adapters
    adapters.register_dumper(int, Int8Dumper)
    adapters.register_dumper(int, Int8BinaryDumper)
    settings = [
        # Every query here has an index to follow. A prepared statement keeps the generic
        # plan made when it was prepared, and one made while a table was nearly empty
        # scans the table: a lookup of a few ids would grow linear in the table's size
        # until the next ANALYZE. Without sequential scans the plans do not depend on the
        # size the tables had then.
        "SET enable_seqscan = off",
    ]
    if writer:  # wait this long for another process's write lock
        settings.append(f"SET lock_timeout = '{postgres.LOCK_TIMEOUT_S}s'")
    connection.execute("; ".join(settings))


class _StaleConnection(LedgerUnavailable):
    """The writer's connection was found dead at BEGIN (nothing was written)."""


def _end_transaction(connection: Connection) -> bool:
    """Roll back whatever transaction is open; whether the connection is fit for reuse."""
    try:
        if connection.closed or connection.broken:
            return False
        if connection.info.transaction_status != IDLE:
            connection.execute("ROLLBACK")
    except psycopg.Error:
        return False
    return not connection.broken and connection.info.transaction_status == IDLE
