"""Open a ledger from a URL.

``sqlite:///books.db`` (relative), ``sqlite:////var/lib/paywire/books.db`` (absolute, as in
SQLAlchemy), a plain path, or ``postgresql://user@host/db``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from paywire.ledger.errors import InvalidRequest
from paywire.ledger.ledger import Ledger
from paywire.ledger.store import Store

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def open_store(url: str) -> Store:
    """The store a URL names (PostgreSQL needs the `paywire[postgres]` extra)."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidRequest("a ledger URL is needed, e.g. sqlite:///ledger.db")
    if url.startswith(POSTGRES_PREFIXES):
        try:
            from paywire.ledger.postgres import PostgresStore
        except ImportError as error:
            raise InvalidRequest(
                f"PostgreSQL support needs the postgres extra (pip install 'paywire[postgres]'): "
                f"{error}"
            ) from None
        return PostgresStore(url)
    if "://" in url and not url.startswith(SQLITE_PREFIX):
        raise InvalidRequest(
            f"unknown ledger URL scheme in {url.split('://', 1)[0]!r}; "
            "use sqlite:///path or postgresql://..."
        )
    from paywire.ledger.sqlite import SQLiteStore

    path = url.removeprefix(SQLITE_PREFIX) if url.startswith(SQLITE_PREFIX) else url
    return SQLiteStore(Path(path).expanduser())


def open_ledger(url: str, *, clock: Callable[[], int] = time.time_ns) -> Ledger:
    """Open (creating if needed) the ledger at `url`."""
    return Ledger(open_store(url), clock=clock)
