"""Deciding a delivered task with its acceptance check (`TaskBook.decide`): the verdict
settles the task; a check that cannot decide moves nothing and leaves the task open.

The judge's client here is a stand-in for the paid LLM gateway (the real gateway and model
are exercised in test_task_checks.py and by the demo's test)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from paywire.client.llm import LLMError
from paywire.crypto.keys import PrivateKey, parse_address
from paywire.ledger import AccountKind, Ledger, NewAccount, transfer
from paywire.ledger.names import wallet_account_id
from paywire.money import USDC
from paywire.tasks import InvalidTask, TaskBook, TaskError, TaskState
from paywire.tasks.checks import (
    CheckUndecided,
    JudgeCheck,
    SchemaCheck,
    result_digest,
    sign_approval,
)

USD = USDC.atomic
PRINCIPAL_KEY = PrivateKey(b"\x11" * 32)
PRINCIPAL = PRINCIPAL_KEY.address
ALICE = parse_address("0x" + "b2" * 20)
FUNDED = 10_000_000
SCHEMA = {"type": "object", "required": ["summary"], "properties": {"summary": {"type": "string"}}}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def book(ledger: Ledger) -> Iterator[TaskBook]:
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    for address in (PRINCIPAL, ALICE):
        ledger.open_account(
            NewAccount(wallet_account_id(address, "USDC"), USDC, AccountKind.AGENT, owner=address)
        )
    ledger.submit(transfer("fund", "world", wallet_account_id(PRINCIPAL, "USDC"), USD(FUNDED)))
    yield TaskBook(ledger)
    report = ledger.log.verify()
    assert report.ok, report.problems
    assert set(report.assets.values()) == {0}


def deliver(book: TaskBook, result: str, check: Any) -> None:
    book.post("t1", PRINCIPAL, USD(1_000), 3600, [ALICE], "summarize", check=check)
    book.take("t1", ALICE)
    book.deliver("t1", ALICE, result_digest(result))


def balance(book: TaskBook, address: str) -> int:
    return book.ledger.balance(wallet_account_id(address, "USDC")).posted


class Judge:
    """Answers like the gateway's chat completions (a stand-in), or fails."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.chat = self
        self.completions = self

    def create(self, **request: Any) -> dict[str, Any]:
        if self.answer is None:
            raise LLMError(502, {"error": {"message": "the upstream model failed"}})
        return {
            "choices": [{"message": {"role": "assistant", "content": self.answer}}],
            "paywire": {"charged": "7"},
        }


@pytest.mark.anyio
async def test_a_schema_check_accepts_and_pays(book: TaskBook) -> None:
    result = json.dumps({"summary": "channels batch payments"})
    deliver(book, result, SchemaCheck(SCHEMA))
    decision = await book.decide("t1", result)
    assert decision.verdict.accepted and decision.transfers
    assert book.task("t1").state is TaskState.ACCEPTED
    assert balance(book, ALICE) == 1_000


@pytest.mark.anyio
async def test_a_schema_check_rejects_and_refunds(book: TaskBook) -> None:
    result = json.dumps({"title": "no summary"})
    deliver(book, result, SchemaCheck(SCHEMA))
    decision = await book.decide("t1", result)
    assert not decision.verdict.accepted
    assert book.task("t1").state is TaskState.REJECTED
    assert balance(book, PRINCIPAL) == FUNDED and balance(book, ALICE) == 0


@pytest.mark.anyio
async def test_a_judge_that_errors_moves_nothing(book: TaskBook) -> None:
    deliver(book, "a summary", JudgeCheck(model="smollm2", criteria="is it a summary"))
    size = book.ledger.log.head().size
    for judge in (Judge(None), Judge("The answer is unclear")):
        with pytest.raises(CheckUndecided):
            await book.decide("t1", "a summary", llm=judge)
        assert book.task("t1").state is TaskState.DELIVERED
        assert book.ledger.log.head().size == size  # not one entry written
    with pytest.raises(CheckUndecided):
        await book.decide("t1", "a summary")  # no client for the judge
    decision = await book.decide("t1", "a summary", llm=Judge("YES"))  # decided later
    assert decision.verdict.accepted and book.task("t1").state is TaskState.ACCEPTED


@pytest.mark.anyio
async def test_an_approval_check_needs_the_principals_signature(book: TaskBook) -> None:
    deliver(book, "text", {"kind": "approval"})
    with pytest.raises(CheckUndecided):
        await book.decide("t1", "text")
    stranger = sign_approval(PrivateKey(b"\x22" * 32), "t1", result_digest("text"), True)
    with pytest.raises(InvalidTask):
        await book.decide("t1", "text", approval=stranger)
    assert book.task("t1").state is TaskState.DELIVERED
    approval = sign_approval(PRINCIPAL_KEY, "t1", result_digest("text"), False)
    decision = await book.decide("t1", "text", approval=approval)
    assert not decision.verdict.accepted and book.task("t1").state is TaskState.REJECTED


@pytest.mark.anyio
async def test_only_the_delivered_result_of_a_task_with_a_check(book: TaskBook) -> None:
    deliver(book, "the result", JudgeCheck(model="smollm2", criteria="c"))
    with pytest.raises(InvalidTask):
        await book.decide("t1", "another result", llm=Judge("YES"))
    book.post("t2", PRINCIPAL, USD(1_000), 3600, [ALICE], "no check")
    with pytest.raises(TaskError):
        await book.decide("t2", "x")
    assert book.task("t1").state is TaskState.DELIVERED
    book.reject("t1")
    book.cancel("t2")


def test_checks_that_cannot_be_built_are_refused_at_post(book: TaskBook) -> None:
    with pytest.raises(InvalidTask):
        book.post("t1", PRINCIPAL, USD(1_000), 60, [ALICE], "x", check={"kind": "telepathy"})
    with pytest.raises(InvalidTask):
        book.post("t1", PRINCIPAL, USD(1_000), 60, [ALICE], "x", check={"kind": "schema"})
    deep = {"kind": "schema", "schema": {"type": "object", "properties": {"a": {"type": "array"}}}}
    assert book.post("t1", PRINCIPAL, USD(1_000), 60, [ALICE], "x", check=deep).document.check
    book.cancel("t1")
