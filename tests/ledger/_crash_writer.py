"""The writer process that `test_ledger_crash.py` kills with SIGKILL.

    python _crash_writer.py URL TAG THREADS EXPORT_PATH   (operator key in PAYWIRE_TEST_KEY)

Opens the ledger at URL and streams requests from THREADS threads until it is killed:
single transfers, linked batches (a deposit, a hold, a partial post of that hold and a fee;
every other batch overdraws at its last transfer, so it must leave no trace), and now and
then a retry of the thread's last acknowledged single transfer (which must be replayed).
Payments and holds count against the spend limits `LIMITS` (opened by the parent), so the
limits' rows are written in the same transactions, and must survive the kill likewise.
A further thread signs checkpoints and exports the log, over and over.

It writes one line per answer to stdout, each with a single `os.write` once the ledger has
answered, so a line on the pipe means the answer was given:

    OK <id> [<id> ...]   the request (all of its transfers) was acknowledged
    NO <id> [<id> ...]   the ledger refused it (nothing of it may be in the store)
    CK                   a checkpoint is about to be signed
    CKOK <tree size>     it was signed and the log exported
    BAD <message>        something the ledger must never do; the parent fails the test

Thread `t` numbers its requests 0, 1, 2, ... and never starts one before the last was
answered, so after a kill at most request `last answered + 1` of each thread can be in the
store unannounced. `plan` is imported by the parent, which rebuilds every request from it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Callable

from paywire.crypto.keys import PrivateKey
from paywire.ledger import Ledger, LedgerError, NewTransfer, hold, open_ledger, post, transfer
from paywire.money import USDC

PAYERS = 4
"""Agent accounts payer-0 .. payer-3, funded by the parent and topped up by the batches."""

LINKED_EVERY = 5
"""Request n of a thread is a linked batch when n % LINKED_EVERY == LINKED_EVERY - 1."""

RETRY_EVERY = 7
"""After request n with n % RETRY_EVERY == 3, the thread retries its last single transfer."""

LIMITS = ("crash-total", "crash-minute")
"""A total and a one-minute window, with caps no run reaches."""


def plan(tag: str, thread: int, n: int) -> list[NewTransfer]:
    """Request n of a thread: one transfer, or the transfers of one linked batch."""
    base = f"{tag}-{thread}-{n}"
    payer = f"payer-{(thread + n) % PAYERS}"
    if n % LINKED_EVERY == LINKED_EVERY - 1:
        overdraw = n % (2 * LINKED_EVERY) == 2 * LINKED_EVERY - 1
        return [
            transfer(f"{base}-0", "world", payer, USDC.atomic(40), metadata={"batch": base}),
            hold(f"{base}-1", payer, "shop", USDC.atomic(25), timeout_s=3600, limits=LIMITS),
            post(f"{base}-2", f"{base}-1", USDC.atomic(15)),
            transfer(f"{base}-3", payer, "fees", USDC.atomic(10**15 if overdraw else 5)),
        ]
    amount = 1 + (n * 7 + thread) % 13
    return [transfer(base, payer, "shop", USDC.atomic(amount), metadata={"n": n}, limits=LIMITS)]


def is_linked(n: int) -> bool:
    return n % LINKED_EVERY == LINKED_EVERY - 1


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def stream(ledger: Ledger, tag: str, thread: int) -> None:
    last_single: NewTransfer | None = None
    n = 0
    while True:
        requests = plan(tag, thread, n)
        ids = " ".join(request.id for request in requests)
        try:
            if is_linked(n):
                results = ledger.submit_linked(requests)
            else:
                results = [ledger.submit(requests[0])]
        except LedgerError:
            say(f"NO {ids}")
        else:
            if any(result.replayed for result in results):
                say(f"BAD {ids}: a new request was answered as a replay")
            say(f"OK {ids}")
            if not is_linked(n):
                last_single = requests[0]
        if n % RETRY_EVERY == 3 and last_single is not None:
            again = ledger.submit(last_single)
            if not again.replayed:
                say(f"BAD {last_single.id}: a retry was applied again")
        n += 1


def checkpoints(ledger: Ledger, key: PrivateKey, export_path: str) -> None:
    while True:
        time.sleep(0.02)
        if ledger.head().size == 0:
            continue  # nothing to sign yet
        say("CK")
        signed = ledger.log.checkpoint(key)
        with open(export_path, "wb") as out:
            ledger.log.export(out)
        say(f"CKOK {signed.tree_size}")


def guarded(target: Callable[..., None], *args: object) -> threading.Thread:
    """A daemon thread that reports any unexpected exception as BAD and ends the process."""

    def run() -> None:
        try:
            target(*args)
        except BaseException:
            say("BAD " + traceback.format_exc().replace("\n", " | "))
            os._exit(1)

    return threading.Thread(target=run, daemon=True)


def main() -> None:
    url, tag, threads, export_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    key = PrivateKey.from_hex(os.environ["PAYWIRE_TEST_KEY"])
    ledger = open_ledger(url)
    workers = [guarded(stream, ledger, tag, thread) for thread in range(threads)]
    workers.append(guarded(checkpoints, ledger, key, export_path))
    say("READY")
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()  # forever: the parent kills this process


if __name__ == "__main__":
    main()
