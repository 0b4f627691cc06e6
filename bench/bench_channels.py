"""Channels: vouchers verified per second by the provider's book, and paid requests per
second with the durable writes.

1. Verification, in memory: what `ChannelBook.authorize` does before its write (parse the
   x402 voucher payload, check the terms, EIP-712 digest, recover the signer, compare with
   the channel's payer), each voucher distinct (no cache), beside a bare coincurve
   recovery in the same run. Goal: at least 70% of the bare recovery's rate.
2. `authorize` + `release` through the book with every voucher below the highest already
   held (no durable write), to show what the book's own bookkeeping costs.
3. `authorize` + `charge` with a higher voucher each time: two durable writes per request
   (the voucher before serving, the charged total after), SQLite WAL, synchronous FULL;
   one channel at a time, and 64 channels at once (their writes share group commits).
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coincurve import PublicKey
from x402.schemas import PaymentPayload, PaymentRequirements

from bench._harness import DEFAULT_SECONDS, Rate, measure, report
from paywire.client import Payer
from paywire.client.channels import ChannelPayer
from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, NewAccount, open_ledger, transfer
from paywire.ledger.names import wallet_account_id
from paywire.money import USDC
from paywire.protocol.channel import (
    ChannelBook,
    LedgerChannelBackend,
    LedgerChannels,
    parse_voucher,
    sign_voucher,
)
from paywire.protocol.channel.wire import SCHEME, voucher_digest, voucher_signer

SAMPLES = 4096
"""Distinct signed vouchers cycled through by the in-memory cases."""

CHANNELS = 64
"""Channels paid at once in the concurrent case."""

PRICE = 1_000
DEPOSIT = 10**15


class _NoCache(dict[bytes, Any]):
    """Stands in for the book's cache of verified signatures: every voucher is new."""

    def __setitem__(self, key: bytes, value: Any) -> None:
        return None


async def _world(folder: Path, channels_count: int) -> tuple[Any, ChannelBook, list[ChannelPayer]]:
    ledger = open_ledger(f"sqlite:///{folder / 'books.db'}")
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    channels = LedgerChannels(ledger)
    payee = PrivateKey.generate()
    book = ChannelBook(LedgerChannelBackend(channels, payee), folder / "vouchers.db")
    option = book.requirements(PRICE, payee.address)[0]
    opened = []
    for index in range(channels_count):
        key = PrivateKey.generate()
        account = wallet_account_id(key.address, "USDC")
        ledger.open_account(NewAccount(account, USDC, AccountKind.AGENT, owner=key.address))
        ledger.submit(transfer(f"fund-{index}", "world", account, USDC.atomic(2 * DEPOSIT)))
        payer = Payer.create(key, max_per_payment="$1000000000")
        payment = ChannelPayer.open_payload(payer, option, DEPOSIT)
        state = await channels.open(payment)
        opened.append(ChannelPayer.opened(payer, option, state.to_json(), opened_with=payment))
    return ledger, book, opened


def _payment(channel: ChannelPayer, option: PaymentRequirements, most: int) -> PaymentPayload:
    voucher = sign_voucher(channel.domain, channel.payer.key, channel.channel_id, most)
    return PaymentPayload(accepted=option, payload=voucher.to_payload())


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(_main(Path(folder)))


async def _main(folder: Path) -> None:
    ledger, book, opened = await _world(folder, CHANNELS)
    option = book.requirements(PRICE, book.backend.receiver)[0]
    first = opened[0]
    # --- in memory ---------------------------------------------------------------------------
    # Every sample is below the highest voucher the book holds: no durable write.
    samples = [_payment(first, option, DEPOSIT - (n + 1) * PRICE) for n in range(SAMPLES)]
    await book.authorize(_payment(first, option, DEPOSIT), option)  # the highest, held
    await book.release(book.channels[first.channel_hex].holder)  # type: ignore[arg-type]
    channel = book.channels[first.channel_hex]
    raw = []
    for payment in samples:
        voucher = parse_voucher(payment.payload)
        digest = voucher_digest(channel.prefix, voucher.channel_id, voucher.max_claimable)
        signature = voucher.signature
        raw.append((digest, signature[:64] + bytes((signature[64] - 27,))))
    raw_cycle = itertools.cycle(raw)
    sample_cycle = itertools.cycle(samples)
    backend = book.backend

    def coincurve_recover() -> object:
        digest, signature = next(raw_cycle)
        return PublicKey.from_signature_and_message(signature, digest, hasher=None)

    def verify_in_memory() -> object:
        payment = next(sample_cycle)
        accepted = payment.accepted
        if accepted.scheme != SCHEME or accepted.network != backend.network:
            raise AssertionError("terms")
        voucher = parse_voucher(payment.payload)
        known = book.channels[voucher.channel_hex]
        if voucher_signer(known.prefix, voucher) != known.payer_bytes:
            raise AssertionError("signer")
        return voucher

    book._verified = _NoCache()  # type: ignore[assignment]
    batch = 64

    async def authorize_release_batch() -> None:
        for _ in range(batch):
            auth = await book.authorize(next(sample_cycle), option)
            await book.release(auth)

    rates: list[Rate] = []
    best: dict[str, Rate] = {}
    for _ in range(3):
        for name, call in (
            ("coincurve: recover public key (baseline)", coincurve_recover),
            ("book: verify a voucher in memory (parse, digest, recover)", verify_in_memory),
        ):
            rate = measure(name, call, seconds=DEFAULT_SECONDS / 3)
            if name not in best or rate.per_s > best[name].per_s:
                best[name] = rate
    rates.extend(best.values())
    rates.append(
        await _async_rate("book: authorize + release (no write)", authorize_release_batch, batch)
    )
    report(
        "Channel vouchers verified by the provider (in memory, each voucher distinct)",
        rates,
        baseline="coincurve: recover public key (baseline)",
        goal="verification >= 0.70x the bare recovery",
    )
    # --- with the durable writes ---------------------------------------------------------------
    book._verified = _NoCache()  # type: ignore[assignment]
    next_most = {c.channel_hex: c.charged_total for c in opened}

    async def one_request(channel: ChannelPayer) -> None:
        held = book.channels.get(channel.channel_hex)
        base = held.charged if held is not None else 0
        most = max(next_most[channel.channel_hex], base) + PRICE
        next_most[channel.channel_hex] = most
        auth = await book.authorize(_payment(channel, option, most), option)
        await book.charge(auth, PRICE // 2)

    async def sequential() -> None:
        for _ in range(16):
            await one_request(opened[1])

    async def concurrent() -> None:
        await asyncio.gather(*(one_request(channel) for channel in opened[1:]))

    written = [
        await _async_rate(
            "one channel: authorize + charge (2 fsyncs, incl. signing)", sequential, 16
        ),
        await _async_rate(
            f"{CHANNELS - 1} channels at once: authorize + charge (incl. signing)",
            concurrent,
            CHANNELS - 1,
        ),
    ]
    signing = await _async_rate("client: sign one voucher (for reference)", _sign(first), 64)
    report(
        "Paid requests through the book, with the durable writes (SQLite WAL, synchronous FULL)",
        [signing, *written],
        baseline="client: sign one voucher (for reference)",
    )
    book.store.close()
    ledger.close()


def _sign(channel: ChannelPayer) -> Callable[[], Any]:
    async def run() -> None:
        for n in range(64):
            sign_voucher(channel.domain, channel.payer.key, channel.channel_id, n + 1)

    return run


async def _async_rate(name: str, batch: Callable[[], Any], ops: int) -> Rate:
    """The rate of an async batch of `ops` operations, over the time budget."""
    await batch()  # warm up
    calls = 0
    start = time.perf_counter()
    deadline = start + DEFAULT_SECONDS
    now = start
    while now < deadline:
        await batch()
        calls += 1
        now = time.perf_counter()
    return Rate(name, calls * ops, now - start)


if __name__ == "__main__":
    main()
