"""The closed loop, all real, for `bench_tasks`: principals post tasks in escrow, orchestrators
take them with task mandates and hire two sub-agents each under narrower delegated mandates,
everyone pays for its work (x402 `exact` per request, vouchers per AI token on a ledger
channel), the channels are claimed and closed, the orchestrator delivers with shares and the
principal accepts (expenses, shares and fee in one linked batch).

Everything runs in one process on one ledger: the facilitator's `exact` scheme and the
ledger channels in process, the LLM gateway's `ChannelBook` with its own SQLite file, the
`TaskBook` (blocking: called from threads). Tasks run concurrently on one event loop, so
the ledger's group-commit writer sees the load of many agents at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo

from paywire.client import Payer
from paywire.client.channels import ChannelPayer
from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, Ledger, NewAccount, new_id, transfer
from paywire.ledger.names import wallet_account_id
from paywire.mandate import AssetLimit, MandateChain, SignedMandate
from paywire.money import USDC, Amount
from paywire.protocol import Facilitator
from paywire.protocol.channel import (
    CHANNEL_EXTENSION,
    ChannelBook,
    LedgerChannelBackend,
    LedgerChannels,
)
from paywire.protocol.ledger_network import LedgerExactScheme
from paywire.tasks import TaskBook, TaskState, issue_task_mandate
from paywire.tasks.model import escrow_account_id

# ----- the terms of every task (atomic units of USDC: 1_000_000 = $1) ----------------------

BUDGET = 2_000_000
REWARD = 1_000_000
"""The rest of the budget (the allowance, $1) covers the expenses and the fee."""
FEE = 40_000
TASK_PER_PAYMENT = 200_000
"""The task mandate's cap per payment."""
SUB_TOTAL = 300_000
SUB_PER_PAYMENT = 100_000
"""A sub-agent's delegated mandate: at most this in all, and per payment."""
SEARCH_PRICE = 1_000
"""One search, x402 `exact`."""
PRICE_MAX = 5_000
"""The most one completion may cost (the voucher's increase)."""
DEPOSIT = 100_000
"""A sub-agent's channel deposit to the LLM gateway."""
PRICE_IN, PRICE_OUT = 1, 4
"""Atomic units per input and per output token."""
WALLET_FUNDS = 10_000_000
TASKS_PER_PRINCIPAL = 10
MODEL = "bench-model"
SEARCH_URL = "https://search.example/v1/search"
GATEWAY_URL = "https://llm.example/v1/chat/completions"
FEES_ACCOUNT = "operator:fees:USDC"

T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    tasks: int
    agents: int
    exact_per_task: int = 10
    vouchers_per_task: int = 20
    concurrent: int = 32
    """Tasks in flight at once."""

    def __post_init__(self) -> None:
        if self.tasks < 1 or self.agents < 3 or self.concurrent < 1:
            raise ValueError("at least one task, three agents and one task in flight")
        if self.exact_per_task < 0 or self.vouchers_per_task < 0:
            raise ValueError("paid calls per task are counted from zero")

    @property
    def principals(self) -> int:
        return -(-self.tasks // TASKS_PER_PRINCIPAL)

    def calls(self) -> tuple[int, tuple[int, int], tuple[int, int]]:
        """Exact calls of the orchestrator; (exact, vouchers) of each sub-agent."""
        mine = self.exact_per_task // 5
        rest = self.exact_per_task - mine
        vouchers = self.vouchers_per_task
        return mine, (rest - rest // 2, vouchers - vouchers // 2), (rest // 2, vouchers // 2)


@dataclass
class Outcome:
    """What one run of the loop did, and how long it took."""

    tasks: int = 0
    exact: int = 0
    vouchers: int = 0
    claims: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    """This process's CPU time during the loop (all threads)."""
    entries: int = 0
    """Log entries the ledger wrote during the loop."""
    task_ids: list[str] = field(default_factory=list)
    task_seconds: list[float] = field(default_factory=list)


class World:
    """The people, wallets and services of the loop, on one ledger."""

    def __init__(self, ledger: Ledger, folder: Path, sizes: Sizes) -> None:
        self.ledger = ledger
        self.sizes = sizes
        self.network = ledger.network
        self.operator = PrivateKey.generate()
        self.facilitator = Facilitator.for_ledger(ledger, self.operator)
        [exact] = self.facilitator.handlers
        assert isinstance(exact, LedgerExactScheme)
        # One mandate gate for both schemes, as the operator's service wires them.
        self.channels = LedgerChannels(ledger, mandates=exact.mandates)
        self.tasks = TaskBook(ledger)
        self.search = PrivateKey.generate()
        self.gateway = PrivateKey.generate()
        self.principals = [PrivateKey.generate() for _ in range(sizes.principals)]
        self.agents = [PrivateKey.generate() for _ in range(sizes.agents)]
        self.book_path = folder / "gateway-vouchers.db"
        self.book: ChannelBook | None = None
        self.run_id = new_id()[:8]
        [kind] = [k for k in self.facilitator.supported().kinds if k.network == self.network]
        self.search_terms = PaymentRequirements(
            scheme="exact",
            network=self.network,
            asset="USDC",
            amount=str(SEARCH_PRICE),
            pay_to=self.search.address,
            max_timeout_seconds=300,
            extra=kind.extra or {},
        )
        self.search_402 = PaymentRequired(
            x402_version=2, accepts=[self.search_terms], resource=ResourceInfo(url=SEARCH_URL)
        )

    # ----- set-up (not timed) ----------------------------------------------------------------

    def set_up(self) -> None:
        """Open every account and fund the wallets from an external "world" account."""
        ledger = self.ledger
        ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
        ledger.open_account(NewAccount(FEES_ACCOUNT, USDC, AccountKind.FEES))
        keys = [*self.principals, *self.agents, self.search, self.gateway]
        with concurrent.futures.ThreadPoolExecutor(32) as pool:  # opens share group commits
            list(
                pool.map(
                    lambda key: ledger.open_account(
                        NewAccount(
                            wallet_account_id(key.address, "USDC"),
                            USDC,
                            AccountKind.AGENT,
                            owner=key.address,
                        )
                    ),
                    keys,
                )
            )
        funding = []
        for index, principal in enumerate(self.principals):
            count = min(TASKS_PER_PRINCIPAL, self.sizes.tasks - index * TASKS_PER_PRINCIPAL)
            funding.append((principal, count * BUDGET))
        funding += [(agent, WALLET_FUNDS) for agent in self.agents]
        results = ledger.submit_many(
            [
                transfer(
                    f"fund:{self.run_id}:{key.address}",
                    "world",
                    wallet_account_id(key.address, "USDC"),
                    USDC.atomic(atomic),
                )
                for key, atomic in funding
            ]
        )
        failed = [result for result in results if isinstance(result, Exception)]
        if failed:
            raise RuntimeError(f"funding failed: {failed[0]}")

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(32))
        backend = LedgerChannelBackend(self.channels, self.gateway)
        self.book = ChannelBook(backend, self.book_path)
        await self.book.start()

    async def stop(self) -> None:
        if self.book is not None:
            await self.book.aclose()

    # ----- the loop ---------------------------------------------------------------------------

    async def run(self) -> Outcome:
        """Run every task, `sizes.concurrent` at a time; the outcome with the wall time."""
        sizes, outcome = self.sizes, Outcome()
        gate = asyncio.Semaphore(sizes.concurrent)
        before = self.ledger.head().size

        async def one(index: int) -> None:
            async with gate:
                started = time.perf_counter()
                await self.task(index, outcome)
                outcome.task_seconds.append(time.perf_counter() - started)

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(index) for index in range(sizes.tasks)))
        outcome.seconds = time.perf_counter() - start
        outcome.cpu_seconds = time.process_time() - cpu
        outcome.entries = self.ledger.head().size - before
        return outcome

    def cast(self, index: int) -> tuple[PrivateKey, PrivateKey, PrivateKey, PrivateKey]:
        """The principal, orchestrator and two sub-agents of task `index`."""
        agents = self.agents
        first = 3 * index
        return (
            self.principals[index // TASKS_PER_PRINCIPAL],
            agents[first % len(agents)],
            agents[(first + 1) % len(agents)],
            agents[(first + 2) % len(agents)],
        )

    async def task(self, index: int, outcome: Outcome) -> None:
        principal, orchestrator, *subs = self.cast(index)
        task_id = f"bench-{self.run_id}-{index}"
        tasks = self.tasks
        # 1. The principal posts the task (the budget goes into escrow).
        task = await asyncio.to_thread(
            tasks.post,
            task_id,
            principal.address,
            Amount(BUDGET, USDC),
            3600,
            [orchestrator.address],
            f"benchmark task {index}: search, summarize, report",
            reward=Amount(REWARD, USDC),
        )
        # 2. The orchestrator takes it with the principal's task mandate.
        mandate = issue_task_mandate(
            principal,
            task,
            orchestrator.address,
            self.network,
            per_payment=Amount(TASK_PER_PAYMENT, USDC),
        )
        await asyncio.to_thread(tasks.take, task_id, orchestrator.address, mandate)
        chain = MandateChain((mandate,))
        # 3. It hires two sub-agents under narrower mandates.
        narrower = (AssetLimit(self.network, "USDC", SUB_TOTAL, SUB_PER_PAYMENT),)
        sub_chains = [
            chain.extend(
                SignedMandate.sign(chain.leaf.delegate(sub.address, limits=narrower), orchestrator)
            )
            for sub in subs
        ]
        # 4. Everyone works and pays: the orchestrator searches; each sub-agent searches and
        #    buys completions per AI token through its own channel to the gateway.
        mine, *theirs = self.sizes.calls()
        await asyncio.gather(
            self.searches(Payer.create(orchestrator, max_per_payment="$1", mandate=chain), mine),
            *(
                self.sub_agent(sub, sub_chain, exact, vouchers, 2 * index + n, outcome)
                for n, (sub, sub_chain, (exact, vouchers)) in enumerate(
                    zip(subs, sub_chains, theirs, strict=True)
                )
            ),
        )
        outcome.exact += mine
        # 5. The orchestrator delivers, proposing shares; the principal accepts with a fee.
        shares = {orchestrator.address: 2, subs[0].address: 1, subs[1].address: 1}
        digest = f"sha256:{index:064x}"
        await asyncio.to_thread(tasks.deliver, task_id, orchestrator.address, digest, shares)
        await asyncio.to_thread(tasks.accept, task_id, fee=(FEES_ACCOUNT, Amount(FEE, USDC)))
        outcome.tasks += 1
        outcome.task_ids.append(task_id)

    async def searches(self, payer: Payer, count: int) -> None:
        for _ in range(count):
            await self.search_call(payer)

    async def search_call(self, payer: Payer) -> None:
        """One search, paid per request: signed under the payer's mandate chain, settled."""
        payment = payer.pay(self.search_402, self.search_terms)
        settled = await self.facilitator.settle(payment, self.search_terms, resource=SEARCH_URL)
        if not settled.success:
            raise RuntimeError(f"a search payment failed: {settled.error_reason}")
        payer.record_payment(self.search_terms)

    async def sub_agent(
        self,
        key: PrivateKey,
        chain: MandateChain,
        exact: int,
        vouchers: int,
        seed: int,
        outcome: Outcome,
    ) -> None:
        book = self.book
        assert book is not None
        payer = Payer.create(key, max_per_payment="$1", mandate=chain)
        channel: ChannelPayer | None = None
        option = book.requirements(PRICE_MAX, self.gateway.address)[0]
        if vouchers:
            opening = ChannelPayer.open_payload(payer, option, DEPOSIT, resource=GATEWAY_URL)
            state = await self.channels.open(opening)
            channel = ChannelPayer.opened(payer, option, state.to_json(), opened_with=opening)
        for call in range(max(exact, vouchers)):
            if call < exact:
                await self.search_call(payer)
                outcome.exact += 1
            if channel is not None and call < vouchers:
                await self.completion(book, channel, option, seed * 7919 + call)
                outcome.vouchers += 1
        if channel is not None:
            # The gateway claims what the channel charged (and closes it) before delivery.
            closed = await book.close(channel.channel_hex)
            if not (closed.ok and closed.closed):
                raise RuntimeError(f"closing a channel failed: {closed.reason} {closed.message}")
            outcome.claims += 1

    async def completion(
        self, book: ChannelBook, channel: ChannelPayer, option: PaymentRequirements, seed: int
    ) -> None:
        """One completion, paid per AI token: a voucher up to PRICE_MAX, the metered cost
        charged by the gateway's book."""
        payment: PaymentPayload = channel.payment(PRICE_MAX, url=GATEWAY_URL)
        auth = await book.authorize(payment, option)
        tokens_in, tokens_out = 40 + seed % 160, 10 + (seed * 31) % 300
        cost = min(tokens_in * PRICE_IN + tokens_out * PRICE_OUT, auth.max_charge_atomic)
        meter = {"model": MODEL, "tokens": {"input": tokens_in, "output": tokens_out}}
        charged = await book.charge(auth, cost, {"meter": meter})
        extensions = charged.settle_response().extensions or {}
        channel.observe(extensions[CHANNEL_EXTENSION], payment)

    # ----- the baseline and the checks ---------------------------------------------------------

    async def bare_transfers(self, count: int, in_flight: int) -> float:
        """`count` plain ledger transfers between the agents' wallets (no signature, no
        mandate, no task), `in_flight` submitters at once; the seconds they took."""
        ledger, agents = self.ledger, self.agents
        accounts = [wallet_account_id(agent.address, "USDC") for agent in agents]
        requests = [
            transfer(
                f"bare:{self.run_id}:{n}",
                accounts[n % len(accounts)],
                accounts[(n + 1) % len(accounts)],
                USDC.atomic(SEARCH_PRICE),
            )
            for n in range(count)
        ]
        pending = iter(requests)

        async def worker() -> None:
            for request in pending:
                await ledger.asubmit(request)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return time.perf_counter() - start

    def check_books(self, task_id: str) -> None:
        """The task was accepted; every payment made for it was made under its mandates and
        reimbursed to its payer; the reward was paid by the shares, the fee taken, and the
        escrow account is empty."""
        books = self.tasks.books(task_id)
        problems: list[str] = []
        expect(problems, books.task.state is TaskState.ACCEPTED, f"state {books.task.state}")
        expect(problems, all(spend.reimbursable for spend in books.spends), "a spend not ours")
        expect(
            problems,
            books.expenses == books.reimbursable(),
            f"reimbursed {books.expenses} != spent {books.reimbursable()}",
        )
        expect(
            problems,
            sum(books.expenses.values()) == books.spent_atomic > 0,
            f"reimbursed {sum(books.expenses.values())} != spent {books.spent_atomic}",
        )
        expect(problems, sum(books.shares.values()) == REWARD, f"shares {books.shares}")
        expect(problems, books.fee_atomic == FEE, f"fee {books.fee_atomic}")
        searched = books.spent_by_provider.get(self.search.address, 0)
        expect(
            problems,
            searched == SEARCH_PRICE * self.sizes.exact_per_task,
            f"searches {searched}",
        )
        use = books.models.get(MODEL)
        calls = use.calls if use is not None else 0
        expect(problems, calls == self.sizes.vouchers_per_task, f"completions {calls}")
        refund = BUDGET - REWARD - FEE - books.spent_atomic
        expect(problems, books.refunded_atomic == refund, f"refund {books.refunded_atomic}")
        balance = self.ledger.balance(escrow_account_id(task_id))
        expect(
            problems,
            (balance.posted, balance.debits_pending, balance.credits_pending) == (0, 0, 0),
            f"escrow balance {balance}",
        )
        if problems:
            raise AssertionError(f"task {task_id}: {'; '.join(problems)}")


def expect(problems: list[str], ok: bool, message: str) -> None:
    if not ok:
        problems.append(message)


def run_loop(
    ledger: Ledger, folder: Path, sizes: Sizes, body: Callable[[World], Awaitable[T]]
) -> tuple[World, T]:
    """Set up a world on `ledger` (not timed), run `body` with it on a fresh event loop
    (the gateway's book started before, closed after); the world and what `body` returned."""
    world = World(ledger, folder, sizes)
    world.set_up()

    async def main() -> T:
        await world.start()
        try:
            return await body(world)
        finally:
            await world.stop()

    return world, asyncio.run(main())
