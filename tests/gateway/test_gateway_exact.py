"""The gateway paid per request with ``exact``: the real local model in process, a real
ledger and facilitator, real loopback HTTP, the agent's `PaidLLM`."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from gateway_helpers import MODEL, FailingUpstream

from paywire.client import PaidLLM, SyncPaywireClient
from paywire.client.llm import LLMError
from paywire.crypto.keys import PrivateKey
from paywire.ledger import Ledger
from paywire.ledger.names import wallet_account_id
from paywire.meter import Charge, PriceBook, count_tokens, max_cost
from paywire.protocol import Facilitator
from paywire.protocol.headers import PAYMENT_SIGNATURE, decode_payment_required, encode
from paywire.server.gateway import BATCH_SETTLEMENT, GatewayApp, LocalModelUpstream, gateway_app

ASK = [{"role": "user", "content": "Name one color."}]


def balance(ledger: Ledger, key: PrivateKey) -> int:
    return ledger.balance(wallet_account_id(key.address, "USDC")).available


@pytest.fixture
def base(serve: Callable[[GatewayApp], str], gateway: GatewayApp) -> str:
    return serve(gateway)


def test_models_are_free_and_carry_their_prices(base: str, price_book: PriceBook) -> None:
    listed = httpx.get(f"{base}/v1/models").json()
    [model] = listed["data"]
    assert model["id"] == "smollm2-135m-instruct" and model["object"] == "model"
    assert model["aliases"] == ["smollm2"]
    assert model["pricing"] == {
        "asset": "USDC",
        "decimals": 6,
        "input_per_mtok": "1",
        "cached_input_per_mtok": "1",
        "output_per_mtok": "10",
    }
    assert listed["paywire"]["price_book"] == price_book.digest
    assert listed["paywire"]["schemes"] == ["exact", BATCH_SETTLEMENT]
    assert httpx.get(f"{base}/v1/models/smollm2").json()["id"] == "smollm2-135m-instruct"


def test_unpaid_request_gets_402_priced_for_that_request(
    base: str, price_book: PriceBook, ledger: Ledger, provider: PrivateKey
) -> None:
    prompt = count_tokens(MODEL, ASK)
    amounts = {}
    for max_tokens in (4, 16):
        body = {"model": MODEL, "messages": ASK, "max_tokens": max_tokens}
        response = httpx.post(f"{base}/v1/chat/completions", json=body)
        assert response.status_code == 402
        assert response.json()["error"]["type"] == "payment_required"
        required = decode_payment_required(response.headers["payment-required"])
        assert required.resource is not None
        assert required.resource.url.endswith("/v1/chat/completions")
        exact, channel = required.accepts
        assert (exact.scheme, exact.network) == ("exact", f"paywire:{ledger.ledger_id}")
        assert exact.pay_to == provider.address
        expected = max_cost(price_book.price(MODEL), prompt, max_tokens).atomic
        assert exact.amount == str(expected) == str(prompt * 1 + max_tokens * 10)
        meter = Charge.from_metadata(exact.extra["meter"])  # the price's own detail
        assert (meter.usage.input_tokens, meter.usage.output_tokens) == (prompt, max_tokens)
        assert (channel.scheme, channel.amount) == (BATCH_SETTLEMENT, str(expected))
        assert response.json()["accepts"][0]["amount"] == exact.amount
        amounts[max_tokens] = int(exact.amount)
    assert amounts[16] - amounts[4] == 12 * 10


def test_paid_exact_answer_is_openai_shaped_and_in_the_books(
    base: str, ledger: Ledger, agent: PrivateKey, provider: PrivateKey, operator: PrivateKey
) -> None:
    with PaidLLM(
        agent, f"{base}/v1", max_per_payment="$0.01", facilitators={"paywire:*": operator.address}
    ) as llm:
        answer = llm.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8)
        [receipt] = llm.receipts
    assert answer["object"] == "chat.completion" and answer["model"] == MODEL
    assert isinstance(answer["choices"][0]["message"]["content"], str)
    assert answer["choices"][0]["finish_reason"] in ("stop", "length")
    usage = answer["usage"]  # llama-cpp's own report
    assert usage["prompt_tokens"] == count_tokens(MODEL, ASK)
    assert 1 <= usage["completion_tokens"] <= 8
    paid = usage["prompt_tokens"] + 8 * 10  # exact pays the maximum: the prompt and 8 tokens
    record = answer["paywire"]
    assert (record["scheme"], record["charged"], record["authorized"]) == (
        "exact",
        str(paid),
        str(paid),
    )
    assert receipt.signer() == operator.address and receipt.amount == paid
    assert (receipt.payer, receipt.payee) == (agent.address, provider.address)
    assert balance(ledger, agent) == 1_000_000 - paid
    stored = ledger.transfer(receipt.transaction)
    assert stored.amount.atomic == paid
    assert stored.metadata["resource"].endswith("/v1/chat/completions")
    signed = json.loads(stored.authorization or "{}")  # the payment as the payer signed it
    assert signed["accepted"]["extra"]["meter"] == record["meter"]
    assert Charge.from_metadata(record["meter"]).amount.atomic == paid
    assert stored.metadata["meter"] == record["meter"]  # the books say what was bought


def test_paid_exact_stream_ends_with_the_charge(
    base: str, ledger: Ledger, agent: PrivateKey, operator: PrivateKey
) -> None:
    with PaidLLM(
        agent, f"{base}/v1", max_per_payment="$0.01", facilitators={"paywire:*": operator.address}
    ) as llm:
        stream = llm.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8, stream=True)
        chunks = list(stream)
        [receipt] = llm.receipts  # from the stream's PAYMENT-RESPONSE header
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text
    charge = stream.charge
    assert charge is not None and charge["scheme"] == "exact"
    assert int(charge["charged"]) == receipt.amount == 1_000_000 - balance(ledger, agent)
    assert charge["usage"]["completion_tokens"] <= 8
    assert charge["stopped"] in ("stop", "length")


def test_a_payment_for_a_cheaper_request_does_not_pay_a_dearer_one(
    base: str, agent: PrivateKey, ledger: Ledger
) -> None:
    small = {"model": MODEL, "messages": ASK, "max_tokens": 2}
    large = {**small, "max_tokens": 16}
    required = decode_payment_required(
        httpx.post(f"{base}/v1/chat/completions", json=small).headers["payment-required"]
    )
    with SyncPaywireClient(agent, max_per_payment="$0.01") as client:
        payer = client.payer
    payment = payer.pay(required, required.accepts[0])
    response = httpx.post(
        f"{base}/v1/chat/completions", json=large, headers={PAYMENT_SIGNATURE: encode(payment)}
    )
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "invalid_payment_requirements"
    assert balance(ledger, agent) == 1_000_000


def test_paid_embeddings(base: str, ledger: Ledger, agent: PrivateKey) -> None:
    with PaidLLM(agent, base, max_per_payment="$0.01") as llm:
        answer = llm.embeddings.create(model=MODEL, input=["red", "a blue sky"])
    assert answer["object"] == "list" and len(answer["data"]) == 2
    vector = answer["data"][0]["embedding"]
    assert len(vector) == 576 and all(isinstance(x, float) for x in vector)
    assert answer["usage"]["prompt_tokens"] >= 2
    assert int(answer["paywire"]["charged"]) == 1_000_000 - balance(ledger, agent) > 0


def test_an_upstream_that_fails_before_answering_costs_nothing(
    serve: Callable[[GatewayApp], str],
    local_upstream: LocalModelUpstream,
    price_book: PriceBook,
    provider: PrivateKey,
    facilitator: Facilitator,
    ledger: Ledger,
    agent: PrivateKey,
) -> None:
    broken = FailingUpstream(local_upstream, after=0)
    base = serve(gateway_app(broken, price_book, provider.address, facilitator))
    with PaidLLM(agent, base, max_per_payment="$0.01") as llm:
        with pytest.raises(LLMError) as failed:
            llm.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4)
        assert failed.value.status == 502
        with pytest.raises(LLMError) as failed_stream:
            llm.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4, stream=True)
        assert failed_stream.value.status == 502
    assert balance(ledger, agent) == 1_000_000  # verified, never settled
