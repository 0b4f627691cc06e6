"""`paywire gateway`: the paid LLM gateway, an OpenAI-compatible API that charges per token.

    paywire gateway --pay-to provider                      # the local model, default prices
    paywire gateway --upstream http://127.0.0.1:8080/v1 --price-book prices.toml --pay-to 0x...

It serves `/v1/chat/completions`, `/v1/embeddings` and `/v1/models` in front of the local
model (SmolLM2-135M-Instruct in process, the ``llm`` extra) or any OpenAI-compatible URL,
and is paid through the operator's facilitator (`paywire serve`, ``--facilitator``):

- per request with x402 ``exact``, always;
- per token through channels (``batch-settlement``) when ``--pay-to`` names a wallet whose
  key this command can load (it signs the claims) and the facilitator serves ``/channels``:
  a `ChannelBook` keeps the vouchers in ``--vouchers`` (default ``gateway-vouchers.db`` in
  the paywire home) and claims them at the facilitator in batches, and on exit.
  ``--no-channels`` (or a bare 0x address) serves ``exact`` only, with no passphrase asked.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from paywire.cli import _common
from paywire.cli._common import console
from paywire.cli._keys import PASSPHRASE_FILE, load_key
from paywire.errors import InvalidInput

if TYPE_CHECKING:
    from paywire.crypto.keys import PrivateKey
    from paywire.meter import PriceBook
    from paywire.protocol.channel import ChannelBook
    from paywire.server.gateway import Upstream

DEFAULT_PORT = 4030
"""The gateway's port unless --port says otherwise (the facilitator's is 4020)."""

DEFAULT_FACILITATOR = "http://127.0.0.1:4020"
"""The operator's facilitator as `paywire serve` runs it by default."""

UPSTREAM_KEY_ENV = "PAYWIRE_UPSTREAM_KEY"
"""Where the upstream's API key is read from (not the command line: it shows in `ps`)."""

CHECK_TIMEOUT_S = 3.0
"""How long the start-up check of the facilitator waits."""

VOUCHERS_FILE = "gateway-vouchers.db"
"""Where, in the paywire home, the gateway's channel book keeps its vouchers."""


def gateway_command(
    pay_to: str = typer.Option(
        ..., "--pay-to", help="Who is paid: a wallet name (in the paywire home) or a 0x address."
    ),
    upstream: str = typer.Option(
        "local",
        "--upstream",
        help="'local' (SmolLM2-135M-Instruct in process) or an OpenAI-compatible base URL "
        "such as http://127.0.0.1:8080/v1 (llama.cpp's server, Ollama, vLLM, a hosted API).",
    ),
    price_book: Path = typer.Option(
        None,
        "--price-book",
        help="A TOML or JSON price book (default: the shipped one, for the local model).",
        show_default=False,
    ),
    facilitator: str = typer.Option(
        DEFAULT_FACILITATOR, "--facilitator", help="The operator's facilitator URL."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535),
    threads: int = typer.Option(
        1, "--threads", min=1, max=64, help="Generation threads of the local model."
    ),
    channels: bool = typer.Option(
        True,
        "--channels/--no-channels",
        help="Also charge per token through channels (needs --pay-to's wallet key).",
    ),
    vouchers: Path = typer.Option(
        None,
        "--vouchers",
        help=f"The channel book's file (default: {VOUCHERS_FILE} in the paywire home).",
        show_default=False,
    ),
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    """Run the paid LLM gateway: OpenAI's API in front of a model, paid per request
    (x402 exact) and per token (channels) through the facilitator."""
    import uvicorn

    from paywire.protocol import RemoteFacilitator
    from paywire.server.gateway import gateway_app

    facilitator = _url(facilitator, "--facilitator")
    book, book_name = _price_book(price_book)
    model = _upstream(upstream, os.environ.get(UPSTREAM_KEY_ENV) or None, threads)
    key = None
    if channels and not pay_to.startswith("0x"):
        key = load_key(pay_to, passphrase_file)
    address = key.address if key is not None else _pay_to(pay_to)
    remote = RemoteFacilitator(facilitator)
    reachable = _check(facilitator)
    channel_book, channel_note = (None, "off: --no-channels or a bare address (exact only)")
    if key is not None:
        path = vouchers or _common.home_dir() / VOUCHERS_FILE
        channel_book, channel_note = _channel_book(facilitator, key, path)
    app = gateway_app(model, book, address, remote, channel_book)
    _banner(host, port, model, book, book_name, address, facilitator, reachable, channel_note)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        asyncio.run(_close(model, remote, channel_book))


def _pay_to(value: str) -> str:
    from paywire.crypto.keys import parse_address

    if value.startswith("0x"):
        return parse_address(value)
    from paywire.crypto.keystore import KeyStore

    return KeyStore(_common.home_dir() / "keys").info(value).address


def _channel_book(url: str, key: PrivateKey, path: Path) -> tuple[ChannelBook | None, str]:
    """The channel book at the facilitator's ``/channels``, or None and why not."""
    import httpx

    from paywire.protocol.channel import ChannelBook, RemoteLedgerChannelBackend

    async def connect() -> RemoteLedgerChannelBackend:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S) as probe:
            return await RemoteLedgerChannelBackend.connect(url, key, client=probe)

    try:
        found = asyncio.run(connect())
    except Exception as error:  # no channels there: exact only, and say why
        return None, f"off: the facilitator serves no channels ({type(error).__name__})"
    # A fresh backend: its HTTP client belongs to the server's event loop, not the probe's.
    backend = RemoteLedgerChannelBackend(url, key, network=found.network, asset=found.asset)
    path.parent.mkdir(parents=True, exist_ok=True)
    return ChannelBook(backend, path), f"on, {found.network} {found.asset.code}; vouchers {path}"


def _price_book(path: Path | None) -> tuple[PriceBook, str]:
    from paywire.meter import PriceBook
    from paywire.server.gateway import default_price_book

    if path is None:
        return default_price_book(), "the default (local model)"
    return PriceBook.load(path), str(path)


def _upstream(value: str, api_key: str | None, threads: int) -> Upstream:
    from paywire.server.gateway import HttpUpstream, LocalModelUpstream

    if value == "local":
        local = LocalModelUpstream(n_threads=threads)
        local.load()  # a missing `llm` extra fails here, with how to install it
        return local
    return HttpUpstream(_url(value, "--upstream"), api_key)


def _url(value: str, flag: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) > 2048:
        raise InvalidInput(f"{flag} {value[:200]!r} is not an http(s) URL")
    return value


def _check(url: str) -> bool:
    """Whether the facilitator answers `/supported` now (the gateway starts either way)."""
    from paywire.protocol import RemoteFacilitator

    async def check() -> bool:
        probe = RemoteFacilitator(url, timeout_s=CHECK_TIMEOUT_S)
        try:
            await probe.fetch_supported()
        except Exception:
            return False
        finally:
            await probe.aclose()
        return True

    return asyncio.run(check())


async def _close(model: Upstream, remote: object, book: ChannelBook | None) -> None:
    await model.aclose()
    for closing in (remote, book.backend if book is not None else None):
        close = getattr(closing, "aclose", None)
        if close is not None:
            await close()


def _banner(
    host: str,
    port: int,
    model: Upstream,
    book: PriceBook,
    book_name: str,
    address: str,
    facilitator: str,
    reachable: bool,
    channels: str,
) -> None:
    lines = [
        f"paywire gateway on http://{host}:{port}/v1  (OpenAI-compatible; Ctrl-C stops)",
        f"  upstream      {model.description}",
        f"  price book    {book_name}, sha256 {book.digest[:16]}",
    ]
    for price in book:
        lines.append(
            f"    {price.priced_as:<24} input {price.per_mtok('input')} / output "
            f"{price.per_mtok('output')} {price.asset.code} per million tokens"
        )
    lines += [
        f"  paid to       {address}",
        f"  facilitator   {facilitator}"
        + ("" if reachable else "  (not answering now: payments wait for it)"),
        "  payments      exact per request (x402)",
        f"  channels      {channels}",
        "  routes        POST /v1/chat/completions (stream or not), POST /v1/embeddings, "
        "GET /v1/models (free)",
    ]
    for line in lines:
        console.print(line, markup=False, highlight=False)
