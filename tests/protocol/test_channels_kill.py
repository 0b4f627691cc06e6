"""A provider killed with SIGKILL between serving and claiming loses nothing: its voucher
book is reopened, claims, and the payee has everything it charged; the close gives the
payer the rest; the ledger's log verifies."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from channel_helpers import (
    PRICE_MAX,
    available,
    held,
    in_process_book,
    open_channel,
    posted,
    voucher_payment,
    wallet,
)

from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, NewAccount, open_ledger
from paywire.money import USDC
from paywire.protocol.channel import LedgerChannels

PROVIDER = Path(__file__).with_name("_channel_provider.py")
PAYMENTS = 120
KILL_AFTER = 25
"""Charges acknowledged before the kill (the provider goes on charging meanwhile)."""
DEPOSIT = PAYMENTS * PRICE_MAX
RUN_LIMIT_S = 60


def test_a_provider_killed_before_claiming_loses_no_charge(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'books.db'}"
    ledger = open_ledger(url)
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    wallet(ledger, payer, 10 * DEPOSIT)
    channels = LedgerChannels(ledger)
    channel = asyncio.run(open_channel(channels, payer, payee.address, DEPOSIT))
    costs = [100 + 37 * index for index in range(PAYMENTS)]
    work = [
        {
            "payment": voucher_payment(channel, (index + 1) * PRICE_MAX).model_dump(
                by_alias=True, exclude_none=True
            ),
            "cost": cost,
        }
        for index, cost in enumerate(costs)
    ]
    (tmp_path / "payments.json").write_text(json.dumps(work))
    book_path = tmp_path / "vouchers.db"
    process = subprocess.Popen(
        [sys.executable, str(PROVIDER), url, str(book_path), str(tmp_path / "payments.json")],
        stdout=subprocess.PIPE,
        env={**os.environ, "PAYWIRE_TEST_KEY": payee.to_hex()},
        cwd=Path(__file__).parent,
    )
    watchdog = threading.Timer(RUN_LIMIT_S, process.kill)
    watchdog.start()
    acknowledged = 0
    assert process.stdout is not None
    try:
        for raw in process.stdout:
            line = raw.decode().split()
            if line and line[0] == "CHARGED":
                acknowledged = int(line[2])
                if int(line[1]) + 1 >= KILL_AFTER:
                    process.send_signal(signal.SIGKILL)
                    break
    finally:
        process.wait()
        watchdog.cancel()
    assert process.returncode == -signal.SIGKILL
    assert acknowledged == sum(costs[:KILL_AFTER])
    assert posted(ledger, payee) == 0  # killed before any claim

    async def recover() -> tuple[int, int]:
        book = in_process_book(channels, payee, book_path)
        state = book.state(channel.channel_hex)
        assert state is not None
        charged = int(state["chargedTotal"])
        await book.start()  # claims what the dead provider charged
        claimed = posted(ledger, payee)
        closed = await book.close(channel.channel_hex)
        assert closed.ok and closed.closed
        await book.aclose()
        return charged, claimed

    charged, claimed = asyncio.run(recover())
    # Every acknowledged charge survived (one more may have been written, unannounced).
    assert charged in (acknowledged, acknowledged + costs[KILL_AFTER])
    assert claimed == charged == posted(ledger, payee)
    assert available(ledger, payer) == 10 * DEPOSIT - charged
    assert held(ledger, payer) == 0
    assert ledger.log.verify().ok
    ledger.close()
