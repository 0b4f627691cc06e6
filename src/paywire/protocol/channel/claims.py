"""A `ChannelBook`'s claims: when to claim, and claiming in batches.

A channel is due when its first unclaimed charge is `claim_interval_s` old, when its
unclaimed amount reaches `claim_threshold_atomic`, when it is closed, and when its funds
are about to go back to the payer (`expiry_margin_s` before its expiry: that claim closes
it). Due channels are claimed together, up to the backend's batch size per call; each
claim is made on the channel's highest voucher for the total charged, and its outcome is
written to the book (durably) before anything else is claimed on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from paywire.protocol.channel.book_state import OpenChannel
from paywire.protocol.channel.ledger_wire import ClaimEntry, ClaimOutcome
from paywire.protocol.channel.store import BookUnavailable, ChannelStore
from paywire.protocol.channel.summary import Summary
from paywire.protocol.channel.wire import CHANNEL_CLOSED, CHANNEL_UNAVAILABLE, CHANNEL_UNKNOWN
from paywire.protocol.errors import PaymentProblem

if TYPE_CHECKING:
    from paywire.protocol.channel.backends import ChannelBackend

logger = logging.getLogger("paywire.channels")

FINAL_REASONS = frozenset({CHANNEL_CLOSED, CHANNEL_UNKNOWN})
"""Refusals after which nothing more can be claimed on a channel."""


class ClaimsMixin:
    """The claim half of `ChannelBook` (which sets the attributes below)."""

    backend: ChannelBackend
    store: ChannelStore
    channels: dict[str, OpenChannel]
    claim_interval_s: float
    claim_threshold_atomic: int | None
    expiry_margin_s: float
    tick_s: float
    clock: Callable[[], float]
    _timer: asyncio.Task[None] | None
    _background: set[asyncio.Task[list[ClaimOutcome]]]

    def _init_claims(self) -> None:
        self._timer = None
        self._background = set()

    async def _acquire(self, channel: OpenChannel) -> None:
        raise NotImplementedError  # ChannelBook's

    async def _channel(self, channel_id: str) -> OpenChannel:
        raise NotImplementedError  # ChannelBook's

    async def _refresh(self, channel: OpenChannel) -> None:
        raise NotImplementedError  # ChannelBook's

    async def start(self) -> None:
        """Claim what the book holds unclaimed (after a restart: what was charged before
        it), then claim on the timer."""
        await self.claim_all()
        if self._timer is None:
            self._timer = asyncio.create_task(self._tick(), name="paywire-channel-claims")

    async def aclose(self) -> None:
        """Stop the timer, claim what is charged and unclaimed, close the file. The backend
        is the caller's to close."""
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
            self._timer = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        try:
            await self.claim_all()
        finally:
            self.store.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.claim_due()
            except Exception as error:  # the timer must outlive a bad round
                logger.warning("channel claims failed: %s", error)

    def due(self) -> list[tuple[OpenChannel, bool]]:
        """The channels to claim now, each with whether the claim closes it."""
        now = self.clock()
        threshold = self.claim_threshold_atomic
        due = []
        for channel in self.channels.values():
            if channel.closed or channel.claiming:
                continue
            expires = channel.info.expires_at
            unclaimed = channel.charged - channel.claimed
            if expires is not None and now >= expires - self.expiry_margin_s:
                due.append((channel, True))
            elif unclaimed > 0 and (
                (threshold is not None and unclaimed >= threshold)
                or now - (channel.unclaimed_since or now) >= self.claim_interval_s
            ):
                due.append((channel, False))
        return due

    async def claim_due(self) -> list[ClaimOutcome]:
        """Claim every channel that is due (see the module); one outcome per claim."""
        due = []
        for channel, close in self.due():
            if close:  # about to expire, unless a top-up moved its expiry: read it again
                await self._refresh(channel)
                expires = channel.info.expires_at
                if expires is not None and self.clock() < expires - self.expiry_margin_s:
                    if channel.charged <= channel.claimed:
                        continue
                    close = False
            due.append((channel, close))
        return await self._claim(due)

    async def claim_all(self) -> list[ClaimOutcome]:
        """Claim every channel with anything charged and not claimed, due or not."""
        return await self._claim(
            [(c, False) for c in self.channels.values() if c.charged > c.claimed and not c.closed]
        )

    async def close(self, channel_id: str) -> ClaimOutcome:
        """Close a channel: wait for its request in progress, claim what it charged, end
        it (what was not claimed goes back to the payer). New vouchers are refused."""
        channel = await self._channel(channel_id.lower())
        await self._acquire(channel)
        try:
            while channel.claiming:  # a claim in flight: let it land first
                await asyncio.sleep(0.01)
            outcomes = await self._claim([(channel, True)])
        finally:
            channel.lock.release()
        if not outcomes:
            return ClaimOutcome(channel.channel_id, True, channel.claimed, closed=True)
        return outcomes[0]

    def _spawn_claim(self, channel: OpenChannel, *, close: bool) -> None:
        task = asyncio.ensure_future(self._claim([(channel, close)]))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _claim(self, items: list[tuple[OpenChannel, bool]]) -> list[ClaimOutcome]:
        chosen: list[tuple[OpenChannel, ClaimEntry, Summary]] = []
        for channel, close in items:
            if channel.claiming or channel.closed:
                continue
            if not close and channel.charged <= channel.claimed:
                continue
            channel.claiming = True
            collected = channel.summary.copy()
            entry = ClaimEntry(
                channel.channel_bytes,
                channel.voucher_max,
                channel.signature_for_claim,
                channel.charged,
                close,
                collected.to_json() if collected.charges else None,
            )
            chosen.append((channel, entry, collected))
        outcomes: list[ClaimOutcome] = []
        size = max(1, self.backend.max_claims)
        for start in range(0, len(chosen), size):
            outcomes.extend(await self._claim_batch(chosen[start : start + size]))
        return outcomes

    async def _claim_batch(
        self, batch: list[tuple[OpenChannel, ClaimEntry, Summary]]
    ) -> list[ClaimOutcome]:
        try:
            try:
                outcomes = await self.backend.claim([entry for _, entry, _ in batch])
            except Exception as error:
                logger.warning("claims could not be sent: %s", error)
                message = str(error) if isinstance(error, PaymentProblem) else type(error).__name__
                outcomes = [
                    ClaimOutcome(
                        c.channel_id, False, c.claimed, reason=CHANNEL_UNAVAILABLE, message=message
                    )
                    for c, _, _ in batch
                ]
            writes = []
            for (channel, entry, collected), outcome in zip(batch, outcomes, strict=True):
                self._settled(channel, entry, collected, outcome)
                writes.append(self.store.write(channel.row()))
            results = await asyncio.gather(*writes, return_exceptions=True)
            for result in results:
                if isinstance(result, BookUnavailable):
                    logger.error("a claim's outcome was not written: %s", result)
            return outcomes
        finally:
            for channel, _, _ in batch:
                channel.claiming = False

    def _settled(
        self, channel: OpenChannel, entry: ClaimEntry, collected: Summary, outcome: ClaimOutcome
    ) -> None:
        if outcome.ok:
            if outcome.claimed > channel.claimed:
                channel.claimed = outcome.claimed
            if channel.claimed >= entry.total:
                channel.summary.subtract(collected)
            channel.unclaimed_since = None if channel.charged <= channel.claimed else self.clock()
            if outcome.closed:
                channel.closed = True
            return
        logger.warning(
            "claim on %s refused: %s %s", channel.channel_id, outcome.reason, outcome.message
        )
        if outcome.reason in FINAL_REASONS:
            channel.closed = True
            if channel.charged > channel.claimed:
                logger.error(
                    "channel %s ended with %d atomic units charged and not claimed",
                    channel.channel_id,
                    channel.charged - channel.claimed,
                )
