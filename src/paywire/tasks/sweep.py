"""Sweeping: settling what is due without anyone asking.

Two things fall due by time alone: an acceptance whose dispute window has ended is paid out
(`TaskBook.release`), and a task whose review window ended with no decision is settled,
expenses reimbursed and the rest refunded (`TaskBook.expire`). Either may be asked for by
anyone; the operator's service runs `sweep` every `SWEEP_INTERVAL_S` so that nobody has
to. A sweep pages through the escrow accounts whose hold is still pending (those with
pending credits: a settled task's escrow has none), so its cost follows the open tasks,
not the ledger's history.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from paywire.errors import PaywireError
from paywire.ledger import AccountKind
from paywire.tasks.model import TaskState

if TYPE_CHECKING:
    from paywire.tasks.book import TaskBook

log = logging.getLogger("paywire.tasks")

SWEEP_INTERVAL_S = 30.0
"""How often the operator's service sweeps (a release is at most this late)."""

MAX_SWEPT_ACCOUNTS = 100_000
"""Escrow accounts one sweep reads at most (the rest wait for the next)."""

_PAGE_ROWS = 500


@dataclass
class SweepReport:
    """What one sweep settled, and what it could not (task id -> why)."""

    released: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    open_tasks: int = 0


def sweep(book: TaskBook) -> SweepReport:
    """Release every acceptance past its dispute window and expire every task past its
    review window; a task that fails is named in the report and tried again next time."""
    report = SweepReport()
    ledger = book.ledger
    after: str | None = None
    read = 0
    while read < MAX_SWEPT_ACCOUNTS:
        page = ledger.accounts(kind=AccountKind.ESCROW, after=after, limit=_PAGE_ROWS)
        if not page:
            break
        after, read = page[-1].id, read + len(page)
        for account in page:
            task_id = account.metadata.get("task")
            is_escrow = isinstance(task_id, str) and account.id == f"task:{task_id}:escrow"
            if not is_escrow or account.balance.credits_pending == 0:
                continue  # a record account, or a settled task
            assert isinstance(task_id, str)
            report.open_tasks += 1
            _settle_if_due(book, task_id, report)
    return report


def _settle_if_due(book: TaskBook, task_id: str, report: SweepReport) -> None:
    now = book.ledger.clock()
    try:
        task = book.task(task_id)
        if task.state is TaskState.RELEASING and task.accepting is not None:
            if now >= int(str(task.accepting.get("release_at"))):
                book.release(task_id)
                report.released.append(task_id)
        elif (
            task.state
            in (
                TaskState.OPEN,
                TaskState.TAKEN,
                TaskState.DELIVERED,
                TaskState.DISPUTED,
            )
            and now > task.review_end_at
        ):
            book.expire(task_id)
            report.expired.append(task_id)
    except PaywireError as error:  # e.g. a payee's wallet gone: named, tried again later
        report.failed[task_id] = str(error)


def run_sweeper(
    book: TaskBook, stop: threading.Event, interval_s: float = SWEEP_INTERVAL_S
) -> None:
    """Sweep every `interval_s` until `stop` is set (run it in a thread)."""
    while not stop.is_set():
        try:
            done = sweep(book)
            if done.released or done.expired or done.failed:
                log.info(
                    "task sweep: released %d, expired %d, failed %d",
                    len(done.released),
                    len(done.expired),
                    len(done.failed),
                )
        except Exception:  # keep sweeping: a flaky store must not end releases
            log.exception("task sweep failed; retrying")
        stop.wait(interval_s)
