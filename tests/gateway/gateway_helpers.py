"""Helpers for the gateway tests: an upstream that fails or overruns, and reading
server-sent events (the fake `ChannelGate` is `paywire._dev.fake_channels.FakeChannels`)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from paywire.server.gateway import LocalModelUpstream, UpstreamError
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
