"""Helpers for the task fault, crash and stateful tests: parties, funding, snapshots of
every balance, mandated x402 `exact` payments through the real facilitator, and the crash
writer that `test_task_faults.py` runs in a child process and kills with SIGKILL.

    python task_helpers.py URL MODE COUNT [PAUSE_AT]   (MODE: accept | window)

The writer opens the ledger at URL and settles tasks ``crash-0`` .. ``crash-<COUNT-1>``
(posted and delivered by the parent) one after the other, printing one line per step
with a single `os.write` once the ledger has answered:

    READY           the ledger is open
    REC <n>         (window) the acceptance of task n is recorded, not yet released
    OK <n>          task n is accepted and paid out
    BAD <message>   something that must not happen; the parent fails the test

In ``window`` mode the tasks have a one-second dispute window: the writer's clock runs
`WINDOW_SKEW_NS` ahead after each recorded acceptance, so it can release at once; after
recording the acceptance of task PAUSE_AT it waits to be killed, before its release.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, Balance, Ledger, NewAccount, open_ledger, transfer
from paywire.ledger.names import wallet_account_id
from paywire.money import USDC, Amount
from paywire.tasks import TaskBook

if TYPE_CHECKING:  # the payment side is imported where used: the crash writer starts fast
    from x402.schemas import PaymentPayload, PaymentRequirements

    from paywire.mandate import MandateChain
    from paywire.protocol import Facilitator

USD = USDC.atomic


def key_of(n: int) -> PrivateKey:
    """A deterministic test key."""
    return PrivateKey.from_bytes((7_000 + n).to_bytes(32, "big"))


PRINCIPAL_KEY = key_of(1)
PRINCIPAL = PRINCIPAL_KEY.address
ALICE_KEY, BOB_KEY, CAROL_KEY = key_of(2), key_of(3), key_of(4)
ALICE, BOB, CAROL = ALICE_KEY.address, BOB_KEY.address, CAROL_KEY.address
STRANGER_KEY = key_of(5)
STRANGER = STRANGER_KEY.address
NO_WALLET = key_of(6).address
"""An address with no wallet account on the ledger."""

FEES = "operator:fees:USDC"
FUNDED = 10_000_000


def wallet(address: str) -> str:
    return wallet_account_id(address, "USDC")


def open_wallet(ledger: Ledger, address: str, atomic: int = 0) -> str:
    account = wallet(address)
    ledger.open_account(NewAccount(account, USDC, AccountKind.AGENT, owner=address))
    if atomic:
        ledger.submit(transfer(f"fund:{address}:{atomic}", "world", account, USD(atomic)))
    return account


def setup_parties(ledger: Ledger, *agents: str, funded: int = FUNDED) -> None:
    """The world account, the operator's fee account, the principal funded, agent wallets."""
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount(FEES, USDC, AccountKind.FEES))
    open_wallet(ledger, PRINCIPAL, funded)
    for agent in agents:
        open_wallet(ledger, agent)


def all_accounts(ledger: Ledger) -> dict[str, Balance]:
    """Every account's balance, by id."""
    out: dict[str, Balance] = {}
    after: str | None = None
    while True:
        page = ledger.accounts(after=after, limit=500)
        if not page:
            return out
        out.update((account.id, account.balance) for account in page)
        after = page[-1].id


def money(ledger: Ledger) -> dict[str, Balance]:
    """Every account that holds or held money (record accounts stay at zero)."""
    return {k: v for k, v in all_accounts(ledger).items() if v != Balance()}


def check_books(ledger: Ledger) -> None:
    """Money conserved (posted and pending sum to zero), no wallet below zero, the
    transparency log verifies."""
    balances = all_accounts(ledger)
    assert sum(b.posted for b in balances.values()) == 0
    assert sum(b.credits_pending - b.debits_pending for b in balances.values()) == 0
    for account in ledger.accounts(kind=AccountKind.AGENT, limit=1000):
        assert account.balance.available >= 0, account
    report = ledger.log.verify()
    assert report.ok, report.problems
    assert set(report.assets.values()) <= {0}


@contextmanager
def moves_nothing(ledger: Ledger) -> Iterator[None]:
    """The block changes no balance and writes nothing to the log."""
    before, head = all_accounts(ledger), ledger.head()
    yield
    assert all_accounts(ledger) == before
    assert ledger.head() == head


# ----- mandated x402 payments --------------------------------------------------------


def signed_payment(
    ledger: Ledger, payer: PrivateKey, payee: str, atomic: int, chain: MandateChain | None
) -> tuple[PaymentPayload, PaymentRequirements]:
    """A payment as a client signs it (no client-side mandate check: the facilitator and
    the ledger must enforce the mandate)."""
    from paywire.client.direct import direct_payment

    return direct_payment(
        payer,
        ledger.network,
        payee,
        USDC.atomic(atomic),
        mandate=chain,
        check_mandate=False,
        resource="http://tools.example/search",
    )


def pay(
    facilitator: Facilitator,
    ledger: Ledger,
    payer: PrivateKey,
    payee: str,
    atomic: int,
    chain: MandateChain | None,
) -> Any:
    """Settle one payment through the facilitator; its `SettleResponse`."""
    payload, requirements = signed_payment(ledger, payer, payee, atomic, chain)
    return asyncio.run(facilitator.settle(payload, requirements))


# ----- the crash writer --------------------------------------------------------------

CRASH_SPLITS = {ALICE: 2, BOB: 1}
CRASH_EXPENSES = {ALICE: 7_000, CAROL: 3_000}
CRASH_FEE = 1_000
WINDOW_SKEW_NS = 2_000_000_000


def crash_task_id(n: int) -> str:
    return f"crash-{n}"


def crash_accept(book: TaskBook, n: int) -> list[Any]:
    """The acceptance every crash task gets (the same terms in the child and the parent)."""
    return book.accept(
        crash_task_id(n),
        dict(CRASH_SPLITS),
        expenses={address: USD(atomic) for address, atomic in CRASH_EXPENSES.items()},
        fee=(FEES, Amount(CRASH_FEE, USDC)),
    )


def _say(line: str) -> None:
    os.write(1, (line + "\n").encode())


class ManualClock:
    """Ledger time in ns that only moves by hand (starts at the real time)."""

    def __init__(self) -> None:
        self.now = time.time_ns()

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += seconds * 1_000_000_000


class SkewClock:
    """Wall time that jumps ahead on request (to pass a dispute window at once)."""

    def __init__(self) -> None:
        self.skew = 0

    def __call__(self) -> int:
        return time.time_ns() + self.skew


def _crash_main() -> None:
    url, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pause_at = int(sys.argv[4]) if len(sys.argv) > 4 else -1
    clock = SkewClock()
    ledger = open_ledger(url, clock=clock)
    book = TaskBook(ledger)
    _say("READY")
    try:
        for n in range(count):
            done = crash_accept(book, n)
            if mode == "window":
                if done:
                    _say(f"BAD {n}: an acceptance in a dispute window paid out at once")
                _say(f"REC {n}")
                if n == pause_at:
                    time.sleep(60)  # killed here: recorded, not released
                clock.skew += WINDOW_SKEW_NS
                done = book.release(crash_task_id(n))
            if not done or any(item.replayed for item in done):
                _say(f"BAD {n}: the settlement wrote nothing new")
            _say(f"OK {n}")
        _say("DONE")
    except BaseException:
        _say("BAD " + traceback.format_exc().replace("\n", " | "))
        os._exit(1)
    time.sleep(60)  # the parent kills this process


if __name__ == "__main__":
    _crash_main()
