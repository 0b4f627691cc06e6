"""Crash safety: a writer process killed with SIGKILL mid-stream loses nothing it acknowledged.

A child process (`_crash_writer.py`) streams single transfers and linked batches from many
threads into the store and prints each answer the ledger gave. The test kills it with
SIGKILL (after a random number of answers, after a random delay, or while it signs a
checkpoint), reopens the store and checks:

- every acknowledged transfer is there, and nothing the ledger refused;
- no linked batch is there in part;
- nothing is there that was never asked for, and nothing twice: every balance equals what
  the transfers present imply, and the log holds exactly those transfers;
- every spend limit holds what the transfers present imply;
- retrying every acknowledged request is answered as a replay and changes nothing;
- `log.verify()` passes, and after the last kill so does an offline audit of an export.

Three kills per store, one after the other on the same store, each writer carrying on
from what the previous one left.
"""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

from paywire.crypto.keys import PrivateKey
from paywire.ledger import (
    AccountKind,
    Balance,
    Ledger,
    LedgerError,
    NewAccount,
    NewLimit,
    NewTransfer,
    Transfer,
    TransferKind,
    TransferNotFound,
    open_ledger,
    transfer,
)
from paywire.ledger.export import audit_export
from paywire.money import USDC

WRITER_PATH = Path(__file__).with_name("_crash_writer.py")
THREADS = 8
ACCOUNTS = {
    "world": AccountKind.EXTERNAL,
    "shop": AccountKind.PROVIDER,
    "fees": AccountKind.FEES,
    **{f"payer-{k}": AccountKind.AGENT for k in range(4)},
}
FUNDING = 2_000
RUN_LIMIT_S = 60.0
"""A writer that has not met its kill condition by then is stuck: the test fails."""


def _load_writer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("paywire_test_crash_writer", WRITER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


writer = _load_writer()


@dataclass
class Expectations:
    """What the store may, must and must not hold, over every writer run so far."""

    allowed: dict[str, NewTransfer] = field(default_factory=dict)
    """Every transfer some request could have written (acknowledged or in flight)."""
    required: set[str] = field(default_factory=set)
    forbidden: set[str] = field(default_factory=set)
    batches: list[list[str]] = field(default_factory=list)
    """Every linked batch that may be in the store: all of it or none of it."""
    acknowledged: list[list[NewTransfer]] = field(default_factory=list)


@dataclass
class Run:
    lines: list[str]
    returncode: int | None
    stderr: str


def run_writer(
    url: str,
    tag: str,
    key: PrivateKey,
    workdir: Path,
    kill_when: Callable[[str, int], bool],
    delay_s: float | None = None,
) -> Run:
    """Start a writer; kill it with SIGKILL when `kill_when(line, acks so far)` says so
    (or `delay_s` after it is ready); return every complete line it wrote."""
    stderr_path = workdir / f"{tag}.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(WRITER_PATH), url, tag, str(THREADS), str(workdir / "x.jsonl")],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "PAYWIRE_TEST_KEY": key.to_hex()},
        )
    watchdog = threading.Timer(RUN_LIMIT_S, process.kill)
    watchdog.start()
    timer: threading.Timer | None = None
    lines: list[str] = []
    acks = 0
    killed = False
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            if not raw.endswith(b"\n"):
                break  # a line cut by the kill was never fully written: not an answer
            line = raw.decode().rstrip("\n")
            lines.append(line)
            acks += line.startswith("OK ")
            if line == "READY" and delay_s is not None:
                timer = threading.Timer(delay_s, process.kill)
                timer.start()
            if not killed and kill_when(line, acks):
                process.send_signal(signal.SIGKILL)
                killed = True
        process.wait()
    finally:
        watchdog.cancel()
        if timer is not None:
            timer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    return Run(lines, process.returncode, stderr_path.read_text(errors="replace"))


def parse_run(run: Run, tag: str, expect: Expectations) -> int:
    """Fold a writer's answers into `expect`; return how many requests were answered."""
    bad = [line for line in run.lines if line.startswith("BAD")]
    assert not bad, bad
    assert run.returncode == -signal.SIGKILL, (
        f"the writer ended with {run.returncode}, not by SIGKILL:\n{run.stderr[-3000:]}"
    )
    last = dict.fromkeys(range(THREADS), -1)
    answered = 0
    for line in run.lines:
        word, _, rest = line.partition(" ")
        if word not in ("OK", "NO"):
            continue
        answered += 1
        ids = rest.split()
        _, thread_text, n_text = ids[0].split("-")[:3]
        thread_no, n_no = int(thread_text), int(n_text)
        requests = writer.plan(tag, thread_no, n_no)
        assert [r.id for r in requests] == ids
        last[thread_no] = max(last[thread_no], n_no)
        (expect.required if word == "OK" else expect.forbidden).update(ids)
        if word == "OK":
            expect.acknowledged.append(requests)
    # Every request answered, and each thread's next one, which may have been in flight.
    for thread_no, n_no in last.items():
        for n in range(n_no + 2):
            requests = writer.plan(tag, thread_no, n)
            expect.allowed.update((r.id, r) for r in requests)
            if len(requests) > 1:
                expect.batches.append([r.id for r in requests])
        for n in (n_no + 2, n_no + 3):  # never started: must not be there
            expect.forbidden.update(r.id for r in writer.plan(tag, thread_no, n))
    return answered


def all_transfers(ledger: Ledger) -> dict[str, Transfer]:
    """Every transfer in the store, found through the history of every account."""
    found: dict[str, Transfer] = {}
    for account in ledger.accounts(limit=1000):
        before = None
        while True:
            page = ledger.history(account.id, before=before, limit=10_000)
            found.update((t.id, t) for t in page)
            if len(page) < 10_000:
                break
            before = page[-1].log_index
    return found


def implied_balances(transfers: dict[str, Transfer]) -> dict[str, Balance]:
    """Replay the transfers present, in log order, with the ledger's arithmetic."""
    counters = {account: [0, 0, 0, 0] for account in ACCOUNTS}  # dp, dpo, cp, cpo
    for t in sorted(transfers.values(), key=lambda t: t.log_index):
        debit, credit, amount = (
            counters[t.debit_account_id],
            counters[t.credit_account_id],
            t.amount.atomic,
        )
        if t.kind is TransferKind.SINGLE:
            debit[1] += amount
            credit[3] += amount
        elif t.kind is TransferKind.PENDING:
            debit[0] += amount
            credit[2] += amount
        else:
            assert t.pending_id is not None
            held = transfers[t.pending_id].amount.atomic
            debit[0] -= held
            credit[2] -= held
            if t.kind is TransferKind.POST:
                debit[1] += amount
                credit[3] += amount
    return {account: Balance(*values) for account, values in counters.items()}


def matches_request(found: Transfer, request: NewTransfer, present: dict[str, Transfer]) -> bool:
    debit: str | None = request.debit_account_id
    credit: str | None = request.credit_account_id
    if request.pending_id is not None:
        held = present[request.pending_id]
        debit, credit = held.debit_account_id, held.credit_account_id
    return (
        found.kind is request.kind
        and (found.debit_account_id, found.credit_account_id) == (debit, credit)
        and (request.amount is None or found.amount == request.amount)
        and found.pending_id == request.pending_id
        and found.metadata == (request.metadata or {})
        and found.limits == request.limits
    )


def implied_limit_use(transfers: dict[str, Transfer], limit_id: str) -> int:
    """What the transfers present charge a limit: a payment its amount, a hold what was
    posted of it (all of it while pending, nothing once voided or expired)."""
    resolved = {t.pending_id: t for t in transfers.values() if t.pending_id is not None}
    total = 0
    for t in transfers.values():
        if limit_id not in t.limits:
            continue
        if t.kind is TransferKind.PENDING and t.id in resolved:
            end = resolved[t.id]
            total += end.amount.atomic if end.kind is TransferKind.POST else 0
        else:
            total += t.amount.atomic
    return total


def check_store(ledger: Ledger, expect: Expectations, setup: set[str]) -> dict[str, Balance]:
    present = all_transfers(ledger)
    ids = set(present)
    missing = expect.required - ids
    assert not missing, f"acknowledged transfers lost: {sorted(missing)[:10]}"
    ghosts = expect.forbidden & ids
    assert not ghosts, f"refused or never sent, yet in the store: {sorted(ghosts)[:10]}"
    unknown = ids - set(expect.allowed) - setup
    assert not unknown, f"transfers nobody asked for: {sorted(unknown)[:10]}"
    for batch in expect.batches:
        there = [tid in ids for tid in batch]
        parts = dict(zip(batch, there, strict=True))
        assert all(there) or not any(there), f"linked batch in part: {parts}"
    for tid in ids - setup:
        assert matches_request(present[tid], expect.allowed[tid], present), present[tid]
    balances = {a.id: a.balance for a in ledger.accounts(limit=1000)}
    assert balances == implied_balances(present)
    for limit_id in writer.LIMITS:
        assert ledger.limit(limit_id).total_atomic == implied_limit_use(present, limit_id)
    report = ledger.log.verify()
    assert report.ok, report.problems
    assert report.transfers == len(present), "the log holds transfers the indexes do not"
    assert report.balances == balances
    assert set(report.assets.values()) == {0}
    return balances


def retry_acknowledged(ledger: Ledger, expect: Expectations) -> None:
    """Every acknowledged request, sent again after the crash, is a replay."""
    head = ledger.head()
    for requests in expect.acknowledged:
        results: Sequence[Transfer | LedgerError] = (
            ledger.submit_linked(requests) if len(requests) > 1 else ledger.submit_many(requests)
        )
        for request, result in zip(requests, results, strict=True):
            assert isinstance(result, Transfer), (request.id, result)
            assert result.replayed, request.id
            assert result == ledger.transfer(request.id)
    assert ledger.head() == head


def test_sigkill_loses_no_acknowledged_transfer(
    store_url: str, make_ledger: Callable[..., Ledger], tmp_path: Path
) -> None:
    """Three writers, one after the other on one store, each killed with SIGKILL: after a
    random number of answers, after a random delay, and just as it signs a checkpoint.
    After each kill the store holds exactly what the answers allow (see `check_store`)."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    key = PrivateKey.generate()
    with make_ledger() as setup_ledger:
        for account_id, kind in ACCOUNTS.items():
            setup_ledger.open_account(NewAccount(account_id, USDC, kind))
        setup = set()
        for k in range(4):
            funding = transfer(f"fund-{k}", "world", f"payer-{k}", USDC.atomic(FUNDING))
            setup.add(setup_ledger.submit(funding).id)
        setup_ledger.open_limit(NewLimit("crash-total", USDC, 10**15))
        setup_ledger.open_limit(NewLimit("crash-minute", USDC, 10**15, 60))
    expect = Expectations()
    kill_after = rng.randint(40, 400)
    checkpoint_after = rng.randint(30, 200)
    runs: list[tuple[str, Callable[[str, int], bool], float | None]] = [
        ("after-acks", lambda line, acks: acks >= kill_after, None),
        ("after-delay", lambda line, acks: False, rng.uniform(0.05, 0.5)),
        ("while-checkpointing", lambda line, acks: line == "CK" and acks >= checkpoint_after, None),
    ]
    for number, (how, kill_when, delay_s) in enumerate(runs):
        tag = f"r{number}"
        run = run_writer(store_url, tag, key, tmp_path, kill_when, delay_s)
        context = f"seed {seed}, run {tag} ({how}), {len(run.lines)} lines"
        with make_ledger() as ledger:
            try:
                parse_run(run, tag, expect)
                check_store(ledger, expect, setup)
                retry_acknowledged(ledger, expect)
            except AssertionError as error:
                raise AssertionError(f"{context}: {error}") from error
    with make_ledger() as ledger:
        ledger.log.checkpoint(key)
        path = tmp_path / "final.jsonl"
        with path.open("wb") as out:
            ledger.log.export(out)
        report = audit_export(path, operator=key.address)
        assert report.ok, report.problems
        assert report.balances == {a.id: a.balance for a in ledger.accounts(limit=1000)}
        with pytest.raises(TransferNotFound):
            ledger.transfer("r9-0-0")


def test_sigkill_while_a_new_store_is_created(
    store_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Writers killed at random moments of their start (the store's tables are being
    created, or the first requests refused on an empty store) leave a store that opens,
    verifies and takes writes."""
    rng = random.Random()
    if store_url.startswith("sqlite"):
        urls = [f"sqlite:///{tmp_path / f'new-{n}.db'}" for n in range(3)]
    else:
        server = request.getfixturevalue("postgres_server")
        urls = [server.new_database() for _ in range(3)]
    key = PrivateKey.generate()
    for n, url in enumerate(urls):
        with (tmp_path / f"new-{n}.stderr").open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, str(WRITER_PATH), url, "n", "4", str(tmp_path / "n.jsonl")],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env={**os.environ, "PAYWIRE_TEST_KEY": key.to_hex()},
            )
        try:
            process.wait(timeout=rng.uniform(0.05, 0.6))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL, (tmp_path / f"new-{n}.stderr").read_text()
        with open_ledger(url) as ledger:
            assert ledger.head().size == 0
            assert ledger.log.verify().ok
            ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
            ledger.open_account(NewAccount("shop", USDC, AccountKind.PROVIDER))
            ledger.submit(transfer("after", "world", "shop", USDC.atomic(1)))
            assert ledger.log.verify().ok
