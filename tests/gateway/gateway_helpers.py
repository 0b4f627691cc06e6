"""Helpers for the gateway tests: a fake `ChannelGate`, an upstream that fails or overruns,
and reading server-sent events."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

from x402.schemas import PaymentPayload, PaymentRequirements, SettleResponse

from paywire.money import USDC, Asset
from paywire.protocol.headers import encode
from paywire.server.gateway import BATCH_SETTLEMENT, LocalModelUpstream, UpstreamError
from paywire.server.gateway.upstream import Json

TEST_PRICES = """
[models."smollm2-135m-instruct"]
asset = "USDC"
input_per_mtok = "1"      # 1 atomic unit (10^-6 USDC) per prompt token
output_per_mtok = "10"    # 10 atomic units per completion token
aliases = ["smollm2"]
"""
"""Prices high enough that every token shows in the atomic amounts."""

MODEL = "smollm2"
INPUT_ATOMIC, OUTPUT_ATOMIC = 1, 10


@dataclass(frozen=True)
class FakeAuthorization:
    channel_id: str
    payer: str
    network: str
    asset: Asset
    max_charge_atomic: int


@dataclass(frozen=True)
class FakeCharge:
    settled: SettleResponse

    def settle_response(self) -> SettleResponse:
        return self.settled


class FakeChannels:
    """An in-memory `ChannelGate`: a voucher's payload names its channel, payer and the
    most it authorizes (``maxCharge``); every call is recorded."""

    network = "paywire:channels-test"

    def __init__(self) -> None:
        self.authorized: list[FakeAuthorization] = []
        self.charges: list[tuple[FakeAuthorization, int, Mapping[str, Any]]] = []
        self.released: list[FakeAuthorization] = []
        self.refusal: Exception | None = None

    def requirements(self, price_max_atomic: int, pay_to: str) -> list[PaymentRequirements]:
        return [
            PaymentRequirements(
                scheme=BATCH_SETTLEMENT,
                network=self.network,
                asset="USDC",
                amount=str(price_max_atomic),
                pay_to=pay_to,
                max_timeout_seconds=300,
                extra={"channels": "fake"},
            )
        ]

    async def authorize(
        self, payload: PaymentPayload, requirements: PaymentRequirements
    ) -> FakeAuthorization:
        if self.refusal is not None:
            raise self.refusal
        data = payload.payload
        authorization = FakeAuthorization(
            str(data["channelId"]),
            str(data["payer"]),
            requirements.network,
            USDC,
            int(data["maxCharge"]),
        )
        self.authorized.append(authorization)
        return authorization

    async def charge(
        self,
        auth: FakeAuthorization,
        amount_atomic: int,
        metadata: Mapping[str, Any] | None = None,
    ) -> FakeCharge:
        authorization = auth
        assert metadata is not None
        assert 0 < amount_atomic <= authorization.max_charge_atomic
        self.charges.append((authorization, amount_atomic, metadata))
        return FakeCharge(
            SettleResponse(
                success=True,
                payer=authorization.payer,
                transaction=f"channel:{authorization.channel_id}:{len(self.charges)}",
                network=authorization.network,
                amount=str(amount_atomic),
            )
        )

    async def release(self, auth: FakeAuthorization) -> None:
        self.released.append(auth)

    def voucher(self, pay_to: str, max_charge: int, channel_id: str = "ch-1") -> str:
        """A ``PAYMENT-SIGNATURE`` header carrying a (fake) voucher."""
        [accepted] = self.requirements(max_charge, pay_to)
        payload = PaymentPayload(
            x402_version=2,
            accepted=accepted,
            payload={"channelId": channel_id, "payer": "0x" + "ab" * 20, "maxCharge": max_charge},
        )
        return encode(payload)

    def wait_done(self, timeout_s: float = 10.0) -> None:
        """Wait until a request was charged or released (a server finishes after its
        client left)."""
        deadline = time.monotonic() + timeout_s
        while not (self.charges or self.released):
            if time.monotonic() > deadline:
                raise AssertionError("the gateway neither charged nor released")
            time.sleep(0.01)


class FailingUpstream:
    """The local model, failing its stream after `after` chunks (a broken upstream), or
    ignoring the gateway's ``max_tokens`` (an upstream that overruns)."""

    def __init__(
        self,
        inner: LocalModelUpstream,
        *,
        after: int | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self.inner = inner
        self.after = after
        self.max_tokens = max_tokens
        self.description = "a failing upstream"
        self.context_window = inner.context_window

    def serves(self, model: str) -> bool:
        return self.inner.serves(model)

    async def chat(self, body: Json) -> Json:
        if self.after is not None:
            raise UpstreamError(502, "the upstream broke")
        return await self.inner.chat(body)

    async def chat_stream(self, body: Json) -> AsyncGenerator[Json, None]:
        if self.max_tokens is not None:
            body = {**body, "max_tokens": self.max_tokens}
        sent = 0
        chunks = self.inner.chat_stream(body)
        try:
            async for chunk in chunks:
                if self.after is not None and sent >= self.after:
                    raise UpstreamError(502, "the upstream broke mid-stream")
                sent += 1
                yield chunk
        finally:
            await chunks.aclose()

    async def embeddings(self, body: Json) -> Json:
        return await self.inner.embeddings(body)

    async def aclose(self) -> None:
        return None


def sse_events(text: str) -> list[dict[str, Any] | str]:
    """The ``data`` of each server-sent event of a stream's body (JSON parsed)."""
    events: list[dict[str, Any] | str] = []
    for block in text.split("\n\n"):
        lines = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if lines:
            data = "\n".join(lines)
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def content_chunks(events: list[dict[str, Any] | str]) -> list[dict[str, Any]]:
    """The chunks of an event list that carry text."""
    return [
        event
        for event in events
        if isinstance(event, dict)
        and event.get("choices")
        and event["choices"][0].get("delta", {}).get("content")
    ]
