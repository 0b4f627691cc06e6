"""Random voucher, charge, claim, restart and close sequences on one channel: the book
accepts exactly the vouchers the rules allow, never charges past a voucher, and payer +
payee + held always add up to what there was; after the close the payee has exactly
what was charged and the log verifies."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from channel_helpers import (
    available,
    held,
    in_process_book,
    open_channel,
    posted,
    voucher_payment,
    wallet,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, NewAccount, open_ledger
from paywire.money import USDC
from paywire.protocol.channel import ChannelBook, LedgerChannels
from paywire.protocol.errors import PaymentProblem

FUNDS = 1_000_000
DEPOSIT = 40_000

_op = st.one_of(
    st.tuples(
        st.just("pay"),
        st.integers(0, DEPOSIT + 2_000),  # the voucher's maximum
        st.integers(1, 3_000),  # the request's price maximum
        st.integers(0, 6_000),  # what the work cost (may exceed what the voucher allows)
        st.booleans(),  # the request fails: released
    ),
    st.tuples(st.just("claim")),
    st.tuples(st.just("restart")),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ops=st.lists(_op, min_size=1, max_size=18))
def test_random_sequences_keep_the_books(ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(_run(Path(folder), ops))


async def _run(folder: Path, ops: list[tuple[object, ...]]) -> None:
    ledger = open_ledger(f"sqlite:///{folder / 'books.db'}")
    try:
        ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
        payer, payee = PrivateKey.generate(), PrivateKey.generate()
        wallet(ledger, payer, FUNDS)
        channels = LedgerChannels(ledger)
        channel = await open_channel(channels, payer, payee.address, DEPOSIT)
        book = in_process_book(channels, payee, folder / "vouchers.db")
        charged = highest = 0

        def conserved() -> None:
            assert available(ledger, payer) + held(ledger, payer) + posted(ledger, payee) == FUNDS
            assert posted(ledger, payee) <= charged <= max(highest, 0)

        for op in ops:
            kind = op[0]
            if kind == "claim":
                await book.claim_all()
                assert posted(ledger, payee) == charged
            elif kind == "restart":
                book.store.close()  # as a crash: nothing claimed on the way out
                book = in_process_book(channels, payee, folder / "vouchers.db")
                state = book.state(channel.channel_hex)
                assert state is None or int(state["chargedTotal"]) == charged
            else:
                most, price, cost, fails = op[1], op[2], op[3], op[4]
                assert isinstance(most, int) and isinstance(price, int) and isinstance(cost, int)
                option = book.requirements(price, payee.address)[0]
                accept = most <= DEPOSIT and most >= charged + price
                try:
                    auth = await book.authorize(voucher_payment(channel, most, price), option)
                except PaymentProblem as problem:
                    assert not accept, problem.message
                    reason = (
                        "channel_voucher_past_deposit"
                        if most > DEPOSIT
                        else ("channel_voucher_behind")
                    )
                    assert problem.reason == reason
                    continue
                assert accept and auth.max_charge_atomic == most - charged
                highest = max(highest, most)
                if fails:
                    await book.release(auth)
                elif cost > auth.max_charge_atomic:
                    try:
                        await book.charge(auth, cost)
                        raise AssertionError("charged past the voucher")
                    except PaymentProblem as problem:
                        assert problem.reason == "channel_charge_exceeds_voucher"
                    await book.release(auth)
                else:
                    charge = await book.charge(auth, cost)
                    charged += cost
                    assert charge.charged_total_atomic == charged <= most
            conserved()
        await book.start()  # a (re)started book claims what is charged
        assert posted(ledger, payee) == charged
        closed = await book.close(channel.channel_hex)
        assert closed.ok and closed.closed
        await book.aclose()
        assert posted(ledger, payee) == charged
        assert available(ledger, payer) == FUNDS - charged and held(ledger, payer) == 0
        assert ledger.log.verify().ok
    finally:
        ledger.close()


def test_a_book_file_is_one_row_per_channel(tmp_path: Path) -> None:
    """The durable write is the highest voucher and the charged total, nothing else."""
    import sqlite3

    async def run() -> None:
        ledger = open_ledger(f"sqlite:///{tmp_path / 'books.db'}")
        ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
        payer, payee = PrivateKey.generate(), PrivateKey.generate()
        wallet(ledger, payer, FUNDS)
        channels = LedgerChannels(ledger)
        channel = await open_channel(channels, payer, payee.address, DEPOSIT)
        book: ChannelBook = in_process_book(channels, payee, tmp_path / "vouchers.db")
        option = book.requirements(1_000, payee.address)[0]
        auth = await book.authorize(voucher_payment(channel, 5_000, 1_000), option)
        rows = (
            sqlite3.connect(tmp_path / "vouchers.db")
            .execute("SELECT voucher_max, charged FROM channels")
            .fetchall()
        )
        assert rows == [("5000", "0")]  # written before authorize returned
        await book.charge(auth, 1_234)
        rows = (
            sqlite3.connect(tmp_path / "vouchers.db")
            .execute("SELECT voucher_max, charged FROM channels")
            .fetchall()
        )
        assert rows == [("5000", "1234")]
        await book.aclose()
        ledger.close()

    asyncio.run(run())
