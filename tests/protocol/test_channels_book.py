"""The provider's voucher book: vouchers verified in memory and written before serving,
charges as the work cost, every voucher fault with its reason (the corrective 402 with the
channel's state), requests on one channel taking turns, claims on a timer, a threshold,
a close and before expiry, and a restart that loses nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from channel_helpers import (
    PRICE_MAX,
    Clock,
    available,
    held,
    in_process_book,
    open_channel,
    posted,
    voucher_payment,
    wallet,
)
from x402.schemas import PaymentRequired

from paywire.crypto.keys import PrivateKey
from paywire.ledger import Ledger
from paywire.protocol.channel import (
    ChannelBook,
    ChannelProblem,
    LedgerChannels,
    corrective_accepts,
    sign_voucher,
)
from paywire.protocol.errors import PaymentProblem

DEPOSIT = 100_000


class World:
    def __init__(self, books: Ledger, channels: LedgerChannels, tmp: Path, ticking: Clock) -> None:
        self.books, self.channels, self.ticking = books, channels, ticking
        self.payer, self.payee = PrivateKey.generate(), PrivateKey.generate()
        self.path = tmp / "vouchers.db"
        wallet(books, self.payer, 1_000_000)

    def book(self, **options: object) -> ChannelBook:
        options.setdefault("clock", self.ticking.seconds)
        return in_process_book(self.channels, self.payee, self.path, **options)


@pytest.fixture
def world(books: Ledger, channels: LedgerChannels, tmp_path: Path, ticking: Clock) -> World:
    return World(books, channels, tmp_path, ticking)


def test_pay_charge_claim_close(world: World) -> None:
    async def run() -> None:
        book = world.book()
        await book.start()
        channel = await open_channel(world.channels, world.payer, world.payee.address, DEPOSIT)
        accepts = book.requirements(PRICE_MAX, world.payee.address)
        assert accepts[0].extra["minDeposit"] == str(PRICE_MAX * 10)
        charged = 0
        for cost in (1_234, 0, 4_999, 17):
            payment = channel.payment(PRICE_MAX)
            auth = await book.authorize(payment, accepts[0])
            assert auth.max_charge_atomic == PRICE_MAX and auth.payer == world.payer.address
            meter = {"model": "gpt-tiny", "tokens": {"input": 10, "output": cost}}
            charge = await book.charge(auth, cost, {"meter": meter})
            charged += cost
            assert charge.charged_total_atomic == charged
            settled = charge.settle_response()
            assert settled.success and settled.amount == str(cost)
            assert settled.extensions["paywire-channel"]["chargedTotal"] == str(charged)
            assert settled.extra["channelState"]["chargedCumulativeAmount"] == str(charged)
            channel.observe(settled.extensions["paywire-channel"], payment)
        assert channel.charged_total == charged
        # Nothing moved yet: vouchers are claimed in batches.
        assert posted(world.books, world.payee) == 0
        outcomes = await book.claim_all()
        assert [o.claimed for o in outcomes] == [charged]
        assert posted(world.books, world.payee) == charged
        claim = world.books.transfer(outcomes[0].transfer or "")
        # The claim says what was bought (a charge of 0 is no charge).
        assert claim.metadata["charges"] == 3 and claim.metadata["amount"] == str(charged)
        assert claim.metadata["models"] == {"gpt-tiny": [3, 30, 0, charged, str(charged)]}
        closed = await book.close(channel.channel_hex)
        assert closed.ok and closed.closed
        assert available(world.books, world.payer) == 1_000_000 - charged
        with pytest.raises(ChannelProblem) as ended:
            await book.authorize(channel.payment(PRICE_MAX), accepts[0])
        assert ended.value.reason == "channel_closed"
        await book.aclose()

    asyncio.run(run())
    assert world.books.log.verify().ok


def test_every_voucher_fault_is_refused_with_its_reason(world: World) -> None:
    async def run() -> None:
        book = world.book()
        channel = await open_channel(world.channels, world.payer, world.payee.address, DEPOSIT)
        other = await open_channel(world.channels, world.payer, world.payee.address, DEPOSIT)
        option = book.requirements(PRICE_MAX, world.payee.address)[0]

        async def refused(payment: object, reason: str) -> PaymentProblem:
            with pytest.raises(PaymentProblem) as raised:
                await book.authorize(payment, option)  # type: ignore[arg-type]
            assert raised.value.reason == reason, raised.value.message
            return raised.value

        auth = await book.authorize(voucher_payment(channel, 8_000), option)
        await book.charge(auth, 6_000)
        # Below the charged total plus the price: the corrective 402, with the state.
        behind = await refused(voucher_payment(channel, 7_000), "channel_voucher_behind")
        assert isinstance(behind, ChannelProblem)
        assert behind.channel_state["chargedTotal"] == "6000"
        assert behind.channel_state["deposit"] == str(DEPOSIT)
        assert behind.channel_state["signedMaxClaimable"] == "8000"
        # A replayed old voucher (the one that was charged on) is behind too.
        await refused(voucher_payment(channel, 8_000), "channel_voucher_behind")
        # The client resyncs from the corrective 402 and continues from the charged total.
        fixed = corrective_accepts([option], behind)
        channel.charged_total = 0  # as if it had lost track
        assert channel.resync(PaymentRequired(error="x", accepts=fixed))
        assert channel.charged_total == 6_000
        auth = await book.authorize(channel.payment(PRICE_MAX), option)
        assert auth.max_charge_atomic == PRICE_MAX and auth.voucher_max == 11_000
        await book.release(auth)
        # Past the deposit; signed by another key; signed for another channel.
        await refused(voucher_payment(channel, DEPOSIT + 1), "channel_voucher_past_deposit")
        stranger = sign_voucher(channel.domain, PrivateKey.generate(), channel.channel_id, 20_000)
        forged = voucher_payment(channel, 20_000)
        forged.payload["signature"] = stranger.to_payload()["signature"]
        await refused(forged, "channel_voucher_signature")
        elsewhere = sign_voucher(other.domain, world.payer, other.channel_id, 20_000)
        moved = voucher_payment(channel, 20_000)
        moved.payload["signature"] = elsewhere.to_payload()["signature"]
        await refused(moved, "channel_voucher_signature")
        # An unknown channel; a malformed voucher; a voucher for another payee's book.
        ghost = voucher_payment(channel, 20_000)
        ghost.payload["channelId"] = "0x" + "11" * 32
        await refused(ghost, "channel_unknown")
        broken = voucher_payment(channel, 20_000)
        broken.payload["maxClaimableAmount"] = "1.5"
        assert (await refused(broken, "invalid_payload")).status == 400
        # A charge past what the voucher allows is refused; the request may charge less.
        auth = await book.authorize(voucher_payment(channel, 12_000), option)
        with pytest.raises(PaymentProblem) as over:
            await book.charge(auth, 6_001)
        assert over.value.reason == "channel_charge_exceeds_voucher"
        await book.charge(auth, 6_000)
        with pytest.raises(PaymentProblem):
            await book.charge(auth, 1)  # charged already
        assert book.state(channel.channel_hex)["chargedTotal"] == "12000"  # type: ignore[index]
        await book.aclose()
        assert posted(world.books, world.payee) == 12_000

    asyncio.run(run())


def test_requests_on_one_channel_take_turns(world: World) -> None:
    async def run() -> None:
        book = world.book()
        channel = await open_channel(world.channels, world.payer, world.payee.address, DEPOSIT)
        option = book.requirements(100, world.payee.address)[0]
        payment = voucher_payment(channel, DEPOSIT, price=100)  # a ceiling every request shares
        inside = 0

        async def request(cost: int) -> int:
            nonlocal inside
            auth = await book.authorize(payment, option)
            inside += 1
            assert inside == 1, "two requests were inside one channel at once"
            await asyncio.sleep(0.001)
            inside -= 1
            return (await book.charge(auth, cost)).charged_atomic

        costs = [37 * (i % 5) + i for i in range(32)]
        charged = await asyncio.gather(*(request(cost) for cost in costs))
        assert sorted(charged) == sorted(costs)
        assert book.state(channel.channel_hex)["chargedTotal"] == str(sum(costs))  # type: ignore[index]
        await book.aclose()
        assert posted(world.books, world.payee) == sum(costs)

    asyncio.run(run())


def test_a_lost_request_cannot_hold_its_channel_forever(world: World) -> None:
    async def run() -> None:
        book = world.book(lease_s=30, busy_timeout_s=0.2)
        channel = await open_channel(world.channels, world.payer, world.payee.address, DEPOSIT)
        option = book.requirements(PRICE_MAX, world.payee.address)[0]
        lost = await book.authorize(channel.payment(PRICE_MAX), option)
        with pytest.raises(PaymentProblem) as busy:
            await book.authorize(voucher_payment(channel, 20_000), option)
        assert busy.value.reason == "channel_busy"
        world.ticking.advance(31)
        auth = await book.authorize(voucher_payment(channel, 20_000), option)
        with pytest.raises(PaymentProblem):
            await book.charge(lost, 1)  # its lease ran out: not charged
        await book.charge(auth, 10)
        await book.aclose()

    asyncio.run(run())


def test_claims_on_timer_threshold_and_before_expiry(world: World) -> None:
    async def run() -> None:
        book = world.book(claim_interval_s=60, claim_threshold_atomic=10_000, expiry_margin_s=120)
        option = book.requirements(PRICE_MAX, world.payee.address)[0]
        timer = await open_channel(world.channels, world.payer, world.payee.address, DEPOSIT)
        busy = await open_channel(world.channels, world.payer, world.payee.address, DEPOSIT)
        short = await open_channel(
            world.channels, world.payer, world.payee.address, DEPOSIT, ttl_s=600
        )
        for channel, cost in ((timer, 500), (busy, 5_000), (short, 700)):
            auth = await book.authorize(channel.payment(PRICE_MAX), option)
            await book.charge(auth, cost)
        assert await book.claim_due() == []  # nothing is due yet
        auth = await book.authorize(busy.payment(PRICE_MAX), option)
        await book.charge(auth, 5_000)  # 10_000 unclaimed: past the threshold, claimed now
        await asyncio.gather(*book._background)
        assert posted(world.books, world.payee) == 10_000
        world.ticking.advance(61)
        due = await book.claim_due()  # the timer: both the others
        assert sorted(o.claimed for o in due) == [500, 700]
        world.ticking.advance(600 - 61 - 119)  # 119 s before the short channel expires
        with pytest.raises(ChannelProblem) as expiring:
            await book.authorize(short.payment(PRICE_MAX), option)
        assert expiring.value.reason == "channel_expiring"
        (closing,) = await book.claim_due()
        assert closing.closed and closing.claimed == 700
        assert posted(world.books, world.payee) == 11_200
        assert held(world.books, world.payer) == 2 * DEPOSIT - 10_500
        await book.aclose()

    asyncio.run(run())
    assert world.books.log.verify().ok


def test_a_reopened_book_claims_what_was_charged_before(world: World) -> None:
    async def run() -> None:
        book = world.book()
        channel = await open_channel(world.channels, world.payer, world.payee.address, DEPOSIT)
        option = book.requirements(PRICE_MAX, world.payee.address)[0]
        for cost in (100, 200, 300):
            auth = await book.authorize(channel.payment(PRICE_MAX), option)
            await book.charge(auth, cost)
        book.store.close()  # stopped without claiming (the kill test does it for real)
        again = world.book()
        assert again.state(channel.channel_hex)["chargedTotal"] == "600"  # type: ignore[index]
        await again.start()
        assert posted(world.books, world.payee) == 600
        # The highest voucher came back too: the next request continues from it.
        auth = await again.authorize(channel.payment(PRICE_MAX), option)
        await again.charge(auth, 50)
        await again.aclose()
        assert posted(world.books, world.payee) == 650

    asyncio.run(run())
    rows = sqlite3.connect(world.path).execute("PRAGMA journal_mode").fetchone()
    assert rows == ("wal",)


def test_a_top_up_is_seen_by_the_book(world: World) -> None:
    async def run() -> None:
        book = world.book()
        expiry = int(world.ticking.seconds()) + 3600
        channel = await open_channel(
            world.channels, world.payer, world.payee.address, 10_000, expiry=expiry
        )
        option = book.requirements(PRICE_MAX, world.payee.address)[0]
        auth = await book.authorize(voucher_payment(channel, 9_000), option)
        await book.charge(auth, 9_000)
        with pytest.raises(ChannelProblem):
            await book.authorize(voucher_payment(channel, 14_000), option)
        salt = bytes.fromhex(
            __import__("json").loads(
                world.channels.state_now(channel.channel_hex).authorization  # type: ignore[union-attr]
            )["payload"]["salt"][2:]
        )
        await open_channel(
            world.channels, world.payer, world.payee.address, 20_000, salt=salt, expiry=expiry
        )
        world.ticking.advance(2)
        auth = await book.authorize(voucher_payment(channel, 14_000), option)
        await book.charge(auth, 5_000)
        await book.aclose()
        assert posted(world.books, world.payee) == 14_000

    asyncio.run(run())


def test_a_later_expiry_keeps_the_channel_open(world: World) -> None:
    async def run() -> None:
        book = world.book(expiry_margin_s=120)
        expiry = int(world.ticking.seconds()) + 600
        channel = await open_channel(
            world.channels, world.payer, world.payee.address, DEPOSIT, expiry=expiry
        )
        option = book.requirements(PRICE_MAX, world.payee.address)[0]
        auth = await book.authorize(channel.payment(PRICE_MAX), option)
        await book.charge(auth, 300)
        state = world.channels.state_now(channel.channel_hex)
        assert state is not None and state.authorization is not None
        salt = bytes.fromhex(__import__("json").loads(state.authorization)["payload"]["salt"][2:])
        await open_channel(  # the same deposit, an hour more
            world.channels,
            world.payer,
            world.payee.address,
            DEPOSIT,
            salt=salt,
            expiry=expiry + 3600,
        )
        world.ticking.advance(500)  # inside the margin of the first expiry
        (claimed,) = await book.claim_due()  # claimed, but not closed: it lives on
        assert claimed.ok and not claimed.closed
        auth = await book.authorize(channel.payment(PRICE_MAX), option)
        await book.charge(auth, 200)
        await book.aclose()
        assert posted(world.books, world.payee) == 500

    asyncio.run(run())
