"""`ChannelBook`: the provider's side of channels: verify vouchers, charge, claim.

    book = await ChannelBook.open(backend, "vouchers.db")
    accepts = book.requirements(price_max_atomic=5_000, pay_to=backend.receiver)
    auth = await book.authorize(payment, accepts[0])     # before serving
    try:
        ...serve, meter what it cost...
        charge = await book.charge(auth, cost_atomic, charge_metadata)
        headers["PAYMENT-RESPONSE"] = encode(charge.settle_response())
    except BaseException:
        await book.release(auth)                         # charge nothing
        raise

`authorize` verifies the voucher in memory (the channel is read from its backend once,
then cached): signed by the channel's payer for this channel, within the deposit, covering
the charged total plus this request's price maximum (else the corrective 402: a
`ChannelProblem` with reason ``channel_voucher_behind`` and the channel's state). A voucher
higher than any before is written to the book's SQLite file (WAL, synchronous FULL) before
`authorize` returns: that is the one durable write before serving; no chain call, no
facilitator call. `charge` takes what the work cost, at most the voucher's increase, and
writes the new charged total before it returns (so what a client is told it was charged
survives a crash). Requests on one channel take turns (its lock is held from `authorize`
to `charge` or `release`); channels run in parallel.

Claims (`claims`): on a timer (`claim_interval_s` after the first unclaimed charge), past a
threshold (`claim_threshold_atomic` unclaimed on a channel), on `close`, and before the
channel's expiry (`expiry_margin_s` ahead, when the claim also closes it and new vouchers
are refused). Reopening a book reloads every channel, highest voucher and charged total
from its file, and `start` claims whatever was charged and not yet claimed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from x402.schemas import PaymentPayload, PaymentRequirements

from paywire.protocol import errors
from paywire.protocol.channel.backends import ChannelBackend
from paywire.protocol.channel.book_state import (
    ChannelAuthorization,
    ChannelCharge,
    OpenChannel,
)
from paywire.protocol.channel.claims import ClaimsMixin
from paywire.protocol.channel.store import BookUnavailable, ChannelStore
from paywire.protocol.channel.turns import TurnsMixin
from paywire.protocol.channel.wire import (
    CHANNEL_CLOSED,
    CHANNEL_EXPIRING,
    CHANNEL_PAYEE,
    CHANNEL_UNAVAILABLE,
    CHANNEL_UNKNOWN,
    CHARGE_EXCEEDS_VOUCHER,
    SCHEME,
    VOUCHER_BEHIND,
    VOUCHER_PAST_DEPOSIT,
    VOUCHER_SIGNATURE,
    ChannelProblem,
    SignedVoucher,
    channel_requirements,
    parse_voucher,
    voucher_signer,
)
from paywire.protocol.errors import PaymentProblem

logger = logging.getLogger("paywire.channels")

DEFAULT_CLAIM_INTERVAL_S = 60.0
DEFAULT_EXPIRY_MARGIN_S = 120.0
"""Claim (and close) a channel this long before its funds go back to the payer."""
DEFAULT_BUSY_TIMEOUT_S = 60.0
"""How long a request waits for the one before it on the same channel."""
DEFAULT_LEASE_S = 600.0
"""An authorization neither charged nor released this long is given up (its request is
charged nothing), so a lost request cannot block its channel for good."""
DEFAULT_MAX_TIMEOUT_S = 300
MIN_DEPOSIT_PRICES = 10
"""Without a set minimum, a channel must hold at least this many maximum prices (the SDK's
default multiplier)."""
REFRESH_INTERVAL_S = 1.0
"""A voucher past the deposit the book knows re-reads the channel (a top-up) at most this
often."""
MAX_VERIFIED = 65_536
"""Voucher signatures remembered as verified (a retried request costs no recovery)."""


class ChannelBook(TurnsMixin, ClaimsMixin):
    """A provider's vouchers on the channels of one `backend` (one network, asset and
    receiver), kept durably at `path`."""

    def __init__(
        self,
        backend: ChannelBackend,
        path: str | Path,
        *,
        claim_interval_s: float = DEFAULT_CLAIM_INTERVAL_S,
        claim_threshold_atomic: int | None = None,
        expiry_margin_s: float = DEFAULT_EXPIRY_MARGIN_S,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        lease_s: float = DEFAULT_LEASE_S,
        min_deposit_atomic: int | None = None,
        max_timeout_s: int = DEFAULT_MAX_TIMEOUT_S,
        tick_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.claim_interval_s = claim_interval_s
        self.claim_threshold_atomic = claim_threshold_atomic
        self.expiry_margin_s = expiry_margin_s
        self.busy_timeout_s = busy_timeout_s
        self.lease_s = lease_s
        self.min_deposit_atomic = min_deposit_atomic
        self.max_timeout_s = max_timeout_s
        self.tick_s = tick_s
        self.clock = clock
        self.store = ChannelStore(path)
        self.channels: dict[str, OpenChannel] = {}
        for row in self.store.rows():
            self.channels[row.channel_id] = OpenChannel.from_row(row)
        self._loading: dict[str, asyncio.Future[OpenChannel]] = {}
        self._verified: OrderedDict[bytes, tuple[bytes, int]] = OrderedDict()
        self._init_claims()

    @classmethod
    async def open(cls, backend: ChannelBackend, path: str | Path, **options: Any) -> ChannelBook:
        """A book at `path`, started: what its file says was charged and not claimed is
        claimed now, and the claim timer runs."""
        book = cls(backend, path, **options)
        await book.start()
        return book

    async def __aenter__(self) -> ChannelBook:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ----- the 402 ------------------------------------------------------------------------

    def requirements(self, price_max_atomic: int, pay_to: str) -> list[PaymentRequirements]:
        """The `batch-settlement` option of a 402 for a request that may cost up to
        `price_max_atomic` (one option: this book's network and asset)."""
        if pay_to.lower() != self.backend.receiver.lower():
            raise ValueError(f"this book's channels pay {self.backend.receiver}, not {pay_to}")
        minimum = self.min_deposit_atomic or max(1, price_max_atomic) * MIN_DEPOSIT_PRICES
        more = {**self.backend.requirements_extra(), "expiryMargin": int(self.expiry_margin_s)}
        return [
            channel_requirements(
                network=self.backend.network,
                asset=self.backend.asset_id,
                amount=price_max_atomic,
                pay_to=self.backend.receiver,
                domain=self.backend.domain,
                max_timeout_s=self.max_timeout_s,
                min_deposit=minimum,
                withdraw_delay_s=self.backend.withdraw_delay_s,
                more=more,
            )
        ]

    # ----- a request -----------------------------------------------------------------------

    async def authorize(
        self, payload: PaymentPayload, requirements: PaymentRequirements
    ) -> ChannelAuthorization:
        """Accept the voucher of `payload` for a request priced up to
        ``requirements.amount``, or raise a `PaymentProblem` (a `ChannelProblem`, with the
        channel's state, when the client can put it right: ``channel_voucher_behind``,
        ``channel_voucher_past_deposit``, ``channel_closed``, ``channel_expiring``). The
        channel is then this request's until `charge` or `release`."""
        self._check_terms(payload, requirements)
        voucher = parse_voucher(payload.payload)
        channel = await self._channel(voucher.channel_hex)
        if channel.info.receiver.lower() != requirements.pay_to.lower():
            raise PaymentProblem(CHANNEL_PAYEE, f"the channel pays {channel.info.receiver}")
        self._verify(channel, voucher)
        await self._acquire(channel)
        try:
            price = int(requirements.amount)
            await self._check_voucher(channel, voucher, price)
            if voucher.max_claimable > channel.voucher_max:
                channel.voucher_max = voucher.max_claimable
                channel.voucher_signature = voucher.signature
                await self._write(channel)
            auth = ChannelAuthorization(
                channel_id=channel.channel_id,
                payer=channel.info.payer,
                network=channel.info.network,
                asset=channel.info.asset,
                max_charge_atomic=voucher.max_claimable - channel.charged,
                voucher_max=voucher.max_claimable,
                charged_before=channel.charged,
                lease_until=self.clock() + self.lease_s,
            )
            channel.holder = auth
            return auth
        except BaseException:
            channel.lock.release()
            raise

    async def charge(
        self,
        auth: ChannelAuthorization,
        amount_atomic: int,
        metadata: Mapping[str, Any] | None = None,
    ) -> ChannelCharge:
        """Charge `amount_atomic` (what the work cost: 0 up to ``auth.max_charge_atomic``)
        for the request `auth` authorized; durable before it returns. A charge past the
        voucher raises ``channel_charge_exceeds_voucher`` and leaves `auth` open (charge
        less, or release)."""
        channel = self._held(auth)
        if (
            not isinstance(amount_atomic, int)
            or isinstance(amount_atomic, bool)
            or not 0 <= amount_atomic <= auth.max_charge_atomic
        ):
            raise PaymentProblem(
                CHARGE_EXCEEDS_VOUCHER,
                f"a charge is 0..{auth.max_charge_atomic} atomic units here, not {amount_atomic!r}",
            )
        try:
            if amount_atomic > 0:
                channel.charged += amount_atomic
                channel.summary.add(amount_atomic, metadata)
                if channel.unclaimed_since is None:
                    channel.unclaimed_since = self.clock()
                await self._write(channel)
        finally:
            self._finish(channel, auth)
        threshold = self.claim_threshold_atomic
        if threshold is not None and channel.charged - channel.claimed >= threshold:
            self._spawn_claim(channel, close=False)
        return ChannelCharge(
            channel_id=channel.channel_id,
            payer=channel.info.payer,
            network=channel.info.network,
            asset=channel.info.asset,
            charged_atomic=amount_atomic,
            charged_total_atomic=channel.charged,
            deposit_atomic=channel.info.deposit,
            claimed_atomic=channel.claimed,
        )

    async def release(self, auth: ChannelAuthorization) -> None:
        """Charge nothing for `auth`'s request (it failed) and free its channel."""
        if auth.done:
            return
        channel = self.channels.get(auth.channel_id)
        if channel is not None and channel.holder is auth:
            self._finish(channel, auth)
        auth.done = True

    def state(self, channel_id: str) -> dict[str, Any] | None:
        """A channel's state as this book knows it (`wire.state_dict`), None if unknown."""
        channel = self.channels.get(channel_id.lower())
        return None if channel is None else channel.state()

    # ----- the checks -----------------------------------------------------------------------

    def _check_terms(self, payload: PaymentPayload, requirements: PaymentRequirements) -> None:
        backend = self.backend
        for terms in (requirements, payload.accepted):
            if terms.scheme != SCHEME:
                raise PaymentProblem(errors.UNSUPPORTED_SCHEME, f"channels are paid {SCHEME}")
            if terms.network != backend.network:
                raise PaymentProblem(
                    errors.NETWORK_MISMATCH, f"channels here are on {backend.network}"
                )
            if terms.asset != backend.asset_id or terms.pay_to.lower() != backend.receiver.lower():
                raise PaymentProblem(
                    errors.INVALID_REQUIREMENTS, "the payment accepts another asset or payee"
                )

    async def _channel(self, channel_id: str) -> OpenChannel:
        known = self.channels.get(channel_id)
        if known is not None:
            return known
        loading = self._loading.get(channel_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(channel_id))
            self._loading[channel_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(channel_id, None))
        return await asyncio.shield(loading)

    async def _load(self, channel_id: str) -> OpenChannel:
        try:
            info = await self.backend.channel(channel_id)
        except PaymentProblem:
            raise
        except Exception as error:
            raise PaymentProblem(
                CHANNEL_UNAVAILABLE, f"cannot read the channel: {type(error).__name__}", status=503
            ) from None
        if info is None:
            raise PaymentProblem(
                CHANNEL_UNKNOWN, f"no channel {channel_id} on {self.backend.network}: open one"
            )
        if info.asset_id != self.backend.asset_id:
            raise PaymentProblem(CHANNEL_UNKNOWN, f"channel {channel_id} is in another asset")
        if info.receiver.lower() != self.backend.receiver.lower():
            raise PaymentProblem(CHANNEL_PAYEE, f"channel {channel_id} pays {info.receiver}")
        channel = self.channels.get(channel_id)
        if channel is None:
            channel = OpenChannel.new(info, self.clock())
            self.channels[channel_id] = channel
        return channel

    def _verify(self, channel: OpenChannel, voucher: SignedVoucher) -> None:
        """The payer's signature over this voucher for this channel (in memory)."""
        known = self._verified.get(voucher.signature)
        if known == (voucher.channel_id, voucher.max_claimable):
            return
        if voucher_signer(channel.prefix, voucher) != channel.payer_bytes:
            raise PaymentProblem(
                VOUCHER_SIGNATURE,
                "the voucher is not signed by the channel's payer for this channel",
            )
        self._verified[voucher.signature] = (voucher.channel_id, voucher.max_claimable)
        if len(self._verified) > MAX_VERIFIED:
            self._verified.popitem(last=False)

    async def _check_voucher(
        self, channel: OpenChannel, voucher: SignedVoucher, price: int
    ) -> None:
        if self._expiring(channel) or voucher.max_claimable > channel.info.deposit:
            await self._refresh(channel)  # a top-up may have moved the expiry or deposit
        if channel.closed:
            raise ChannelProblem(
                CHANNEL_CLOSED, "the channel is closed: open another", channel.state()
            )
        if self._expiring(channel):
            raise ChannelProblem(
                CHANNEL_EXPIRING, "the channel is about to expire: open another", channel.state()
            )
        if voucher.max_claimable > channel.info.deposit:
            raise ChannelProblem(
                VOUCHER_PAST_DEPOSIT,
                f"the voucher's {voucher.max_claimable} is past the deposit of "
                f"{channel.info.deposit}: top the channel up",
                channel.state(),
            )
        needed = channel.charged + max(price, 1)
        if voucher.max_claimable < needed:
            raise ChannelProblem(
                VOUCHER_BEHIND,
                f"the voucher's {voucher.max_claimable} does not cover the charged total of "
                f"{channel.charged} plus this request's {price}: sign from the charged total",
                channel.state(),
            )

    def _expiring(self, channel: OpenChannel) -> bool:
        expires = channel.info.expires_at
        return expires is not None and self.clock() >= expires - self.expiry_margin_s

    async def _refresh(self, channel: OpenChannel) -> None:
        """Read the channel again (a top-up raises its deposit), at most once a second."""
        now = self.clock()
        if now - channel.refreshed_at < REFRESH_INTERVAL_S:
            return
        channel.refreshed_at = now
        try:
            info = await self.backend.channel(channel.channel_id)
        except Exception as error:
            logger.warning("cannot re-read channel %s: %s", channel.channel_id, error)
            return
        if info is not None and info.deposit >= channel.info.deposit:
            channel.info = info
            channel.closed = channel.closed or info.closed

    async def _write(self, channel: OpenChannel) -> None:
        try:
            await self.store.write(channel.row())
        except BookUnavailable as error:
            raise PaymentProblem(CHANNEL_UNAVAILABLE, str(error), status=503) from None


__all__ = ["ChannelAuthorization", "ChannelBook", "ChannelCharge"]
