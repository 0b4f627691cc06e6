"""Tasks over the operator's HTTP API, on real loopback HTTP and a real SQLite ledger:
post -> take (with the task mandate) -> pay a provider under it -> deliver -> accept ->
books; the dispute window and release; expiry; and hostile input: unsigned, wrongly
signed, tampered, stale or misdirected requests, actors in the wrong role, malformed and
huge bodies, unknown tasks. Every refusal is a 4xx with a JSON code, never a 500."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from paywire._dev.http import ServedApps
from paywire.client.direct import direct_payment
from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, Ledger, NewAccount, open_ledger, transfer
from paywire.ledger.names import wallet_account_id
from paywire.mandate import MandateChain
from paywire.money import USDC
from paywire.protocol import Facilitator
from paywire.service import operator_app
from paywire.service.tasks import MAX_TASK_BODY_BYTES, task_from_json
from paywire.tasks import REVIEW_WINDOW_S, issue_task_mandate
from paywire.tasks.checks import result_digest, sign_approval
from paywire.tasks.requests import MAX_REQUEST_SKEW_S, TaskRequest, sign_task_request

if TYPE_CHECKING:
    from conftest import FakeClock

FEES = "operator:fees:USDC"
FUNDED = 10_000_000


class World:
    """An operator on loopback, its ledger, a funded principal and three agents."""

    def __init__(self, base: str, ledger: Ledger, facilitator: Facilitator) -> None:
        self.base, self.ledger, self.facilitator = base, ledger, facilitator
        self.http = httpx.Client(base_url=base)  # one client: no TLS setup per request
        self.network = ledger.network
        self.principal, self.alice, self.bob, self.mallory = (
            PrivateKey.generate() for _ in range(4)
        )

    def wallet(self, key: PrivateKey) -> int:
        return self.ledger.balance(wallet_account_id(key.address, "USDC")).posted

    def post_body(self, task_id: str = "t1", key: PrivateKey | None = None, **more: Any) -> Any:
        params = {
            "budget": "2000000",
            "asset": "USDC",
            "reward": "1500000",
            "deadlineSeconds": 3600,
            "agents": [self.alice.address, self.bob.address],
            "description": "write a poem about ledgers",
            **more,
        }
        return sign_task_request(key or self.principal, "post", self.network, task_id, params)

    def send(self, path: str, body: Any = None, *, expect: int = 200) -> Any:
        return check(self.http.post(path, json=body), expect)

    def act(
        self,
        key: PrivateKey,
        action: str,
        params: Any = None,
        *,
        task: str = "t1",
        expect: int = 200,
    ) -> Any:
        body = sign_task_request(key, action, self.network, task, params or {})
        return self.send(f"/tasks/{task}/{action}", body, expect=expect)

    def get(self, path: str, *, expect: int = 200) -> Any:
        return check(self.http.get(path), expect)


def check(response: httpx.Response, expect: int) -> Any:
    assert response.status_code < 500, response.text
    assert response.status_code == expect, response.text
    data = response.json()
    if expect >= 400:
        assert set(data) == {"error", "message"} and data["message"], data
    return data


@pytest.fixture
def world(tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'tasks.db'}", clock=clock)
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount(FEES, USDC, AccountKind.FEES))
    facilitator = Facilitator.for_ledger(ledger, PrivateKey.generate())
    served = ServedApps()
    here = World(served.start(operator_app(facilitator, ledger)), ledger, facilitator)
    for key in (here.principal, here.alice, here.bob, here.mallory):
        account = wallet_account_id(key.address, "USDC")
        ledger.open_account(NewAccount(account, USDC, AccountKind.AGENT, owner=key.address))
    for key, atomic in ((here.principal, FUNDED), (here.alice, 1_000_000)):
        account = wallet_account_id(key.address, "USDC")
        ledger.submit(transfer(f"fund-{key.address}", "world", account, USDC.atomic(atomic)))
    yield here
    here.http.close()
    served.close()
    report = ledger.log.verify()
    assert report.ok, report.problems
    ledger.close()


def pay_under(world: World, payer: PrivateKey, chain: MandateChain, atomic: int) -> str:
    """`payer` pays a provider `atomic` under `chain` through the facilitator."""
    provider = PrivateKey.generate().address
    payment = direct_payment(
        payer,
        world.network,
        provider,
        USDC.atomic(atomic),
        mandate=chain,
        check_mandate=False,
        resource="http://tools.example/search",
    )
    settled = asyncio.run(world.facilitator.settle(*payment))
    assert settled.success, settled
    return provider


def test_post_take_pay_deliver_accept_books(world: World) -> None:
    info = world.get("/tasks/_info")
    assert info["network"] == world.network and info["maxSkewSeconds"] == MAX_REQUEST_SKEW_S
    assert info["domain"] == {"name": "paywire tasks", "version": "1"}

    posted = world.send("/tasks", world.post_body())
    task = posted["task"]
    assert (task["state"], task["budget"], task["allowance"]) == ("open", "2000000", "500000")
    assert world.wallet(world.principal) == FUNDED  # held, not yet moved
    assert world.send("/tasks", world.post_body())["task"] == task  # a retry: the same task

    chain = MandateChain(
        (
            issue_task_mandate(
                world.principal, task_from_json(task), world.alice.address, world.network
            ),
        )
    )
    taken = world.act(world.alice, "take", {"mandate": chain.to_dict()})["task"]
    assert taken["state"] == "taken" and taken["mandates"] == {world.alice.address: chain.ids[0]}

    provider = pay_under(world, world.alice, chain, 100_000)
    delivered = world.act(
        world.alice,
        "deliver",
        {"resultDigest": "ab" * 32, "shares": {world.alice.address: 3, world.bob.address: 1}},
    )["task"]
    assert delivered["deliveries"][world.alice.address]["resultDigest"] == "ab" * 32

    fee = {"account": FEES, "amount": "50000"}
    done = world.act(world.principal, "accept", {"fee": fee})
    assert done["task"]["state"] == "accepted" and "task:t1:accept" in done["transfers"]
    assert world.wallet(world.alice) == 1_000_000 - 100_000 + 100_000 + 1_125_000
    assert world.wallet(world.bob) == 375_000
    assert world.ledger.balance(FEES).posted == 50_000
    assert world.wallet(world.principal) == FUNDED - 100_000 - 1_500_000 - 50_000

    books = world.get("/tasks/t1/books")
    assert books["spentByProvider"] == {provider: "100000"} and books["spent"] == "100000"
    assert books["expenses"] == {world.alice.address: "100000"}
    assert books["shares"] == {world.alice.address: "1125000", world.bob.address: "375000"}
    assert (books["fee"], books["refunded"], books["held"]) == ("50000", "350000", "0")
    assert books["margin"] == str(1_500_000 - 100_000)

    assert world.get("/tasks/t1")["state"] == "accepted"
    mine = world.get(f"/tasks?principal={world.principal.address}")["tasks"]
    assert [item["id"] for item in mine] == ["t1"]
    assert [t["id"] for t in world.get(f"/tasks?agent={world.alice.address}")["tasks"]] == ["t1"]
    assert world.get(f"/tasks?agent={world.bob.address}")["tasks"] == []
    both = f"/tasks?principal={world.principal.address}&agent={world.alice.address}"
    assert [item["id"] for item in world.get(both)["tasks"]] == ["t1"]
    # Settled: a late delivery or another settlement is a conflict, a retry is the same.
    world.act(world.bob, "take", expect=409)
    world.act(world.principal, "reject", expect=409)
    assert world.act(world.principal, "accept", {"fee": fee})["task"]["state"] == "accepted"


def test_dispute_window_release_and_expiry(world: World, clock: FakeClock) -> None:
    world.send("/tasks", world.post_body(disputeWindowSeconds=3600))
    world.act(world.alice, "take")
    world.act(world.alice, "deliver", {"resultDigest": "cd" * 32})
    pending = world.act(world.principal, "accept")
    assert pending["task"]["state"] == "releasing" and pending["transfers"] == []
    assert pending["task"]["accepting"]["payouts"][0]["amount"] == "1500000"
    world.send("/tasks/t1/release", expect=409)  # still in its window
    world.act(world.mallory, "dispute", {"reason": "not mine"}, expect=403)
    clock.advance(3601)
    released = world.send("/tasks/t1/release")  # anyone, no signature, once due
    assert released["task"]["state"] == "accepted" and world.wallet(world.alice) == 2_500_000
    world.act(world.alice, "dispute", {"reason": "too late"}, expect=409)

    world.send("/tasks", world.post_body("t2"))
    world.send("/tasks/t2/expire", expect=409)  # in its review window
    clock.advance(3600 + REVIEW_WINDOW_S + 1)
    assert world.send("/tasks/t2/expire")["task"]["state"] == "expired"
    assert world.get("/tasks/t2/books")["refunded"] == "2000000"


def test_disputed_acceptance_is_not_released(world: World) -> None:
    world.send("/tasks", world.post_body(disputeWindowSeconds=3600))
    world.act(world.alice, "take")
    world.act(world.alice, "deliver", {"resultDigest": "ef" * 32})
    world.act(world.principal, "accept")
    disputed = world.act(world.alice, "dispute", {"reason": "the split is wrong"})["task"]
    assert disputed["state"] == "disputed"
    assert world.act(world.principal, "reject")["task"]["state"] == "rejected"
    assert world.wallet(world.principal) == FUNDED


def test_signatures_prove_the_actor(world: World) -> None:
    body = world.post_body()
    world.send("/tasks", {"request": body["request"]}, expect=400)  # unsigned
    world.send("/tasks", {**body, "signature": "0x1234"}, expect=400)
    world.send("/tasks", {**body, "signature": 5}, expect=400)

    # Signed by another key than the actor's.
    request = TaskRequest.from_json(body["request"])
    forged = world.mallory.sign_digest(request.digest())
    wrong = world.send("/tasks", {**body, "signature": "0x" + forged.hex()}, expect=403)
    assert wrong["error"] == "task_request_wrong_signer"

    # Tampered params: the budget raised after signing.
    params = json.loads(body["request"]["params"])
    tampered = {**body["request"], "params": json.dumps({**params, "budget": "9000000"})}
    assert world.send("/tasks", {**body, "request": tampered}, expect=403)["error"] == (
        "task_request_wrong_signer"
    )
    other_task = {**body["request"], "taskId": "t9"}
    world.send("/tasks", {**body, "request": other_task}, expect=403)

    # Stale or from the future, and for another ledger, action or task.
    for shift in (-MAX_REQUEST_SKEW_S - 60, MAX_REQUEST_SKEW_S + 60):
        stale = sign_task_request(
            world.principal, "post", world.network, "t1", params, issued_at=int(time.time()) + shift
        )
        assert world.send("/tasks", stale, expect=403)["error"] == "task_request_stale"
    elsewhere = sign_task_request(world.principal, "post", "paywire:other", "t1", params)
    assert world.send("/tasks", elsewhere, expect=403)["error"] == "task_request_mismatch"
    assert world.get("/tasks/t1", expect=404)["error"] == "task_not_found"

    world.send("/tasks", body)
    take = sign_task_request(world.alice, "take", world.network, "t1", {})
    world.send("/tasks/t1/deliver", take, expect=403)  # signed for take, sent to deliver
    world.send("/tasks", world.post_body("t2"))
    world.send("/tasks/t2/take", take, expect=403)  # signed for t1, sent for t2
    assert world.get("/tasks/t1")["takers"] == []


def test_roles(world: World) -> None:
    world.send("/tasks", world.post_body())
    assert world.act(world.mallory, "take", expect=403)["error"] == "agent_not_allowed"
    world.act(world.alice, "take")
    world.act(world.bob, "deliver", {"resultDigest": "ab" * 32}, expect=403)  # not taken
    refused = world.act(world.principal, "deliver", {"resultDigest": "ab" * 32}, expect=403)
    assert refused["error"] == "agent_not_allowed"
    world.act(world.alice, "deliver", {"resultDigest": "ab" * 32})
    for action in ("accept", "reject", "cancel"):
        refused = world.act(world.alice, action, expect=403)
        assert refused["error"] == "task_not_principal"
    world.act(world.mallory, "dispute", {"reason": "x"}, expect=409)  # nothing to dispute
    # A principal posting for another principal's wallet: the signer is the principal.
    assert world.send("/tasks", world.post_body("t3", key=world.mallory), expect=402)
    # A fee to an account that is not a fees account.
    alice = wallet_account_id(world.alice.address, "USDC")
    world.act(world.principal, "accept", {"fee": {"account": alice, "amount": "1"}}, expect=400)
    assert world.get("/tasks/t1")["state"] == "delivered"


def test_malformed_requests_are_400s(world: World) -> None:
    url, http = "/tasks", world.http
    for raw in (b"{", b"[]", b"\xff\xfe", b"null", b"[" * 100 + b"]" * 100):
        check(http.post(url, content=raw), 400)
    body = world.post_body()
    for request in (
        {**body["request"], "extra": 1},
        {**body["request"], "issuedAt": "now"},
        {**body["request"], "issuedAt": True},
        {**body["request"], "action": "steal"},
        {**body["request"], "actor": "0x1234"},
        {**body["request"], "taskId": "../etc"},
        {**body["request"], "params": ["not text"]},
        "not an object",
    ):
        world.send("/tasks", {**body, "request": request}, expect=400)

    def post(params: dict[str, Any], task_id: str = "t1", expect: int = 400) -> Any:
        signed = sign_task_request(world.principal, "post", world.network, task_id, params)
        return world.send("/tasks", signed, expect=expect)

    params = json.loads(body["request"]["params"])
    for bad in (
        {**params, "budget": "-1"},
        {**params, "budget": "1.5"},
        {**params, "budget": 2000000},
        {**params, "budget": "9" * 60},
        {**params, "reward": "3000000"},  # above the budget
        {**params, "deadlineSeconds": 0},
        {**params, "deadlineSeconds": 1.5},
        {**params, "agents": "0xabc"},
        {**params, "agents": []},
        {**params, "description": ""},
        {**params, "surprise": True},
        {**params, "check": {"kind": "command", "argv": ["rm", "-rf", "/"]}},
        {**params, "check": {"kind": "nonsense"}},
        {key: value for key, value in params.items() if key != "budget"},
    ):
        post(bad)
    assert post({**params, "asset": "EURC"}, expect=404)["error"] == "wallet_not_found"
    lone = sign_task_request(world.principal, "post", world.network, "t1", params)
    lone["request"]["params"] = lone["request"]["params"][:-1] + ',"x":"\ud800"}'
    check(http.post(url, content=json.dumps(lone).encode()), 400)
    for text in ("{not json", "[1]", "[" * 40 + "]" * 40):
        odd = TaskRequest(
            world.principal.address, "post", world.network, "t1", text, int(time.time())
        )
        world.send("/tasks", odd.sign(world.principal).to_json(), expect=400)

    post(params, expect=200)
    post({**params, "budget": "3000000"}, expect=409)  # other terms under the same id
    world.act(world.alice, "take", {"mandate": {"v": 1, "chain": []}}, expect=400)
    world.act(world.alice, "take", {"mandate": "eyJ"}, expect=400)
    world.act(
        world.alice, "deliver", {"resultDigest": "x" * 500}, expect=400
    )  # not taken: 400 first
    world.act(world.alice, "take")
    world.act(world.alice, "deliver", {"shares": {world.alice.address: 1}}, expect=400)
    bad_share = {"resultDigest": "ab", "shares": {world.alice.address: 0}}
    world.act(world.alice, "deliver", bad_share, expect=400)
    world.act(world.alice, "deliver", {"resultDigest": "ab", "shares": {"0x12": 1}}, expect=400)
    assert world.get("/tasks/t1")["deliveries"] == {}


def test_huge_bodies_unknown_tasks_and_actions(world: World) -> None:
    url, http = "/tasks", world.http
    huge = b'{"x": "' + b"a" * (MAX_TASK_BODY_BYTES + 10) + b'"}'
    check(http.post(url, content=huge), 413)

    def chunks() -> Iterator[bytes]:  # no content-length: counted as it streams
        yield b'{"x": "'
        for _ in range(MAX_TASK_BODY_BYTES // 1024 + 2):
            yield b"a" * 1024
        yield b'"}'

    check(http.post(url, content=chunks()), 413)
    check(http.post(url + "/t1/take", content=huge), 413)

    assert world.get("/tasks/nope", expect=404)["error"] == "task_not_found"
    world.get("/tasks/nope/books", expect=404)
    world.send("/tasks/nope/expire", expect=404)
    world.send("/tasks/nope/release", expect=404)
    assert world.act(world.alice, "take", task="nope", expect=404)["error"] == "task_not_found"
    world.act(world.principal, "accept", task="nope", expect=404)
    assert world.send("/tasks/t1/steal", {}, expect=404)["error"] == "unknown_action"
    world.get("/tasks/" + "x" * 200, expect=400)  # not a task id
    world.get("/tasks?principal=0x1234", expect=400)
    world.get("/tasks?agent=" + "a" * 1000, expect=400)


def test_task_ids_with_slashes(world: World) -> None:
    world.send("/tasks", world.post_body("team/t1"))
    assert world.get("/tasks/team/t1")["id"] == "team/t1"
    world.act(world.alice, "take", task="team/t1")
    assert world.get("/tasks/team/t1/books")["task"] == "team/t1"
    assert world.get("/tasks/team/t1")["takers"] == [world.alice.address]
    world.get("/tasks/team", expect=404)


def delivered_with_check(world: World, task_id: str, check: Any, result: str) -> None:
    world.send("/tasks", world.post_body(task_id, check=check))
    world.act(world.alice, "take", task=task_id)
    world.act(world.alice, "deliver", {"resultDigest": result_digest(result)}, task=task_id)


def test_decide_runs_the_tasks_check(world: World) -> None:
    schema = {"kind": "schema", "schema": {"type": "object", "required": ["poem"]}}
    good, bad = json.dumps({"poem": "debits and credits"}), json.dumps({"prose": "no"})
    delivered_with_check(world, "t1", schema, good)
    with_bad = world.send("/tasks/t1/decide", {"result": bad}, expect=400)
    assert "not the one delivered" in with_bad["message"]
    decided = world.send("/tasks/t1/decide", {"result": good})
    assert decided["verdict"]["accepted"] and decided["task"]["state"] == "accepted"
    assert decided["transfers"] and world.wallet(world.alice) == 1_000_000 + 1_500_000
    world.send("/tasks/t1/decide", {"result": good}, expect=409)  # settled already

    delivered_with_check(world, "t2", schema, bad)
    refused = world.send("/tasks/t2/decide", {"result": bad})
    assert not refused["verdict"]["accepted"] and refused["task"]["state"] == "rejected"


def test_decide_without_a_decision_moves_nothing(world: World) -> None:
    delivered_with_check(world, "t1", {"kind": "approval"}, "text")
    size = world.ledger.log.head().size
    undecided = world.send("/tasks/t1/decide", {"result": "text"}, expect=409)
    assert undecided["error"] == "check_undecided"
    judge = {"kind": "judge", "model": "smollm2", "criteria": "a poem"}
    delivered_with_check(world, "t2", judge, "text")
    size = world.ledger.log.head().size
    assert world.send("/tasks/t2/decide", {"result": "text"}, expect=409)["error"] == (
        "check_undecided"  # the operator has no judge client
    )
    assert world.ledger.log.head().size == size
    stranger = sign_approval(world.mallory, "t1", result_digest("text"), True)
    forged = world.send(
        "/tasks/t1/decide", {"result": "text", "approval": stranger.to_json()}, expect=400
    )
    assert forged["error"] == "invalid_approval"
    approval = sign_approval(world.principal, "t1", result_digest("text"), True)
    decided = world.send("/tasks/t1/decide", {"result": "text", "approval": approval.to_json()})
    assert decided["task"]["state"] == "accepted"
    for body in ({"result": 5}, {"result": "text", "extra": 1}, {"approval": {}}, []):
        world.send("/tasks/t2/decide", body, expect=400)
