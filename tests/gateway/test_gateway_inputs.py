"""Bad requests get OpenAI-shaped errors with proper statuses, before any payment is asked
for, and never a 500."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from gateway_helpers import MODEL

from paywire._dev.fake_channels import FakeChannels
from paywire.crypto.keys import PrivateKey
from paywire.protocol.headers import PAYMENT_SIGNATURE
from paywire.server.gateway import MAX_BODY_BYTES, MAX_COMPLETION_TOKENS, GatewayApp

ASK = [{"role": "user", "content": "Hi"}]
CHAT = "/v1/chat/completions"


pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(gateway: GatewayApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


OK = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}


def _body(**changes: Any) -> bytes:
    return json.dumps({**OK, **changes}).encode()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        (json.dumps({"messages": OK["messages"]}).encode(), "invalid_request"),
        (_body(messages=[]), "invalid_request"),
        (_body(messages=[{"role": "robot", "content": "x"}]), "invalid_request"),
        (_body(messages=[{"role": "user", "content": 7}]), "invalid_request"),
        (_body(n=2), "invalid_request"),
        (_body(stream="yes"), "invalid_request"),
        (_body(stream_options=[]), "invalid_request"),
        (_body(max_tokens=0), "invalid_request"),
        (_body(max_tokens=1.5), "invalid_request"),
        (_body(max_tokens=True), "invalid_request"),
        (_body(max_tokens=4, max_completion_tokens=5), "invalid_request"),
    ],
)
async def test_bad_chat_requests_get_400(client: httpx.AsyncClient, body: bytes, code: str) -> None:
    response = await client.post(CHAT, content=body, headers={"content-type": "application/json"})
    assert error_of(response, 400)["code"] == code
    assert "payment-required" not in response.headers


async def test_too_large_max_tokens_is_400(client: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "messages": ASK, "max_tokens": MAX_COMPLETION_TOKENS + 1}
    error = error_of(await client.post(CHAT, json=body), 400)
    assert (error["code"], error["param"]) == ("max_tokens_too_large", "max_tokens")


async def test_past_the_context_window_is_400(client: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "messages": ASK, "max_tokens": 4000}  # the local context is 2048
    assert error_of(await client.post(CHAT, json=body), 400)["code"] == "context_length_exceeded"


async def test_a_huge_body_is_413(client: httpx.AsyncClient) -> None:
    text = "x" * (MAX_BODY_BYTES + 1)
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
    assert error_of(await client.post(CHAT, json=body), 413)["code"] == "request_too_large"


async def test_an_unknown_model_is_404_with_the_list(client: httpx.AsyncClient) -> None:
    for model in ("gpt-4o", "no such model!"):
        response = await client.post(CHAT, json={"model": model, "messages": ASK})
        error = error_of(response, 404)
        assert (error["code"], error["param"]) == ("model_not_found", "model")
        assert response.json()["models"] == ["smollm2-135m-instruct"]
    assert error_of(await client.get("/v1/models/gpt-4o"), 404)["code"] == "model_not_found"


async def test_routes_and_methods(client: httpx.AsyncClient) -> None:
    assert error_of(await client.get(CHAT), 405)["code"] == "method_not_allowed"
    assert error_of(await client.post("/v1/models"), 405)["code"] == "method_not_allowed"
    assert error_of(await client.get("/v1/completions"), 404)["code"] == "unknown_url"
    assert (await client.get("/health")).json()["status"] == "ok"


@pytest.mark.parametrize(
    "body",
    [
        {"model": MODEL},
        {"model": MODEL, "input": []},
        {"model": MODEL, "input": [1, 2, 3]},
        {"model": MODEL, "input": ""},
        {"model": MODEL, "input": "x", "encoding_format": "base64"},
    ],
)
async def test_bad_embedding_requests_get_400(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    error_of(await client.post("/v1/embeddings", json=body), 400)


@pytest.mark.parametrize(
    "header",
    ["not base64!", "e30=", "eyJ4NDAyVmVyc2lvbiI6IDJ9"],  # garbage, {}, {"x402Version": 2}
)
async def test_a_malformed_payment_is_400(client: httpx.AsyncClient, header: str) -> None:
    body = {"model": MODEL, "messages": ASK, "max_tokens": 4}
    response = await client.post(CHAT, json=body, headers={PAYMENT_SIGNATURE: header})
    error_of(response, 400)


async def test_a_payment_on_an_unknown_scheme_is_402(
    client: httpx.AsyncClient, channels: FakeChannels, provider: PrivateKey
) -> None:
    header = channels.voucher(provider.address, 100)
    payment = json.loads(base64.b64decode(header))
    payment["accepted"]["scheme"] = "upto"
    forged = base64.b64encode(json.dumps(payment).encode()).decode()
    body = {"model": MODEL, "messages": ASK, "max_tokens": 4}
    response = await client.post(CHAT, json=body, headers={PAYMENT_SIGNATURE: forged})
    assert error_of(response, 402)["code"] == "invalid_payment_requirements"
    assert channels.authorized == []
