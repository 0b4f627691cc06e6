"""The task index: which transfers belong to which task, for the per-task books.

paywire tags the transfers of a task with ``metadata["task"] = "<task id>"``. Each store
keeps that tag in a column of its transfers table (``transfers.task``, NULL when there is
none) with an index on ``(task, log_index)``, written by the same statement that inserts
the transfer, so `Ledger.task_transfers` lists a task's transfers in log order from the
index alone, without reading the rest of the log.

Which task a transfer belongs to is a function of the log (`task_of`, and for a post,
void or expire its hold's): the auditor's replay derives it with the same engine code
that writes it, so `paywire ledger verify` checks the index like any other derived row,
and a store that predates the index rebuilds it from its log entries (`tagged_transfers`).
"""

from __future__ import annotations

from collections.abc import Iterable

from paywire import _json
from paywire.ledger.errors import InvalidRequest
from paywire.ledger.model import JsonValue, Metadata
from paywire.ledger.store import MAX_READ_ROWS

MAX_TASK_CHARS = 80
"""The longest task id (as `paywire.tasks` allows); a longer tag is not indexed, since no
read could ask for it."""

MAX_TASK_TRANSFERS = 100_000
"""Most transfers `Ledger.all_task_transfers` returns; past it, page with `task_transfers`."""

BACKFILL_ROWS = 1000
"""Log entries read per query while a store rebuilds the index from its log."""

TASK_KEY = b'"task":'
"""How the key appears in a canonical entry (no spaces; a quote inside a string is
escaped, so this never matches string content): entries without it need no parsing."""

_MAX_AFTER = 2**63 - 1  # the stores' log indexes are signed 64-bit


def task_of(metadata: Metadata | None) -> str | None:
    """The task a transfer's metadata tags it with: a string of 1-`MAX_TASK_CHARS`
    characters under "task", else None. (A post, void or expire with none belongs to its
    hold's task; the engine and the backfill both apply that rule.)"""
    if not metadata:
        return None
    task = metadata.get("task")
    if isinstance(task, str) and 0 < len(task) <= MAX_TASK_CHARS:
        return task
    return None


def check_task_id(value: object) -> str:
    """A task id to look up: text of 1-`MAX_TASK_CHARS` characters."""
    if not isinstance(value, str):
        raise InvalidRequest(f"a task id must be text, not {type(value).__name__}")
    if not 0 < len(value) <= MAX_TASK_CHARS:
        raise InvalidRequest(
            f"a task id is 1-{MAX_TASK_CHARS} characters; this one has {len(value)}"
        )
    return value


def check_page(after: object, limit: object) -> None:
    """`after` (a log index, or None) and `limit` (1-`MAX_READ_ROWS`) of a paged read."""
    if after is not None and (
        not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= _MAX_AFTER
    ):
        raise InvalidRequest(
            f"after must be the log index of the last transfer seen (0 to 2^63-1) or None, "
            f"not {after!r}"
        )
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_READ_ROWS:
        raise InvalidRequest(
            f"limit must be a whole number from 1 to {MAX_READ_ROWS}, not {limit!r}"
        )


def tagged_transfers(rows: Iterable[tuple[int, bytes]]) -> list[tuple[str, int]]:
    """(task, log index) of each transfer entry in `rows` (log index, entry bytes) whose
    own metadata names a task: what a store's backfill writes, before the resolutions of
    tagged holds inherit their hold's task."""
    found: list[tuple[str, int]] = []
    for index, data in rows:
        if TASK_KEY not in data:
            continue
        try:
            value = _json.loads(data)
        except ValueError:
            # A corrupt entry indexes nothing: the index is derived, and `paywire ledger
            # verify` names the entry, which it could not if the store refused to open.
            continue
        if not isinstance(value, dict) or value.get("type") != "transfer":
            continue
        metadata: JsonValue = value.get("metadata")
        if isinstance(metadata, dict) and (task := task_of(metadata)) is not None:
            found.append((task, index))
    return found
