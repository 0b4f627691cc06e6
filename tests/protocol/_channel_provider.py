"""The provider process that `test_channels_kill.py` kills with SIGKILL.

    python _channel_provider.py LEDGER_URL BOOK_PATH PAYMENTS_JSON   (payee key in
    PAYWIRE_TEST_KEY)

Opens the ledger and a `ChannelBook` at BOOK_PATH (never claiming: no timer, no
threshold), then authorizes and charges the payments of PAYMENTS_JSON one after the other
(``[{"payment": <x402 PaymentPayload>, "cost": n}, ...]``), each charge acknowledged by one
line written with a single `os.write` once `charge` returned (so it is durable):

    CHARGED <index> <charged total>

and sleeps when they are done, waiting for the kill.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from x402.schemas import PaymentPayload

from paywire.crypto.keys import PrivateKey
from paywire.ledger import open_ledger
from paywire.protocol.channel import ChannelBook, LedgerChannelBackend, LedgerChannels


async def serve(url: str, path: str, payments_path: str) -> None:
    ledger = open_ledger(url)
    channels = LedgerChannels(ledger)
    payee = PrivateKey.from_hex(os.environ["PAYWIRE_TEST_KEY"])
    book = ChannelBook(LedgerChannelBackend(channels, payee), path, claim_interval_s=10**9)
    with open(payments_path, encoding="utf-8") as file:
        work = json.load(file)
    accepts = book.requirements(int(work[0]["payment"]["accepted"]["amount"]), payee.address)
    for index, item in enumerate(work):
        payment = PaymentPayload.model_validate(item["payment"])
        auth = await book.authorize(payment, accepts[0])
        charge = await book.charge(auth, int(item["cost"]), {"meter": {"model": "m"}})
        os.write(1, f"CHARGED {index} {charge.charged_total_atomic}\n".encode())
    os.write(1, b"DONE\n")
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(serve(*sys.argv[1:4]))
