"""The gateway paid per token through channels, with a fake `ChannelGate` (the real
`ChannelBook` is being built beside it): the real local model in process, real loopback
HTTP, and the faults: a maximum reached, a client that leaves, an upstream that breaks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from gateway_helpers import (
    MODEL,
    OUTPUT_ATOMIC,
    FailingUpstream,
    content_chunks,
    sse_events,
)
from starlette.types import Message

from paywire._dev.fake_channels import FakeChannels
from paywire.crypto.keys import PrivateKey
from paywire.meter import METER_METADATA_KEY, Charge, PriceBook, count_tokens
from paywire.protocol import Facilitator, errors
from paywire.protocol.channel import VOUCHER_BEHIND, ChannelProblem
from paywire.protocol.channel.wire import state_dict
from paywire.protocol.headers import (
    PAYMENT_SIGNATURE,
    decode_payment_required,
    decode_settle_response,
)
from paywire.server.gateway import BATCH_SETTLEMENT, GatewayApp, LocalModelUpstream, gateway_app

pytestmark = pytest.mark.anyio

STORY = [{"role": "user", "content": "Write a long story about a cat and a boat."}]


def prompt_tokens() -> int:
    return count_tokens(MODEL, STORY)


def paid(channels: FakeChannels, provider: PrivateKey, max_charge: int) -> dict[str, str]:
    return {PAYMENT_SIGNATURE: channels.voucher(provider.address, max_charge)}


def charged(channels: FakeChannels) -> tuple[int, Charge]:
    [(_, amount, metadata)] = channels.charges
    return amount, Charge.from_metadata(metadata[METER_METADATA_KEY])


@pytest.fixture
def base(serve: Callable[[GatewayApp], str], gateway: GatewayApp) -> str:
    return serve(gateway)


async def test_an_answer_is_charged_its_usage_within_the_voucher(
    base: str, channels: FakeChannels, provider: PrivateKey
) -> None:
    body = {"model": MODEL, "messages": STORY, "max_tokens": 12}
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{base}/v1/chat/completions", json=body, headers=paid(channels, provider, 10_000)
        )
    assert response.status_code == 200
    answer = response.json()
    usage = answer["usage"]
    amount, charge = charged(channels)
    assert amount == usage["prompt_tokens"] + usage["completion_tokens"] * OUTPUT_ATOMIC
    assert charge.usage_source == "upstream" and charge.amount.atomic == amount
    assert answer["paywire"]["meter"] == channels.charges[0][2][METER_METADATA_KEY]
    settled = decode_settle_response(response.headers["payment-response"])
    assert settled.transaction == "channel:ch-1:1" and settled.amount == str(amount)
    assert answer["paywire"]["scheme"] == BATCH_SETTLEMENT
    assert channels.released == []


async def test_a_stream_stops_at_the_authorized_maximum(
    base: str, channels: FakeChannels, provider: PrivateKey
) -> None:
    authorized = prompt_tokens() + 5 * OUTPUT_ATOMIC + 7  # the prompt, 5 tokens and change
    body = {"model": MODEL, "messages": STORY, "max_tokens": 32, "stream": True}
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{base}/v1/chat/completions", json=body, headers=paid(channels, provider, authorized)
        )
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    record = events[-2]["paywire"]  # type: ignore[index]
    assert len(content_chunks(events)) == 5
    amount, charge = charged(channels)
    assert amount == prompt_tokens() + 5 * OUTPUT_ATOMIC <= authorized
    assert (charge.usage.input_tokens, charge.usage.output_tokens) == (prompt_tokens(), 5)
    assert record["charged"] == str(amount) and record["stopped"] == "length"
    assert decode_settle_response(record["payment_response"]).amount == str(amount)


async def test_the_gateway_stops_an_upstream_that_overruns_the_maximum(
    serve: Callable[[GatewayApp], str],
    local_upstream: LocalModelUpstream,
    price_book: PriceBook,
    provider: PrivateKey,
    facilitator: Facilitator,
    channels: FakeChannels,
) -> None:
    overrunning = FailingUpstream(local_upstream, max_tokens=64)  # ignores the gateway's bound
    base = serve(gateway_app(overrunning, price_book, provider.address, facilitator, channels))
    body = {"model": MODEL, "messages": STORY, "max_tokens": 32, "stream": True}
    authorized = prompt_tokens() + 4 * OUTPUT_ATOMIC
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{base}/v1/chat/completions", json=body, headers=paid(channels, provider, authorized)
        )
    events = sse_events(response.text)
    assert len(content_chunks(events)) == 4
    last = [e for e in events if isinstance(e, dict) and e.get("choices")][-1]
    assert last["choices"][0]["finish_reason"] == "length"
    amount, charge = charged(channels)
    assert amount == authorized and charge.usage.output_tokens == 4
    assert events[-2]["paywire"]["stopped"] == "length"  # type: ignore[index]


async def test_a_client_that_leaves_pays_for_what_it_got(
    base: str, channels: FakeChannels, provider: PrivateKey
) -> None:
    """Over a real socket: the client reads 3 chunks of text and hangs up."""
    body = {"model": MODEL, "messages": STORY, "max_tokens": 48, "stream": True}
    read = 0
    async with (
        httpx.AsyncClient() as client,
        client.stream(
            "POST",
            f"{base}/v1/chat/completions",
            json=body,
            headers=paid(channels, provider, 10_000),
        ) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get(
                "content"
            ):
                read += 1
                if read == 3:
                    break
    await asyncio.to_thread(channels.wait_done)
    amount, charge = charged(channels)
    # What was handed to the socket before the hang-up was noticed: what the client read,
    # and at most a token or two in flight; far from the 48 it asked for.
    assert 3 <= charge.usage.output_tokens <= 6
    assert amount == prompt_tokens() + charge.usage.output_tokens * OUTPUT_ATOMIC
    assert charge.usage_source == "counted"


@pytest.mark.parametrize("leave_after", [0, 3])
async def test_a_client_that_leaves_pays_exactly_the_chunks_sent(
    gateway: GatewayApp, channels: FakeChannels, provider: PrivateKey, leave_after: int
) -> None:
    """At the ASGI level, where the moment of leaving is exact: after `leave_after` chunks
    of text were sent, the server hears ``http.disconnect``."""
    body = json.dumps({"model": MODEL, "messages": STORY, "max_tokens": 32, "stream": True})
    left = asyncio.Event()
    requested = False
    delivered = 0

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body.encode(), "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal delivered
        if message["type"] == "http.response.start" and leave_after == 0:
            left.set()
        if message["type"] == "http.response.body":
            delivered += len(content_chunks(sse_events(message.get("body", b"").decode())))
            if delivered == leave_after and leave_after:
                left.set()

    header = paid(channels, provider, 10_000)[PAYMENT_SIGNATURE]
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [
            (b"content-type", b"application/json"),
            (b"payment-signature", header.encode()),
        ],
        "query_string": b"",
        "scheme": "http",
    }
    await gateway(scope, receive, send)
    assert delivered == leave_after
    if leave_after == 0:
        assert channels.charges == [] and len(channels.released) == 1
    else:
        amount, charge = charged(channels)
        assert charge.usage.output_tokens == leave_after
        assert amount == prompt_tokens() + leave_after * OUTPUT_ATOMIC


async def test_an_upstream_failing_mid_stream_charges_what_was_delivered(
    serve: Callable[[GatewayApp], str],
    local_upstream: LocalModelUpstream,
    price_book: PriceBook,
    provider: PrivateKey,
    facilitator: Facilitator,
    channels: FakeChannels,
) -> None:
    broken = FailingUpstream(local_upstream, after=4)  # the role chunk and 3 of text
    base = serve(gateway_app(broken, price_book, provider.address, facilitator, channels))
    body = {"model": MODEL, "messages": STORY, "max_tokens": 32, "stream": True}
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{base}/v1/chat/completions", json=body, headers=paid(channels, provider, 10_000)
        )
    events = sse_events(response.text)
    assert len(content_chunks(events)) == 3
    assert events[-3]["error"]["type"] == "upstream_error"  # type: ignore[index]
    record = events[-2]["paywire"]  # type: ignore[index]
    assert record["stopped"] == "upstream_error"
    amount, charge = charged(channels)
    assert charge.usage.output_tokens == 3
    assert record["charged"] == str(amount) == str(prompt_tokens() + 3 * OUTPUT_ATOMIC)


async def test_an_upstream_failing_before_any_token_charges_nothing(
    serve: Callable[[GatewayApp], str],
    local_upstream: LocalModelUpstream,
    price_book: PriceBook,
    provider: PrivateKey,
    facilitator: Facilitator,
    channels: FakeChannels,
) -> None:
    broken = FailingUpstream(local_upstream, after=0)
    base = serve(gateway_app(broken, price_book, provider.address, facilitator, channels))
    async with httpx.AsyncClient() as client:
        for stream in (True, False):
            body = {"model": MODEL, "messages": STORY, "max_tokens": 8, "stream": stream}
            response = await client.post(
                f"{base}/v1/chat/completions", json=body, headers=paid(channels, provider, 10_000)
            )
            assert response.status_code == 502
            assert response.json()["error"]["type"] == "upstream_error"
    assert channels.charges == [] and len(channels.released) == 2


async def test_a_voucher_that_cannot_cover_the_prompt_is_refused(
    base: str, channels: FakeChannels, provider: PrivateKey
) -> None:
    body = {"model": MODEL, "messages": STORY, "max_tokens": 8}
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{base}/v1/chat/completions",
            json=body,
            headers=paid(channels, provider, prompt_tokens()),  # no room for one token
        )
    assert response.status_code == 402
    assert response.json()["error"]["code"] == errors.INSUFFICIENT_FUNDS
    assert channels.charges == [] and len(channels.released) == 1


async def test_a_corrective_refusal_carries_the_channel_state(
    base: str, channels: FakeChannels, provider: PrivateKey
) -> None:
    state = state_dict("ch-1", charged=120, deposit=10_000, claimed=0)
    channels.refusal = ChannelProblem(VOUCHER_BEHIND, "sign from the charged total", state)
    body = {"model": MODEL, "messages": STORY, "max_tokens": 8}
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{base}/v1/chat/completions", json=body, headers=paid(channels, provider, 500)
        )
    assert response.status_code == 402
    assert response.json()["error"]["code"] == VOUCHER_BEHIND
    assert response.json()["channelState"] == state
    required = decode_payment_required(response.headers["payment-required"])
    assert required.extensions == {BATCH_SETTLEMENT: {"channelState": state}}
    # Where a ChannelPayer resyncs from: the channel option's extra, in the SDK's words.
    [option] = [o for o in required.accepts if o.scheme == BATCH_SETTLEMENT]
    assert option.extra["channelState"]["chargedCumulativeAmount"] == "120"
