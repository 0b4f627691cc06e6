"""The paid LLM gateway: an OpenAI-compatible API that charges per token or per request.

    from paywire.server.gateway import LocalModelUpstream, default_price_book, gateway_app

    app = gateway_app(LocalModelUpstream(), default_price_book(), pay_to="0xProvider",
                      facilitator=RemoteFacilitator("http://127.0.0.1:4020"))

In front of any OpenAI-compatible upstream (`HttpUpstream`: llama.cpp's server, Ollama,
vLLM, a hosted API) or the local model in process (`LocalModelUpstream`, the default), it
serves ``/v1/chat/completions`` (streaming or not), ``/v1/embeddings`` and ``/v1/models``,
and charges each request what its tokens cost by the operator's price book:

- **per token, through channels** (x402 ``batch-settlement``, `ChannelGate`): the voucher
  authorizes a maximum before the request runs; the gateway keeps the answer within it
  (a stream stops there) and charges the metered usage, never more; a stream the client
  cuts, or the upstream breaks, is charged for what was delivered only;
- **per request, with ``exact``** (for clients without channels): the price is the most
  this very request can cost (its prompt and ``max_tokens``), quoted in its own 402.

`paywire gateway` runs it (`paywire.cli.gateway`); `paywire.client.llm.PaidLLM` is the
agent's side.
"""

from __future__ import annotations

from importlib.resources import files

from paywire.meter import PriceBook
from paywire.server.gateway._errors import GatewayError
from paywire.server.gateway._requests import (
    DEFAULT_MAX_TOKENS,
    MAX_BODY_BYTES,
    MAX_COMPLETION_TOKENS,
    MAX_EMBEDDING_INPUTS,
    MAX_MESSAGES,
)
from paywire.server.gateway.app import GatewayApp, gateway_app
from paywire.server.gateway.channels import (
    BATCH_SETTLEMENT,
    ChannelAuthorizationLike,
    ChannelChargeLike,
    ChannelGate,
)
from paywire.server.gateway.http_upstream import HttpUpstream
from paywire.server.gateway.local import LocalModelUpstream
from paywire.server.gateway.upstream import Upstream, UpstreamError

DEFAULT_PRICE_BOOK = "default_prices.toml"
"""The price book shipped with the gateway: the local model's prices."""


def default_price_book() -> PriceBook:
    """The gateway's shipped price book (SmolLM2-135M-Instruct, in USDC)."""
    data = files(__name__).joinpath(DEFAULT_PRICE_BOOK).read_bytes()
    return PriceBook.from_toml(data)


__all__ = [
    "BATCH_SETTLEMENT",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_PRICE_BOOK",
    "MAX_BODY_BYTES",
    "MAX_COMPLETION_TOKENS",
    "MAX_EMBEDDING_INPUTS",
    "MAX_MESSAGES",
    "ChannelAuthorizationLike",
    "ChannelChargeLike",
    "ChannelGate",
    "GatewayApp",
    "GatewayError",
    "HttpUpstream",
    "LocalModelUpstream",
    "Upstream",
    "UpstreamError",
    "default_price_book",
    "gateway_app",
]
