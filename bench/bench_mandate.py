"""Payments under mandates: the facilitator settling x402 payments on the ledger network
(SQLite, synchronous=FULL, group commit) with no mandate, a mandate chain of depth 1 and of
depth 3, in one run. Each mandate has a total and two rolling windows (an hour, a day), so
a payment at depth 1 counts against 3 ledger spend limits, at depth 3 against 9.

Payments are signed ahead (the client's work); `CONCURRENT` settle calls are in flight at
once, as on a busy facilitator. The chains are verified once and cached, as in service.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from x402.schemas import PaymentPayload, PaymentRequirements

from bench._harness import DEFAULT_SECONDS, Rate, report
from paywire.client.direct import direct_payment
from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, Ledger, NewAccount, open_ledger, transfer
from paywire.ledger.names import wallet_account_id
from paywire.mandate import AssetLimit, Mandate, MandateChain, SignedMandate, Window
from paywire.money import USDC
from paywire.protocol import Facilitator

CONCURRENT = 256
"""Settle calls in flight at once (the writer batches what is waiting)."""

PRESIGNED = 12_000
"""Payments signed before each run (signing is not what is measured)."""

PRICE = 1_000


def _chain(network: str, depth: int, agents: list[PrivateKey]) -> MandateChain:
    """A chain of `depth` mandates from agents[0] (the principal) down to agents[depth]."""
    now = int(time.time())
    big = 10**15
    limits = (AssetLimit(network, "USDC", big, big, (Window(3600, big), Window(86400, big))),)
    signed = []
    parent: Mandate | None = None
    for level in range(depth):
        issuer, agent = agents[level], agents[level + 1]
        if parent is None:
            mandate = Mandate(
                issuer=issuer.address,
                agent=agent.address,
                limits=limits,
                valid_after=now - 60,
                valid_before=now + 86400,
            )
        else:
            mandate = parent.delegate(agent.address)
        signed.append(SignedMandate.sign(mandate, issuer))
        parent = mandate
    return MandateChain(tuple(signed))


def _payments(
    ledger: Ledger, payer: PrivateKey, chain: MandateChain | None
) -> list[tuple[PaymentPayload, PaymentRequirements]]:
    shop = PrivateKey.generate().address
    # Signed without the client's own mandate check: the facilitator's is what is measured.
    return [
        direct_payment(
            payer,
            ledger.network,
            shop,
            USDC.atomic(PRICE),
            mandate=chain,
            check_mandate=False,
            resource="http://shop/x",
            validity_s=3600,
        )
        for _ in range(PRESIGNED)
    ]


def _run(folder: Path, depth: int) -> Rate:
    ledger = open_ledger(f"sqlite:///{folder / f'mandate{depth}.db'}")
    try:
        ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
        keys = [PrivateKey.generate() for _ in range(max(depth, 1) + 1)]
        payer = keys[depth] if depth else keys[0]
        account = wallet_account_id(payer.address, "USDC")
        ledger.open_account(NewAccount(account, USDC, AccountKind.AGENT, owner=payer.address))
        ledger.submit(transfer("fund", "world", account, USDC.atomic(10**15)))
        chain = _chain(ledger.network, depth, keys) if depth else None
        facilitator = Facilitator.for_ledger(ledger, PrivateKey.generate())
        payments = iter(_payments(ledger, payer, chain))

        async def flood(seconds: float) -> int:
            done = 0
            deadline = time.perf_counter() + seconds

            async def worker() -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    item = next(payments, None)
                    if item is None:
                        return
                    settled = await facilitator.settle(*item)
                    assert settled.success, settled.error_message
                    done += 1

            await asyncio.gather(*(worker() for _ in range(CONCURRENT)))
            return done

        asyncio.run(flood(0.3))  # warm up: open the limits, verify the chain once
        start = time.perf_counter()
        done = asyncio.run(flood(DEFAULT_SECONDS))
        seconds = time.perf_counter() - start
        assert ledger.log.verify().ok
    finally:
        ledger.close()
    name = "no mandate" if depth == 0 else f"mandate chain of depth {depth} ({3 * depth} limits)"
    return Rate(name, done, seconds)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rates = [_run(Path(tmp), depth) for depth in (0, 1, 3)]
    report(
        "Payments settled under mandates (facilitator in process, SQLite, group commit)",
        rates,
        baseline=rates[0].name,
        goal="depth 1 >= 0.70x no mandate",
    )


if __name__ == "__main__":
    main()
