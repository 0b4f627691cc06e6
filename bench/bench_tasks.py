"""The closed loop at scale, on SQLite and on PostgreSQL: N tasks, M agents, all real.

Per task (see `bench._tasks_loop`): a principal posts it (the budget held in escrow), an
orchestrator takes it with the principal's task mandate and hires two sub-agents under
narrower delegated mandates; the orchestrator pays for searches, each sub-agent pays for
searches (x402 `exact` on the ledger network, signed under its mandate chain and settled by
the facilitator: one ledger transfer naming the chain's spend limits) and for completions
per AI token (vouchers on a channel opened under its chain, authorized and charged by the
LLM gateway's book, claimed and closed before delivery); the orchestrator delivers with
shares, the principal accepts with a fee (expenses reimbursed from the ledger's task index,
shares and fee in one linked batch). Real secp256k1 signatures throughout. Tasks run
`concurrent` at a time on one event loop; the task book's blocking calls run in threads.

The baseline, measured in the same run on the same store: as many bare ledger transfers as
the loop made paid calls, with as many submitters in flight as the loop had agents
working, no signature, no mandate, no task. The ratio is what the loop's checks cost per
paid call, with the loop's other writes (tasks, channels, claims) in the same commits.

At the end the transparency log is verified (every balance re-derived, every asset summing
to zero) and every task's books are checked: accepted, everything spent reimbursed to its
payer, shares and fee paid, the escrow account empty.

Sizes: 100 tasks, 300 agents, 10 `exact` payments and 20 vouchers per task, 32 tasks in
flight; the number of tasks (and agents, 3 per task) scales with PAYWIRE_BENCH_SECONDS
(default 2.0 = full size). PAYWIRE_BENCH_TASKS, PAYWIRE_BENCH_AGENTS and
PAYWIRE_BENCH_IN_FLIGHT set them directly; PAYWIRE_BENCH_STORES=sqlite (or postgres) runs
one store only.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench._harness import DEFAULT_SECONDS, Rate, report
from bench._tasks_loop import Outcome, Sizes, World, run_loop
from paywire.ledger import Ledger, open_ledger

FULL_TASKS = 100
AGENTS_PER_TASK = 3
FULL_SECONDS = 2.0
"""PAYWIRE_BENCH_SECONDS at which the default size is the full one."""
MIN_TASKS = 5


def sizes_from_env() -> Sizes:
    scale = min(1.0, DEFAULT_SECONDS / FULL_SECONDS)
    tasks = int(os.environ.get("PAYWIRE_BENCH_TASKS", max(MIN_TASKS, round(FULL_TASKS * scale))))
    agents = int(os.environ.get("PAYWIRE_BENCH_AGENTS", AGENTS_PER_TASK * tasks))
    in_flight = int(os.environ.get("PAYWIRE_BENCH_IN_FLIGHT", 32))
    return Sizes(tasks=tasks, agents=agents, concurrent=in_flight)


def run_store(name: str, make: Callable[[], Ledger], folder: Path, sizes: Sizes) -> None:
    """The loop, then the baseline, on one fresh ledger; print the table and the checks."""
    in_flight = min(sizes.tasks, sizes.concurrent) * AGENTS_PER_TASK

    async def body(world: World) -> tuple[Outcome, float]:
        outcome = await world.run()
        bare = await world.bare_transfers(outcome.exact + outcome.vouchers, in_flight)
        return outcome, bare

    ledger = make()
    try:
        started = time.perf_counter()
        world, (outcome, bare_seconds) = run_loop(ledger, folder, sizes, body)
        total = time.perf_counter() - started
        if outcome.tasks != sizes.tasks:
            raise AssertionError(f"{name}: {outcome.tasks} of {sizes.tasks} tasks settled")
        started = time.perf_counter()
        for task_id in outcome.task_ids:
            world.check_books(task_id)
        audit = ledger.log.verify()
        if not audit.ok:
            raise AssertionError(f"{name}: the log does not verify: {audit.first_problem}")
        unbalanced = {asset: net for asset, net in audit.assets.items() if net != 0}
        if unbalanced:
            raise AssertionError(f"{name}: assets do not sum to zero: {unbalanced}")
        checked = time.perf_counter() - started
    finally:
        ledger.close()
    seconds, calls = outcome.seconds, outcome.exact + outcome.vouchers
    baseline = f"bare ledger transfers, {in_flight} in flight (baseline)"
    rates = [
        Rate(baseline, calls, bare_seconds),
        Rate("loop: paid calls (exact + vouchers)", calls, seconds),
        Rate("loop: exact payments (sign under chain, settle)", outcome.exact, seconds),
        Rate("loop: vouchers (sign, authorize, charge)", outcome.vouchers, seconds),
        Rate("loop: ledger log entries written (all kinds)", outcome.entries, seconds),
        Rate("loop: tasks settled", outcome.tasks, seconds),
    ]
    report(f"The closed loop on {name}", rates, baseline=baseline)
    latencies = sorted(outcome.task_seconds)
    p90 = latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))]
    print(
        f"{name}: {outcome.tasks} tasks in {seconds:.2f} s wall = "
        f"{outcome.tasks / seconds * 60:,.0f} tasks per minute; {outcome.exact:,} exact "
        f"payments, {outcome.vouchers:,} vouchers, {outcome.claims} channels claimed and closed"
    )
    print(
        f"one task (post to accept): {statistics.median(latencies):.2f} s median, "
        f"{p90:.2f} s p90; process CPU {outcome.cpu_seconds:.1f} s during the loop "
        f"({outcome.cpu_seconds / seconds:.1f} of {os.cpu_count()} cores)"
    )
    print(
        f"verify: ok ({audit.entries:,} entries, {audit.accounts:,} accounts, every asset sums "
        f"to zero); books: all {len(outcome.task_ids)} tasks add up (spent == reimbursed, "
        f"escrow empty); store run {total:.1f} s with set-up and baseline, checks {checked:.1f} s"
    )


def _postgres(folder: Path, sizes: Sizes) -> None:
    from paywire._dev.postgres import PostgresUnavailable, binaries, postgres_server

    if binaries() is None:
        print("\nPostgreSQL: skipped (initdb/pg_ctl not on PATH)")
        return
    try:
        with postgres_server(durable=True) as server:
            url = server.new_database()
            run_store("PostgreSQL", lambda: open_ledger(url), folder, sizes)
    except PostgresUnavailable as error:
        print(f"\nPostgreSQL: skipped ({error})")


def main() -> None:
    sizes = sizes_from_env()
    exact, vouchers = sizes.exact_per_task, sizes.vouchers_per_task
    print(
        f"\n# the closed loop: {sizes.tasks} tasks, {sizes.agents} agents, "
        f"{sizes.principals} principals, {exact} exact + {vouchers} vouchers per task "
        f"({sizes.tasks * (exact + vouchers):,} paid calls), {sizes.concurrent} tasks in flight"
    )
    if sizes.tasks < FULL_TASKS and "PAYWIRE_BENCH_TASKS" not in os.environ:
        print(
            f"(scaled down by PAYWIRE_BENCH_SECONDS={DEFAULT_SECONDS:g}; full size: "
            f"PAYWIRE_BENCH_TASKS={FULL_TASKS} PAYWIRE_BENCH_AGENTS={AGENTS_PER_TASK * FULL_TASKS})"
        )
    print("load average at start: " + ", ".join(f"{load:.2f}" for load in os.getloadavg()))
    stores = os.environ.get("PAYWIRE_BENCH_STORES", "sqlite,postgres").split(",")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "sqlite" in stores:
            (folder / "sqlite").mkdir()
            run_store(
                "SQLite",
                lambda: open_ledger(f"sqlite:///{folder / 'sqlite' / 'books.db'}"),
                folder / "sqlite",
                sizes,
            )
        if "postgres" in stores:
            (folder / "postgres").mkdir()
            _postgres(folder / "postgres", sizes)


if __name__ == "__main__":
    main()
