"""Spend limits: caps on what transfers that name them may move, in all or per rolling window.

A limit has an asset and a cap in atomic units, and either no window (a total budget) or a
rolling window of `window_s` seconds. A transfer lists the limits it counts against
(`NewTransfer.limits`); the ledger refuses it, in the same write transaction, if it would
take any of them past its cap (`LimitExceeded`). A hold counts as spent when it is made;
a void or expiry gives back what was not posted (see `engine_limits`).

Rolling windows are kept in buckets: a window of `window_s` seconds is cut into buckets of
`bucket_seconds(window_s)` seconds, and the usage in the window ending at time t is the sum
of the buckets that overlap [t - window_s, t]. That is a superset of the true window, so
the check never lets more than the cap through in any true window; it is conservative by
less than one bucket (at most 1/60 of the window). Time is the ledger's (the transfer's
timestamp), so clients' clocks do not matter.
"""

from __future__ import annotations

from dataclasses import dataclass

from paywire.ledger.errors import InvalidRequest
from paywire.ledger.model._checks import Metadata, check_id, check_metadata
from paywire.money import MAX_ATOMIC, Asset

MAX_TRANSFER_LIMITS = 64
"""Limits one transfer may count against. A payment under a mandate chain counts against
every mandate of the chain: at the mandate module's greatest depth (8), each mandate with a
total and up to 6 windows, that is 56. Each limit costs a row read and a row write per
group commit, and at most `WINDOW_SLOTS` usage rows."""

WINDOW_BUCKETS = 60
"""Buckets a rolling window is cut into. The check of a window sums at most
`WINDOW_BUCKETS + 1` buckets and may count up to one bucket (1/60 of the window: a minute
of an hour, 24 minutes of a day) of spending older than the window, never less than the
window holds. More buckets would be tighter and cost more rows per limit."""

WINDOW_SLOTS = WINDOW_BUCKETS + 1
"""Usage rows kept per windowed limit: bucket b lives in slot b % WINDOW_SLOTS. A window
overlaps at most WINDOW_BUCKETS + 1 consecutive buckets, so the buckets it needs never
share a slot; a bucket is overwritten only once it can no longer overlap any window."""

MAX_WINDOW_S = 366 * 24 * 3600
"""A window longer than a year is a total budget (and a mandate lives at most a year)."""

NS_PER_S = 1_000_000_000


def bucket_seconds(window_s: int) -> int:
    """The bucket length of a window: ceil(window_s / WINDOW_BUCKETS), at least 1 second.

    Rounding up keeps every window within WINDOW_BUCKETS whole buckets (rounding down
    would cut a 119-second window into 119 buckets)."""
    return max(1, -(-window_s // WINDOW_BUCKETS))


def window_span(window_s: int, at: int) -> tuple[int, int]:
    """The buckets [first, last] that overlap the window [at - window_s, at] (ns)."""
    bucket_ns = bucket_seconds(window_s) * NS_PER_S
    return (at - window_s * NS_PER_S) // bucket_ns, at // bucket_ns


def _check_window(window_s: object) -> int | None:
    if window_s is None:
        return None
    if not isinstance(window_s, int) or isinstance(window_s, bool):
        raise InvalidRequest(f"window_s must be whole seconds or None, not {window_s!r}")
    if not 1 <= window_s <= MAX_WINDOW_S:
        raise InvalidRequest(
            f"window_s must be from 1 to {MAX_WINDOW_S} seconds (None: a total for all time), "
            f"not {window_s}"
        )
    return window_s


@dataclass(frozen=True, slots=True)
class NewLimit:
    """A request to open a spend limit. Opening is idempotent on `id`: the same fields
    return the existing limit, other fields are an `IdempotencyConflict`."""

    id: str
    asset: Asset
    cap_atomic: int
    window_s: int | None = None
    """None: the cap is for all time (a total budget); else a rolling window in seconds."""
    metadata: Metadata | None = None

    def __post_init__(self) -> None:
        check_id(self.id, "limit id")
        if not isinstance(self.asset, Asset):
            raise InvalidRequest("asset must be an Asset")
        cap = self.cap_atomic
        if not isinstance(cap, int) or isinstance(cap, bool) or not 0 <= cap <= MAX_ATOMIC:
            raise InvalidRequest(
                f"cap_atomic must be an integer from 0 to 2^128 - 1 atomic units, not {cap!r}"
            )
        object.__setattr__(self, "window_s", _check_window(self.window_s))
        object.__setattr__(self, "metadata", check_metadata(self.metadata))


def check_limit_ids(value: object) -> tuple[str, ...]:
    """Validate the limits a transfer names: distinct ids, at most MAX_TRANSFER_LIMITS."""
    if isinstance(value, str) or not isinstance(value, tuple | list):
        raise InvalidRequest("limits must be a tuple of limit ids")
    if len(value) > MAX_TRANSFER_LIMITS:
        raise InvalidRequest(
            f"a transfer counts against at most {MAX_TRANSFER_LIMITS} limits, not {len(value)}"
        )
    ids = tuple(check_id(item, "limit id") for item in value)
    if len(set(ids)) != len(ids):
        raise InvalidRequest("a transfer names each limit at most once")
    return ids


@dataclass(frozen=True, slots=True)
class LimitStatus:
    """A limit as of `as_of` (ledger time, ns): what its window (or all time) has used."""

    id: str
    asset: Asset
    cap_atomic: int
    window_s: int | None
    used_atomic: int
    """Charged to the window ending at `as_of` (by whole buckets: see the module), or in
    all, for a total; holds count from when they were made until voided or expired."""
    remaining_atomic: int
    """What a transfer may still count against this limit now (0 once closed)."""
    total_atomic: int
    """Everything charged and not given back, since the limit was opened."""
    closed: bool
    metadata: Metadata
    timestamp: int
    log_index: int
    as_of: int
