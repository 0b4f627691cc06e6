"""The closed loop, told step by step: a human funds a goal, agents do the work and pay
for the AI tokens and tools they use, and the value flows back to those who did it, with
books that prove it.

People: a **principal** (the human with the money), an **orchestrator** agent that takes
the task, a **writer** sub-agent it hires, a **judge** agent the principal pays to check
the result; providers: a **search API** (paid per request, x402 `exact`) and an **LLM
gateway** serving the real local model (paid per AI token, through a channel); and the
**operator** (ledger, facilitator, chain reserve), which takes a fee.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paywire.client import PaidLLM, SyncPaywireClient
from paywire.crypto.keys import PrivateKey
from paywire.demo._money import deposit, send, withdraw
from paywire.demo._report import usd
from paywire.demo._stack import FEES_ACCOUNT, Stack, digest, start_stack
from paywire.mandate import AssetLimit, MandateChain, SignedMandate
from paywire.meter.local_model import LOCAL_MODEL_ID
from paywire.money import Amount
from paywire.tasks import TaskBook, TaskBooks, issue_task_mandate

TOPIC = "how payment channels cut fees for AI agents"
WRITER_FLOAT = 200_000
"""What the orchestrator advances each writer ($0.20), outside the task mandate."""

ORCHESTRATOR_FLOAT = 400_000
"""What the principal advances the orchestrator per task beyond the writers' floats."""

FEE_PERCENT = 2
"""The operator's fee on an accepted task, in percent of its budget."""

JUDGE_CRITERIA = "The result is a short English summary about payments or fees."


@dataclass(frozen=True)
class DemoOptions:
    folder: Path
    seed: int = 7
    tasks: int = 1
    writers: int = 1
    threads: int = 2
    max_tokens: int = 48
    passphrase: str = "demo passphrase, not for real funds"  # noqa: S105 (a public demo value)


@dataclass
class Cast:
    """Every key in the story (fresh each run, derived from the seed)."""

    operator: PrivateKey
    principal: PrivateKey
    orchestrator: PrivateKey
    writers: list[PrivateKey]
    judge: PrivateKey
    gateway: PrivateKey
    search: PrivateKey

    @classmethod
    def from_seed(cls, seed: int, writers: int) -> Cast:
        rng = random.Random(seed)

        def key() -> PrivateKey:
            return PrivateKey(rng.randbytes(32))

        return cls(key(), key(), key(), [key() for _ in range(writers)], key(), key(), key())

    def save(self, folder: Path, passphrase: str) -> None:
        """Keep every key in `folder`'s keystore (light KDF: a demo's keys), so the books
        can be explored after with the CLI (``PAYWIRE_HOME=<folder> paywire serve``)."""
        from paywire.crypto.keystore import KeyStore

        store = KeyStore(folder / "keys", light_kdf=True)
        named = {
            "operator": self.operator,
            "principal": self.principal,
            "orchestrator": self.orchestrator,
            "judge": self.judge,
            "gateway": self.gateway,
            "search": self.search,
        }
        named.update({f"writer-{n + 1}": key for n, key in enumerate(self.writers)})
        for name, key in named.items():
            store.import_key(name, key, passphrase)

    def names(self) -> dict[str, str]:
        named = {
            self.operator.address: "operator (reserve)",
            self.principal.address: "principal",
            self.orchestrator.address: "orchestrator",
            self.judge.address: "judge",
            self.gateway.address: "LLM gateway",
            self.search.address: "search API",
        }
        for index, writer in enumerate(self.writers):
            named[writer.address] = f"writer {index + 1}" if len(self.writers) > 1 else "writer"
        return named


@dataclass
class Outcome:
    """What the story produced, for the books and the report."""

    task_ids: list[str] = field(default_factory=list)
    results: dict[str, str] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)
    books: dict[str, TaskBooks] = field(default_factory=dict)
    chain: dict[str, Any] = field(default_factory=dict)
    paid_calls: int = 0
    timings: dict[str, float] = field(default_factory=dict)


Say = Callable[[str], None]


class Story:
    """Runs the loop; `say` shows progress as it goes."""

    def __init__(self, options: DemoOptions, say: Say) -> None:
        self.options = options
        self.say = say
        self.cast = Cast.from_seed(options.seed, options.writers)
        self.outcome = Outcome()
        self.stack: Stack | None = None

    def run(self) -> Outcome:
        started = time.perf_counter()
        try:
            self._setup()
            for number in range(self.options.tasks):
                self._task(f"research-{number + 1}")
            self._settle_providers()
        finally:
            if self.stack is not None:
                self.stack.close()
        self.outcome.timings["total"] = time.perf_counter() - started
        return self.outcome

    # ----- 1. set-up and funding -------------------------------------------------------

    def _setup(self) -> None:
        cast, say = self.cast, self.say
        say(
            "step 1: starting the operator (ledger, facilitator, local EVM chain), the LLM "
            "gateway (SmolLM2-135M) and a paid search API"
        )
        cast.save(self.options.folder, self.options.passphrase)
        self.stack = stack = start_stack(
            self.options.folder,
            cast.operator,
            cast.gateway,
            cast.search,
            n_threads=self.options.threads,
        )
        say(
            f"  operator {stack.operator_url}  ledger {stack.ledger.network}  chain "
            f"{stack.desk.chain.network}"
        )
        say(f"  gateway  {stack.gateway_url}  search {stack.search_url}")
        asset = stack.asset
        budget = self._budget() * self.options.tasks
        cast_funds = budget + self._float() + asset.atomic(100_000).atomic
        stack.desk.token.faucet(cast.principal.address, cast_funds)
        say(f"  the principal holds {usd(asset.atomic(cast_funds))} on chain (local faucet)")
        done = deposit(stack.operator_url, stack.desk, cast.principal, cast_funds)
        say(
            f"  deposit on chain (receiveWithAuthorization, tx {str(done['tx'])[:12]}...): the "
            f"ledger credits {usd(asset.atomic(cast_funds))}"
        )
        send(
            stack.operator_url,
            stack.ledger.network,
            cast.principal,
            cast.orchestrator.address,
            Amount(self._float(), asset),
            memo="float for the orchestrator",
        )
        send(
            stack.operator_url,
            stack.ledger.network,
            cast.principal,
            cast.judge.address,
            asset.atomic(20_000),
            memo="float for the judge",
        )
        say(
            f"  the principal funds the orchestrator ({usd(asset.atomic(self._float()))}) and the "
            "judge "
            f"({usd(asset.atomic(20_000))}) on the ledger network"
        )

    def _budget(self) -> int:
        return 2_000_000  # $2.00: $1.20 reward, $0.80 for expenses

    def _float(self) -> int:
        """What the orchestrator needs up front: its searches, and each writer's float."""
        per_task = ORCHESTRATOR_FLOAT + WRITER_FLOAT * self.options.writers
        return per_task * self.options.tasks

    # ----- 2-4. one task ------------------------------------------------------------

    def _task(self, task_id: str) -> None:
        stack, cast, say = self._stack(), self.cast, self.say
        asset, network = stack.asset, stack.ledger.network
        book = TaskBook(stack.ledger)
        started = time.perf_counter()
        say(f"step 2: the principal posts task {task_id!r}: research and summarize {TOPIC!r}")
        from paywire.tasks.checks import JudgeCheck

        judge_check = JudgeCheck(model=LOCAL_MODEL_ID, criteria=JUDGE_CRITERIA)
        task = book.post(
            task_id,
            cast.principal.address,
            Amount(self._budget(), asset),
            3600,
            [cast.orchestrator.address],
            f"Research and summarize: {TOPIC}.",
            reward=Amount(1_200_000, asset),
            check=judge_check,
        )
        say(
            f"  budget {usd(task.budget)} held in escrow (reward {usd(task.document.reward)}, "
            "expenses up to "
            f"{usd(task.allowance)}); deadline in 1 h; checked by a model judge"
        )
        mandate = issue_task_mandate(cast.principal, task, cast.orchestrator.address, network)
        chain = MandateChain((mandate,))
        book.take(task_id, cast.orchestrator.address, mandate)
        say(
            "step 3: the orchestrator takes it with the principal's task mandate "
            f"{mandate.id[:12]}... (at most {usd(task.allowance)} of spending)"
        )

        writers = self._hire(chain, task_id)
        sources = self._research(chain, task_id)
        draft = self._write(writers, sources, task_id)
        self.outcome.results[task_id] = draft
        shares = {cast.orchestrator.address: 3, **{w.address: 2 for w, _ in writers}}
        book.deliver(task_id, cast.orchestrator.address, digest(draft), shares=shares)
        say(
            f"step 4: the orchestrator delivers ({len(draft)} characters, sha256 "
            f"{digest(draft)[:12]}...), proposing shares orchestrator 3 : "
            f"{'writer' if len(writers) == 1 else 'each writer'} 2"
        )
        self._judge(book, task_id, draft)
        self.outcome.books[task_id] = book.books(task_id)
        self.outcome.timings[task_id] = time.perf_counter() - started

    def _hire(self, chain: MandateChain, task_id: str) -> list[tuple[PrivateKey, MandateChain]]:
        stack, cast, say = self._stack(), self.cast, self.say
        asset, network = stack.asset, stack.ledger.network
        hired = []
        for writer in cast.writers:
            child = chain.leaf.delegate(
                writer.address,
                limits=[AssetLimit(network, asset.code, 150_000, 100_000)],
                purpose=f"write the summary for task {task_id}",
            )
            writer_chain = chain.extend(SignedMandate.sign(child, cast.orchestrator))
            send(
                stack.operator_url,
                network,
                cast.orchestrator,
                writer.address,
                asset.atomic(WRITER_FLOAT),
                memo="float for the writer",
            )
            hired.append((writer, writer_chain))
        say(
            f"  it hires {len(hired)} writer sub-agent(s) with a narrower delegated mandate "
            f"({usd(asset.atomic(150_000))} each) and a float of {usd(asset.atomic(WRITER_FLOAT))}"
        )
        return hired

    def _research(self, chain: MandateChain, task_id: str) -> list[dict[str, str]]:
        stack, cast, say = self._stack(), self.cast, self.say
        queries = ["payment channels fees", "x402 HTTP 402", "agent budgets mandates"]
        found: list[dict[str, str]] = []
        with SyncPaywireClient(
            cast.orchestrator, max_per_payment="$0.05", mandate=chain, timeout=60
        ) as client:
            for query in queries:
                response = client.get(f"{stack.search_url}/search", params={"q": query})
                response.raise_for_status()
                found += response.json()["results"][:1]
                self.outcome.paid_calls += 1
        say(
            f"  the orchestrator buys {len(queries)} searches from the search API at $0.01 each "
            "(x402 exact, tagged with the task)"
        )
        return found

    def _write(
        self,
        writers: list[tuple[PrivateKey, MandateChain]],
        sources: list[dict[str, str]],
        task_id: str,
    ) -> str:
        stack, say = self._stack(), self.say
        notes = " ".join(item["snippet"] for item in sources)
        parts = []
        for writer, writer_chain in writers:
            with PaidLLM(
                writer,
                stack.gateway_url,
                max_per_payment="$0.05",
                mandate=writer_chain,
                channel_deposit_atomic=50_000,
            ) as llm:
                for ask in (
                    f"Summarize in two sentences: {notes}",
                    "In one sentence, why do "
                    f"{TOPIC.split(' how ')[-1] if ' how ' in TOPIC else 'agents'} save fees with "
                    "channels?",
                ):
                    answer = llm.chat.completions.create(
                        model=LOCAL_MODEL_ID,
                        messages=[{"role": "user", "content": ask}],
                        max_tokens=self.options.max_tokens,
                        temperature=0,
                        seed=self.options.seed,
                    )
                    parts.append(answer["choices"][0]["message"]["content"].strip())
                    self.outcome.paid_calls += 1
        say(
            "  the writer buys completions from the LLM gateway per AI token, through a channel "
            f"(deposit {usd(stack.asset.atomic(50_000))}, one voucher per request)"
        )
        claimed = stack.wait_for_claims()
        say(
            "  the gateway claims its vouchers into the ledger "
            f"({usd(stack.asset.atomic(claimed))} so "
            "far, tagged with the task)"
        )
        return "\n\n".join(part for part in parts if part) or "(no text)"

    def _judge(self, book: TaskBook, task_id: str, draft: str) -> None:
        stack, cast, say = self._stack(), self.cast, self.say
        asset, network = stack.asset, stack.ledger.network
        from paywire.mandate import Mandate

        now = int(time.time())
        judge_mandate = Mandate(
            issuer=cast.principal.address,
            agent=cast.judge.address,
            limits=(AssetLimit(network, asset.code, 20_000, 10_000),),
            valid_after=now - 60,
            valid_before=now + 3600,
            purpose=f"judge task {task_id}",
            task_id=task_id,
        )
        chain = MandateChain((SignedMandate.sign(judge_mandate, cast.principal),))
        fee = Amount(self._budget() * FEE_PERCENT // 100, asset)
        with PaidLLM(cast.judge, stack.gateway_url, max_per_payment="$0.01", mandate=chain) as llm:
            decision = asyncio.run(book.decide(task_id, draft, llm=llm, fee=(FEES_ACCOUNT, fee)))
            self.outcome.paid_calls += 1
        verdict, done = decision.verdict, decision.transfers
        self.outcome.verdicts[task_id] = (
            f"{'accepted' if verdict.accepted else 'rejected'}: {verdict.reason}"
        )
        say(
            "  the judge (paid per request, exact) says: "
            f"{'ACCEPT' if verdict.accepted else 'REJECT'} ({verdict.reason})"
        )
        if verdict.accepted:
            say(
                f"  accepted: the escrow pays out in one linked batch of {len(done)} transfers "
                f"(expenses back, reward by shares, a {FEE_PERCENT}% fee {usd(fee)}); "
                "the rest returns to the principal"
            )
        else:
            say(
                f"  rejected: the escrow refunds the principal, less the expenses ({len(done)} "
                "transfers)"
            )

    # ----- 5. providers settle ------------------------------------------------------------

    def _settle_providers(self) -> None:
        stack, cast, say = self._stack(), self.cast, self.say
        say("step 5: the providers get paid and settle to the chain")
        stack.close_gateway()
        say(
            "  the gateway closes its channels: its book claims the charged vouchers into the "
            "ledger"
        )
        for name, key in (("LLM gateway", cast.gateway), ("search API", cast.search)):
            balance = stack.ledger.balance(f"{key.address}:{stack.asset.code}").available
            if balance <= 0:
                continue
            done = withdraw(stack.operator_url, stack.desk, key, balance)
            on_chain = stack.desk.token.balance_of(key.address)
            self.outcome.chain[name] = {
                "withdrawn": balance,
                "tx": done.get("tx"),
                "on_chain": on_chain,
            }
            say(
                f"  the {name} withdraws {usd(stack.asset.atomic(balance))} to its address on "
                "chain (tx "
                f"{str(done.get('tx'))[:12]}...): it holds {usd(stack.asset.atomic(on_chain))}"
            )
        # The books are read again: the claims landed after the tasks were settled.
        book = TaskBook(stack.ledger)
        for task_id in self.outcome.books:
            self.outcome.books[task_id] = book.books(task_id)

    def _stack(self) -> Stack:
        assert self.stack is not None
        return self.stack
