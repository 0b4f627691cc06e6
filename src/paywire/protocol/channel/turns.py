"""Whose turn it is on a channel: one request at a time, from `authorize` to `charge` or
`release`; a request waits up to `busy_timeout_s` for the one before it, and takes over
from one whose authorization ran past its lease (`lease_s`: it is charged nothing)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from paywire.protocol.channel.book_state import ChannelAuthorization, OpenChannel
from paywire.protocol.channel.wire import CHANNEL_BUSY
from paywire.protocol.errors import PaymentProblem

logger = logging.getLogger("paywire.channels")

LOCK_POLL_S = 1.0
"""How often a waiting request looks whether the one before it ran past its lease."""
LOCK_MIN_WAIT_S = 0.01


class TurnsMixin:
    """The turn half of `ChannelBook` (which sets the attributes below)."""

    channels: dict[str, OpenChannel]
    busy_timeout_s: float
    clock: Callable[[], float]

    async def _acquire(self, channel: OpenChannel) -> None:
        lock = channel.lock
        # Nobody inside and nobody waiting: acquire() returns at once, no timer needed.
        if not lock.locked() and not getattr(lock, "_waiters", None):
            await lock.acquire()
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.busy_timeout_s
        while True:
            wait = max(LOCK_MIN_WAIT_S, min(LOCK_POLL_S, deadline - loop.time()))
            try:
                await asyncio.wait_for(channel.lock.acquire(), timeout=wait)
                return
            except TimeoutError:
                holder = channel.holder
                if holder is not None and self.clock() >= holder.lease_until:
                    logger.warning(
                        "an authorization on %s ran out; its request is not charged",
                        channel.channel_id,
                    )
                    self._finish(channel, holder)
                    continue
                if loop.time() >= deadline:
                    raise PaymentProblem(
                        CHANNEL_BUSY, "another request on this channel is still running"
                    ) from None

    def _held(self, auth: ChannelAuthorization) -> OpenChannel:
        channel = self.channels.get(auth.channel_id)
        if auth.done or channel is None or channel.holder is not auth:
            raise PaymentProblem(
                CHANNEL_BUSY, "this authorization was charged, released or ran out already"
            )
        return channel

    def _finish(self, channel: OpenChannel, auth: ChannelAuthorization) -> None:
        auth.done = True
        if channel.holder is auth:
            channel.holder = None
            channel.lock.release()
