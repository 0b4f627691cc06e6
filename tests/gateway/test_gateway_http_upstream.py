"""The gateway in front of an OpenAI-compatible API over HTTP (`HttpUpstream`).

The upstream here is a tiny Starlette app served on loopback that replays canned OpenAI
answers: a mock of a remote LLM API (llama.cpp's server, vLLM, a hosted API), so that what
the gateway asks of it (``max_tokens``, ``stream_options.include_usage``) and what it does
with each kind of answer (usage reported or not, errors, a dead upstream) can be checked
exactly. The gateway itself is real, on real loopback HTTP, paid through a fake
`ChannelGate` (see conftest).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from gateway_helpers import MODEL, OUTPUT_ATOMIC, content_chunks, sse_events
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from paywire._dev.fake_channels import FakeChannels
from paywire._dev.http import free_port
from paywire.crypto.keys import PrivateKey
from paywire.meter import METER_METADATA_KEY, Charge, PriceBook, count_tokens, max_cost
from paywire.protocol import Facilitator
from paywire.protocol.headers import PAYMENT_SIGNATURE, decode_payment_required
from paywire.server.gateway import GatewayApp, HttpUpstream, gateway_app

pytestmark = pytest.mark.anyio

PRICES = """
[models."smollm2-135m-instruct"]
asset = "USDC"
input_per_mtok = "1"
output_per_mtok = "10"
aliases = ["smollm2"]

[models."canned-*"]
asset = "USDC"
input_per_mtok = "1"
output_per_mtok = "10"
"""

WORDS = ["Hello", " there", "!"]
USAGE = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
ASK = [{"role": "user", "content": "Say hello."}]


class Canned:
    """A remote OpenAI-compatible API, replayed: every request it got is in `seen`."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.usage = True

    def app(self) -> ASGIApp:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            ]
        )

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.seen.append(body)
        last = body["messages"][-1]["content"]
        if last == "refuse":
            return JSONResponse({"error": {"message": "bad prompt"}}, status_code=400)
        if last == "fail":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if body.get("stream"):
            return StreamingResponse(self._events(body), media_type="text/event-stream")
        answer: dict[str, Any] = {
            "id": "chatcmpl-canned",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(WORDS)},
                    "finish_reason": "stop",
                }
            ],
        }
        if self.usage:
            answer["usage"] = USAGE
        return JSONResponse(answer)

    async def _events(self, body: dict[str, Any]) -> AsyncIterator[str]:
        include = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            data = {
                "id": "chatcmpl-canned",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if include:
                data["usage"] = None
            return f"data: {json.dumps(data)}\n\n"

        yield chunk({"role": "assistant", "content": ""})
        for word in WORDS:
            yield chunk({"content": word})
        yield chunk({}, "stop")
        if include and self.usage:
            usage = {"id": "chatcmpl-canned", "choices": [], "usage": USAGE}
            yield f"data: {json.dumps(usage)}\n\n"
        yield "data: [DONE]\n\n"

    async def embeddings(self, request: Request) -> Response:
        body = await request.json()
        self.seen.append(body)
        data = [
            {"object": "embedding", "index": i, "embedding": [0.5, -0.5]}
            for i, _ in enumerate(body["input"])
        ]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 5, "total_tokens": 5},
            }
        )


@pytest.fixture
def canned() -> Canned:
    return Canned()


@pytest.fixture
def base(
    serve: Callable[[ASGIApp], str],
    canned: Canned,
    provider: PrivateKey,
    facilitator: Facilitator,
    channels: FakeChannels,
) -> str:
    upstream = HttpUpstream(serve(canned.app()) + "/v1", api_key="sk-test")
    app: GatewayApp = gateway_app(
        upstream, PriceBook.from_toml(PRICES), provider.address, facilitator, channels
    )
    return serve(app)


def paid(channels: FakeChannels, provider: PrivateKey) -> dict[str, str]:
    return {PAYMENT_SIGNATURE: channels.voucher(provider.address, 100_000)}


async def post(base: str, headers: dict[str, str], **body: Any) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(f"{base}/v1/chat/completions", json=body, headers=headers)


async def test_an_answer_is_charged_the_usage_the_upstream_reported(
    base: str, canned: Canned, channels: FakeChannels, provider: PrivateKey
) -> None:
    response = await post(base, paid(channels, provider), model=MODEL, messages=ASK, max_tokens=9)
    assert response.status_code == 200
    assert response.json()["usage"] == USAGE  # as the upstream reported it
    [seen] = canned.seen
    assert seen["max_tokens"] == 9 and "stream" not in seen
    [(_, amount, metadata)] = channels.charges
    assert amount == 11 + 3 * OUTPUT_ATOMIC
    assert Charge.from_metadata(metadata[METER_METADATA_KEY]).usage_source == "upstream"


@pytest.mark.parametrize("include_usage", [False, True])
async def test_a_stream_asks_for_usage_and_is_charged_by_it(
    base: str, canned: Canned, channels: FakeChannels, provider: PrivateKey, include_usage: bool
) -> None:
    response = await post(
        base,
        paid(channels, provider),
        model=MODEL,
        messages=ASK,
        max_tokens=9,
        stream=True,
        stream_options={"include_usage": include_usage},
    )
    [seen] = canned.seen
    assert seen["stream"] is True and seen["stream_options"] == {"include_usage": True}
    events = sse_events(response.text)
    assert [c["choices"][0]["delta"]["content"] for c in content_chunks(events)] == WORDS
    usage_chunks = [e for e in events if isinstance(e, dict) and "usage" in e and not e["choices"]]
    record = events[-2]["paywire"]  # type: ignore[index]
    assert record["charged"] == str(11 + 3 * OUTPUT_ATOMIC)
    assert record["meter"]["usage_source"] == "upstream"
    if include_usage:
        [usage] = usage_chunks
        assert usage["usage"]["prompt_tokens"] == 11
    else:
        assert usage_chunks == []


async def test_an_upstream_without_usage_is_counted(
    base: str, canned: Canned, channels: FakeChannels, provider: PrivateKey
) -> None:
    canned.usage = False
    prompt = count_tokens(MODEL, ASK)
    answer = await post(base, paid(channels, provider), model=MODEL, messages=ASK, max_tokens=9)
    completion = count_tokens(MODEL, "".join(WORDS))
    assert answer.json()["usage"]["completion_tokens"] == completion  # filled in, counted
    stream = await post(
        base, paid(channels, provider), model=MODEL, messages=ASK, max_tokens=9, stream=True
    )
    assert stream.status_code == 200
    (_, first, counted), (_, second, streamed) = channels.charges
    assert first == prompt + completion * OUTPUT_ATOMIC
    assert second == prompt + len(WORDS) * OUTPUT_ATOMIC  # a chunk is a token
    for metadata in (counted, streamed):
        assert metadata[METER_METADATA_KEY]["usage_source"] == "counted"


async def test_a_model_without_a_tokenizer_is_quoted_by_a_bound(
    base: str, channels: FakeChannels, provider: PrivateKey
) -> None:
    response = await post(base, {}, model="canned-large", messages=ASK, max_tokens=9)
    required = decode_payment_required(response.headers["payment-required"])
    bound = len(json.dumps([ASK, None], ensure_ascii=False).encode()) + 16
    price = PriceBook.from_toml(PRICES).price("canned-large")
    assert required.accepts[0].amount == str(max_cost(price, bound, 9).atomic)
    paid_answer = await post(
        base, paid(channels, provider), model="canned-large", messages=ASK, max_tokens=9
    )
    assert paid_answer.status_code == 200
    [(_, amount, _)] = channels.charges
    assert amount == 11 + 3 * OUTPUT_ATOMIC  # charged by the usage, not the bound


async def test_upstream_errors_are_passed_on_and_nothing_is_charged(
    base: str, channels: FakeChannels, provider: PrivateKey
) -> None:
    for content, status, kind in (
        ("refuse", 400, "invalid_request_error"),
        ("fail", 502, "upstream_error"),
    ):
        for stream in (False, True):
            messages = [{"role": "user", "content": content}]
            response = await post(
                base, paid(channels, provider), model=MODEL, messages=messages, stream=stream
            )
            assert response.status_code == status
            assert response.json()["error"]["type"] == kind
    assert channels.charges == [] and len(channels.released) == 4


async def test_a_dead_upstream_is_502(
    serve: Callable[[ASGIApp], str],
    provider: PrivateKey,
    facilitator: Facilitator,
    channels: FakeChannels,
) -> None:
    upstream = HttpUpstream(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert upstream.base_url.endswith("/v1")
    app = gateway_app(
        upstream, PriceBook.from_toml(PRICES), provider.address, facilitator, channels
    )
    base = serve(app)
    for stream in (False, True):
        response = await post(
            base, paid(channels, provider), model=MODEL, messages=ASK, stream=stream
        )
        assert response.status_code == 502
    assert channels.charges == [] and len(channels.released) == 2


async def test_embeddings_through_an_http_upstream(
    base: str, canned: Canned, channels: FakeChannels, provider: PrivateKey
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{base}/v1/embeddings",
            json={"model": "canned-embed", "input": ["a", "b"]},
            headers=paid(channels, provider),
        )
    assert response.status_code == 200
    assert [row["embedding"] for row in response.json()["data"]] == [[0.5, -0.5]] * 2
    assert canned.seen == [{"model": "canned-embed", "input": ["a", "b"]}]
    [(_, amount, metadata)] = channels.charges
    assert amount == 5  # the 5 input tokens the upstream reported, at 1 unit each
    assert metadata[METER_METADATA_KEY]["tokens"] == {"input": 5, "cached_input": 0, "output": 0}
