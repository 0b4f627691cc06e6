"""On-chain transactions per 10,000 paid requests: channels against x402 ``exact``.

Goal (issue 5, "Speed"): with channels, at most 2 on-chain transactions per 10,000 paid
requests, against one per request for x402 ``exact``.

1. Channels, measured: on a `LocalChain` (py-evm in process, no lazy blocks, so a block is
   mined only by a transaction) with the EIP-3009 token and paywire's channel contract, a
   payer opens one channel to the payee (``approve`` + ``open``: the payer's transactions),
   then 10,000 requests are paid through a `ChannelBook` with the EVM backend (a voucher
   signed by the payer, `authorize` + `charge` of a small amount, both written to the book's
   SQLite file before the next request), then the payee closes the channel through the book
   (one ``close`` that claims the charged total and refunds the rest). Transactions are
   counted three ways that must agree: the payer's and payee's nonce deltas, and the block
   number delta (setup -- deploy, gas, mint -- is done before the count starts).
2. ``exact``, measured on `EXACT_SAMPLE` requests and scaled to 10,000: each request is one
   ``transferWithAuthorization`` signed by the payer and submitted by the payee (one
   transaction, one block each).

The book's durable writes keep synchronous FULL (its default) unless
``PAYWIRE_BENCH_SYNC=NORMAL`` is set, which the report then says. The paid-request rates
are printed too (channels vs on-chain ``exact`` settlement), as a side note: LocalChain has
no block time, so the ``exact`` rate here is a best case.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._harness import Rate, report
from paywire.chain import ChannelContract, LocalChain, Token
from paywire.client import Payer
from paywire.client.channels import ChannelPayer
from paywire.crypto.keys import PrivateKey
from paywire.money import USDC
from paywire.protocol.channel import ChannelBook, EvmChannelBackend

REQUESTS = 10_000
"""Paid requests through the channel."""

EXACT_SAMPLE = 100
"""``exact`` payments settled on chain; the count is scaled to `REQUESTS`."""

PRICE = 10
"""Most a request may cost (atomic units); each is charged `COST`."""

COST = 7
DEPOSIT = REQUESTS * PRICE + 1_000
GAS_WEI = 10**20

SYNC = os.environ.get("PAYWIRE_BENCH_SYNC", "FULL").upper()
"""The voucher book's SQLite synchronous mode (FULL is the book's own; NORMAL to go faster)."""


def _sync_mode() -> None:
    """Make the book's SQLite connections use `SYNC` (the bench only; the book keeps FULL)."""
    if SYNC == "FULL":
        return
    from paywire.protocol.channel import store

    original = store._connect

    def connect(path: Path) -> Any:
        connection = original(path)
        connection.execute(f"PRAGMA synchronous={SYNC}")
        return connection

    store._connect = connect  # type: ignore[assignment]


def _counts(chain: LocalChain, payer: PrivateKey, payee: PrivateKey) -> tuple[int, int, int]:
    return chain.nonce(payer.address), chain.nonce(payee.address), chain.block_number()


def main() -> None:
    _sync_mode()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(_main(Path(folder)))


async def _main(folder: Path) -> None:
    started = time.perf_counter()
    chain = LocalChain(block_time_s=None)
    token: Token = chain.deploy_token(chain.operator.address)
    contract = ChannelContract.deploy(chain, token, challenge_period_s=3600)
    payer_key, payee = PrivateKey.generate(), PrivateKey.generate()
    for key in (payer_key, payee):
        chain.fund(key.address, GAS_WEI)
    token.mint(chain.operator, payer_key.address, 10 * DEPOSIT)
    payer = Payer.create(
        payer_key, max_per_payment="$1", networks=["eip155:*"], tokens={token.address: USDC}
    )
    # --- channels ------------------------------------------------------------------------------
    book = ChannelBook(EvmChannelBackend(contract, payee, USDC), folder / "vouchers.db")
    option = book.requirements(PRICE, payee.address)[0]
    before = _counts(chain, payer_key, payee)
    channel = ChannelPayer.open_evm(payer, option, contract, DEPOSIT)
    opened = _counts(chain, payer_key, payee)
    start = time.perf_counter()
    for _ in range(REQUESTS):
        payment = channel.payment(PRICE)
        auth = await book.authorize(payment, option)
        charge = await book.charge(auth, COST)
        channel.observe(charge.state(), payment)
    served = time.perf_counter() - start
    served_counts = _counts(chain, payer_key, payee)
    closing_balance = token.balance_of(payee.address)
    closed = await book.close(channel.channel_hex)
    after = _counts(chain, payer_key, payee)
    await book.aclose()
    if not closed.ok or token.balance_of(payee.address) - closing_balance != REQUESTS * COST:
        raise AssertionError(f"the close did not claim {REQUESTS * COST}: {closed}")
    payer_txs, payee_txs, blocks = (a - b for a, b in zip(after, before, strict=True))
    if payer_txs + payee_txs != blocks:
        raise AssertionError(f"{payer_txs} + {payee_txs} transactions but {blocks} blocks")
    during = sum(s - o for s, o in zip(served_counts[:2], opened[:2], strict=True))
    channel_txs = payer_txs + payee_txs
    # --- exact: one transferWithAuthorization per request -------------------------------------
    before_exact = _counts(chain, payer_key, payee)
    start = time.perf_counter()
    for _ in range(EXACT_SAMPLE):
        authorization = token.authorization(payer_key.address, payee.address, COST)
        signature = token.sign_transfer(payer_key, authorization)
        token.transfer_with_authorization(authorization, signature, key=payee)
    exact_s = time.perf_counter() - start
    after_exact = _counts(chain, payer_key, payee)
    exact_txs = sum(a - b for a, b in zip(after_exact[:2], before_exact[:2], strict=True))
    exact_blocks = after_exact[2] - before_exact[2]
    if exact_txs != exact_blocks:
        raise AssertionError(f"{exact_txs} transactions but {exact_blocks} blocks")
    exact_scaled = exact_txs * REQUESTS // EXACT_SAMPLE

    print(f"\n## On-chain transactions per {REQUESTS:,} paid requests (LocalChain, py-evm)")
    print("goal: channels <= 2 transactions per 10,000 requests, vs 1 per request for exact")
    print(f"voucher book: SQLite WAL, synchronous {SYNC}; no claims before the close")
    print(f"{'what':<58} {'transactions':>12} {'vs exact':>22}")
    rows = [
        (f"exact: {EXACT_SAMPLE} measured x {REQUESTS // EXACT_SAMPLE} (baseline)", exact_scaled),
        ("channels: all (payer + payee)", channel_txs),
        ("  payer: approve + open", payer_txs),
        (f"  payee: claims during the {REQUESTS:,} requests", during),
        (f"  payee: close, claiming {REQUESTS * COST:,}", payee_txs - during),
    ]
    for name, count in rows:
        print(f"{name:<58} {count:>12,} {count / exact_scaled:>21.4f}x")
    if payer_txs == 2:
        print(f"channels without the payer's approve (open + close only): {channel_txs - 1}")
    exact_name = f"exact: sign + transferWithAuthorization ({EXACT_SAMPLE})"
    report(
        "Paid requests per second (side note: channels' book vs exact settled on LocalChain)",
        [
            Rate(exact_name, EXACT_SAMPLE, exact_s),
            Rate(f"channels: sign voucher + authorize + charge ({REQUESTS:,})", REQUESTS, served),
        ],
        baseline=exact_name,
    )
    print(f"(run time {time.perf_counter() - started:.1f} s)")
