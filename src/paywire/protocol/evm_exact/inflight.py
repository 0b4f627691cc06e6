"""Payments in flight: verified or being settled by this facilitator, whose money the
chain's state, as the view last read it, does not show moved yet.

Each is a *hold* on the payer's balance, keyed by (payer, nonce):

- ``verified``: verify passed; the provider is expected to settle it.
- ``sending``: a settlement transaction is being sent or awaited (or its receipt was not
  seen in time).
- ``mined``: settled in block N; the hold lasts until the view reads block N or later,
  whose balance shows the money gone.

A hold ends when its payment settles and the view catches up, when settlement is refused
(nothing moved), or when the authorization expires (``validBefore`` plus the clock-skew
allowance: past it no transaction can use the authorization, so no money can move).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

VERIFIED, SENDING, MINED = "verified", "sending", "mined"

HoldKey = tuple[str, bytes]
"""(payer, nonce)."""


@dataclass(slots=True)
class Hold:
    """One payment in flight: `value` of `payer`'s balance, until `expires_at` (wall clock)."""

    payer: str
    nonce: bytes
    value: int
    expires_at: float
    state: str
    mined_block: int = 0


class InFlightFull(Exception):
    """No room for another hold (see `InFlight.limit`)."""


class InFlight:
    """The holds of one token. Not thread-safe: the view calls it under its lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        """Holds made by verify at most; settlement may pass it (it is not refused)."""
        self._holds: dict[HoldKey, Hold] = {}
        self._held: dict[str, int] = {}
        self._mined: dict[HoldKey, int] = {}
        self._expiry: list[tuple[float, int, HoldKey]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._holds)

    def get(self, key: HoldKey) -> Hold | None:
        return self._holds.get(key)

    def held(self, payer: str) -> int:
        """What `payer`'s holds add up to."""
        return self._held.get(payer, 0)

    def add(
        self, payer: str, nonce: bytes, value: int, expires_at: float, state: str, *, force: bool
    ) -> Hold:
        """A new hold (replacing none: the caller checked); `InFlightFull` past `limit`
        unless `force`."""
        key = (payer, nonce)
        assert key not in self._holds
        if len(self._holds) >= self.limit and not force:
            raise InFlightFull(f"{self.limit} payments are in flight")
        hold = Hold(payer, nonce, value, expires_at, state)
        self._holds[key] = hold
        self._held[payer] = self._held.get(payer, 0) + value
        heapq.heappush(self._expiry, (expires_at, next(self._order), key))
        if len(self._expiry) > 2 * len(self._holds) + 1024:
            self._compact()
        return hold

    def drop(self, key: HoldKey) -> Hold | None:
        """End a hold (its money is not in flight any more)."""
        hold = self._holds.pop(key, None)
        if hold is None:
            return None
        left = self._held[hold.payer] - hold.value
        if left:
            self._held[hold.payer] = left
        else:
            del self._held[hold.payer]
        self._mined.pop(key, None)
        return hold

    def mark_mined(self, key: HoldKey, block: int) -> None:
        hold = self._holds.get(key)
        if hold is not None:
            hold.state, hold.mined_block = MINED, block
            self._mined[key] = block

    def forget_mined(self, through_block: int) -> None:
        """End the holds of payments mined in blocks up to `through_block` (the view now
        reads a block that shows them)."""
        done = [key for key, block in self._mined.items() if block <= through_block]
        for key in done:
            self.drop(key)

    def expire(self, now: float) -> None:
        """End the holds whose authorization can no longer move money."""
        while self._expiry and self._expiry[0][0] <= now:
            expires_at, _, key = heapq.heappop(self._expiry)
            hold = self._holds.get(key)
            if hold is not None and hold.expires_at == expires_at:
                self.drop(key)

    def _compact(self) -> None:
        """Drop the expiry entries of holds that already ended."""
        self._expiry = [
            entry
            for entry in self._expiry
            if (hold := self._holds.get(entry[2])) is not None and hold.expires_at == entry[0]
        ]
        heapq.heapify(self._expiry)
