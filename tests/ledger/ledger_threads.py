"""Helpers for the ledger's concurrency tests: threads released together, submissions
whose refusals are results."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from paywire.ledger import Ledger, LedgerError, NewTransfer, Transfer

T = TypeVar("T")


def run_threads(count: int, work: Callable[[int], T]) -> list[T]:
    """Run `work(i)` for i in range(count) on `count` threads released together."""
    start = threading.Barrier(count)

    def task(i: int) -> T:
        start.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(task, range(count)))


def attempt(ledger: Ledger, request: NewTransfer) -> Transfer | LedgerError:
    """Submit `request`; a refusal is returned, not raised."""
    try:
        return ledger.submit(request)
    except LedgerError as error:
        return error
