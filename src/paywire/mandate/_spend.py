"""`MemorySpendTracker`: what an agent client has spent under its mandates, in memory.

It answers `SpentView` for `check_payment` and records payments, charging every mandate
of the chain. The client uses it to fail fast, before signing; the facilitator's
ledger-backed tracker is what enforces (a modified client can lie to itself, not to it).
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

from paywire.mandate._chain import CLOCK_SKEW_S, MandateChain
from paywire.mandate._check import Payment, check_payment
from paywire.mandate._errors import MandateAssetNotAllowed

MAX_TRACKED_PAYMENTS = 100_000
"""Payments kept with their times per (mandate, limit); older ones are folded into one sum.

Only windows need times, and only those within two of the longest window of the newest
payment; past this count the oldest are folded too (answers stay on the safe side)."""


@dataclass(slots=True)
class _LimitSpend:
    """Spending under one limit of one mandate: a total, and the recent payments' times
    with running sums, so the amount in a span of time is two lookups."""

    total: int = 0
    times: list[int] = field(default_factory=list)
    sums: list[int] = field(default_factory=list)  # sums[i]: everything up to times[i]
    folded: int = 0  # the amount of payments no longer kept with their time
    horizon: int | None = None  # the latest time of a folded payment

    def prefix(self, index: int) -> int:
        """The amount of the first `index` kept payments, plus everything folded."""
        return self.sums[index - 1] if index else self.folded

    def add(self, at_s: int, amount: int, keep_s: int) -> None:
        self.total += amount
        if keep_s == 0:  # no windows: only the total matters
            self.folded += amount
            self.horizon = at_s if self.horizon is None else max(self.horizon, at_s)
            return
        position = bisect.bisect_right(self.times, at_s)
        self.times.insert(position, at_s)
        self.sums.insert(position, self.prefix(position) + amount)
        for later in range(position + 1, len(self.sums)):  # only for payments dated back
            self.sums[later] += amount
        oldest_needed = self.times[-1] - keep_s
        drop = bisect.bisect_right(self.times, oldest_needed)
        drop = max(drop, len(self.times) - MAX_TRACKED_PAYMENTS)
        if drop > 0:
            self.folded = self.sums[drop - 1]
            latest = self.times[drop - 1]  # a payment dated back may be older than the last
            self.horizon = latest if self.horizon is None else max(self.horizon, latest)
            del self.times[:drop], self.sums[:drop]

    def between(self, after_s: int, until_s: int) -> int:
        if until_s <= after_s:
            return 0
        low = bisect.bisect_right(self.times, after_s)
        high = bisect.bisect_right(self.times, until_s)
        amount = self.prefix(high) - self.prefix(low)
        if self.horizon is not None and after_s < self.horizon:
            # The span reaches back to folded payments whose times are gone: count them
            # all (more than the truth, never less, so no window can overflow).
            amount += self.folded
        return amount


class MemorySpendTracker:
    """Spending per (mandate, asset limit), in memory; a `SpentView`. Thread-safe.

    `record` charges a payment to every mandate of its chain; `charge` checks and records
    in one step under the tracker's lock, so concurrent payments cannot both pass a limit
    only one of them fits.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spends: dict[tuple[str, str, str], _LimitSpend] = {}

    def spent_total(self, mandate_id: str, network: str, asset: str) -> int:
        with self._lock:
            spend = self._spends.get((mandate_id, network, asset))
            return 0 if spend is None else spend.total

    def spent_between(
        self, mandate_id: str, network: str, asset: str, after_s: int, until_s: int
    ) -> int:
        with self._lock:
            spend = self._spends.get((mandate_id, network, asset))
            return 0 if spend is None else spend.between(after_s, until_s)

    def record(self, chain: MandateChain, payment: Payment) -> None:
        """Charge `payment` to the limit governing it in every mandate of `chain`.

        Raises `MandateAssetNotAllowed` (and charges nothing) if some mandate has no limit
        for the payment's asset and network. Other limits are not checked: see `charge`.
        """
        with self._lock:
            self._record(chain, payment)

    def charge(self, chain: MandateChain, payment: Payment, *, skew_s: int = CLOCK_SKEW_S) -> None:
        """`check_payment` then `record`, atomically: raises the check's error and
        records nothing if the payment does not fit."""
        with self._lock:
            check_payment(chain, payment, _Unlocked(self), skew_s=skew_s)
            self._record(chain, payment)

    def _record(self, chain: MandateChain, payment: Payment) -> None:
        charges = []
        for mandate in chain:
            limit = mandate.limit_for(payment.network, payment.asset)
            if limit is None:
                raise MandateAssetNotAllowed(
                    f"has no limit for {payment.asset} on {payment.network}: a payment it "
                    "does not allow cannot be charged to it",
                    mandate_id=mandate.id,
                    limit="limits",
                    network=payment.network,
                    asset=payment.asset,
                )
            longest = max((window.window_s for window in limit.windows), default=0)
            charges.append(((mandate.id, limit.network, limit.asset), 2 * longest))
        for key, keep_s in charges:
            spend = self._spends.get(key)
            if spend is None:
                spend = self._spends[key] = _LimitSpend()
            spend.add(payment.at_s, payment.amount_atomic, keep_s)


class _Unlocked:
    """The tracker's view for use while its lock is held (the lock is not reentrant)."""

    def __init__(self, tracker: MemorySpendTracker) -> None:
        self._spends = tracker._spends

    def spent_total(self, mandate_id: str, network: str, asset: str) -> int:
        spend = self._spends.get((mandate_id, network, asset))
        return 0 if spend is None else spend.total

    def spent_between(
        self, mandate_id: str, network: str, asset: str, after_s: int, until_s: int
    ) -> int:
        spend = self._spends.get((mandate_id, network, asset))
        return 0 if spend is None else spend.between(after_s, until_s)
