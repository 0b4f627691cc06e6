"""Gateway overhead: tokens per second and time to first token through the paid gateway,
beside the same upstream called directly, in one run.

Goal (issue 5, "Speed"): the gateway at most 5% slower than its upstream.

- Direct (baseline): `LocalModelUpstream` (SmolLM2-135M in process, llama-cpp-python,
  ``n_threads=1``), its ``chat_stream`` called in this process.
- Through the gateway: `gateway_app` over that same upstream object (the model is loaded
  once), served by uvicorn on loopback in a thread (`paywire._dev.http.ServedApps`), one
  streaming ``POST /v1/chat/completions`` over HTTP (httpx), reading the server-sent events
  as a client would. The request is paid by a channel voucher that a fake `ChannelGate`
  authorizes and charges in memory (like the gateway tests' fake): this isolates the
  gateway's own overhead (parsing, pricing, metering each token, SSE framing, HTTP) from
  the payment's (the voucher book is measured in ``bench_channels``).

Both: the same prompt, ``max_tokens`` 64, temperature 0 and the fixed seed; runs alternate
direct / gateway, median of `RUNS` after a warm-up of each. Time to first token: from
sending the request to the first chunk carrying text. Tokens per second: text chunks after
the first over the time from the first to the last (decoding speed), and end to end
(all text chunks over the whole request).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._harness import Rate, report
from paywire._dev.fake_channels import FakeChannels
from paywire._dev.http import ServedApps
from paywire.crypto.keys import PrivateKey
from paywire.ledger import AccountKind, NewAccount, open_ledger
from paywire.meter import local_model_available
from paywire.money import USDC
from paywire.protocol import Facilitator
from paywire.protocol.headers import PAYMENT_SIGNATURE
from paywire.server.gateway import (
    LocalModelUpstream,
    default_price_book,
    gateway_app,
)

RUNS = 5
MAX_TOKENS = 64
MODEL = "smollm2"
MESSAGES = [{"role": "user", "content": "Write a long story about a cat and a boat."}]
BODY: dict[str, Any] = {
    "model": MODEL,
    "messages": MESSAGES,
    "max_tokens": MAX_TOKENS,
    "temperature": 0,
    "seed": 1234,
    "stream": True,
}
MAX_CHARGE = 10**9
"""What the fake voucher authorizes: far above any request's price."""


@dataclass(frozen=True)
class _Run:
    first_s: float
    total_s: float
    tokens: int

    @property
    def decode_per_s(self) -> float:
        spent = self.total_s - self.first_s
        return (self.tokens - 1) / spent if spent > 0 else 0.0


async def _timed(chunks: AsyncIterator[dict[str, Any]], start: float) -> _Run:
    first = 0.0
    tokens = 0
    async for chunk in chunks:
        choices = chunk.get("choices") or []
        if choices and choices[0].get("delta", {}).get("content"):
            tokens += 1
            if tokens == 1:
                first = time.perf_counter() - start
    return _Run(first, time.perf_counter() - start, tokens)


async def _direct(upstream: LocalModelUpstream) -> _Run:
    start = time.perf_counter()
    return await _timed(upstream.chat_stream(dict(BODY)), start)


async def _through(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> _Run:
    async def events() -> AsyncIterator[dict[str, Any]]:
        async with client.stream("POST", url, json=BODY, headers=headers) as response:
            if response.status_code != 200:
                raise AssertionError(f"the gateway answered {response.status_code}")
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    yield json.loads(line[6:])

    start = time.perf_counter()
    return await _timed(events(), start)


def main() -> None:
    if not local_model_available():
        print("\n## Gateway overhead: skipped (the `llm` extra is not installed)")
        return
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(_main(Path(folder)))


async def _main(folder: Path) -> None:
    started = time.perf_counter()
    upstream = LocalModelUpstream(n_threads=1)
    upstream.load()
    ledger = open_ledger(f"sqlite:///{folder / 'books.db'}")
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    provider = PrivateKey.generate()
    gate = FakeChannels("paywire:channels-bench")
    facilitator = Facilitator.for_ledger(ledger, PrivateKey.generate())
    app = gateway_app(upstream, default_price_book(), provider.address, facilitator, gate)
    served = ServedApps()
    try:
        url = served.start(app) + "/v1/chat/completions"
        headers = {PAYMENT_SIGNATURE: gate.voucher(provider.address, MAX_CHARGE, "bench")}
        direct: list[_Run] = []
        gateway: list[_Run] = []
        async with httpx.AsyncClient(timeout=120) as client:
            await _direct(upstream)  # warm-up
            await _through(client, url, headers)
            for _ in range(RUNS):
                direct.append(await _direct(upstream))
                gateway.append(await _through(client, url, headers))
    finally:
        served.close()
        await upstream.aclose()
        ledger.close()
    if len(gate.charges) != RUNS + 1:
        raise AssertionError(f"{len(gate.charges)} requests charged, not {RUNS + 1}")
    tokens = {run.tokens for run in direct + gateway}

    def median(runs: list[_Run], value: str) -> float:
        return statistics.median(getattr(run, value) for run in runs)

    direct_name = "direct: LocalModelUpstream.chat_stream (baseline)"
    gateway_name = "gateway: paid stream over loopback HTTP (fake channel gate)"
    rows = [(direct_name, direct), (gateway_name, gateway)]
    report(
        f"Gateway overhead: decoding tokens per second (median of {RUNS}, n_threads=1, "
        f"max_tokens {MAX_TOKENS}, text chunks per run: {sorted(tokens)})",
        [Rate(name, round(median(runs, "decode_per_s") * 1000), 1000.0) for name, runs in rows],
        baseline=direct_name,
        goal="the gateway >= 0.95x the direct upstream (at most 5% slower)",
    )
    report(
        f"Gateway overhead: whole requests (tokens per second end to end, median of {RUNS})",
        [
            Rate(name, round(statistics.median(r.tokens / r.total_s for r in runs) * 1000), 1000.0)
            for name, runs in rows
        ],
        baseline=direct_name,
    )
    print(f"\n{'time to first token (median)':<58} {'ms':>12} {'vs direct':>22}")
    base_first = median(direct, "first_s")
    for name, runs in rows:
        first = median(runs, "first_s")
        print(f"{name:<58} {first * 1000:>12.1f} {first / base_first:>21.2f}x")
    extra_ms = (median(gateway, "first_s") - base_first) * 1000
    print(f"(the gateway adds {extra_ms:+.1f} ms to the first token; lower is better here)")
    print(f"(run time {time.perf_counter() - started:.1f} s)")
