"""An agent's OpenAI-style client for a paid LLM gateway (`paywire gateway`): `PaidLLM`.

    llm = PaidLLM(key, "http://127.0.0.1:4030/v1", max_per_payment="$0.01")
    answer = llm.chat.completions.create(
        model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Hi"}], max_tokens=32
    )
    answer["choices"][0]["message"]["content"]      # OpenAI's shape, as plain dicts
    answer["paywire"]["charged"]                     # what it cost, in atomic units

    for chunk in llm.chat.completions.create(..., stream=True):   # chunks as OpenAI's
        print(chunk["choices"][0]["delta"].get("content", ""), end="")

It mirrors the ``openai`` package's ``client.chat.completions.create``,
``client.embeddings.create`` and ``client.models.list`` without depending on it, and pays by
itself, in one of two ways:

- **per request** (the default): each request's 402 quotes the most that request can cost;
  the client pays it with ``exact`` within `max_per_payment` and its `mandate`
  (`SyncPaywireClient`), checking the receipt;
- **per token** (``channel_deposit_atomic=...``): the first 402 opens a channel at the
  operator's facilitator with that deposit (`SyncChannelTransport`, `ChannelPayer`); each
  request then carries a voucher for its maximum on top of the charged total, and is
  charged what it used. A stream's charge arrives in its last chunk, from which the
  channel's charged total is taken, so the next voucher continues from it.

The gateway's ``paywire`` record of each charge is in ``answer["paywire"]``, in
`ChatStream.charge` after a stream, and in `PaidLLM.charges`. Any other ``httpx.Client``
that answers the gateway's 402s can be given as `http_client`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from paywire._json import loads as load_json
from paywire.client.channel_transport import SyncChannelTransport
from paywire.client.payer import DEFAULT_NETWORKS, Payer, load_mandate
from paywire.client.transport import SyncPaywireClient
from paywire.crypto.keys import PrivateKey
from paywire.errors import InvalidInput, PaywireError
from paywire.mandate import MandateChain
from paywire.money import Amount
from paywire.protocol.channel import CHANNEL_EXTENSION
from paywire.protocol.receipts import Receipt

DEFAULT_TIMEOUT_S = 120.0
"""How long to wait for the gateway's next bytes."""

MAX_KEPT_CHARGES = 1000
"""Charge records a `PaidLLM` keeps (the oldest are dropped past this)."""

MAX_ERROR_BODY_BYTES = 64 * 1024


class LLMError(PaywireError):
    """The gateway answered an error (OpenAI's shape: `status`, `body["error"]`)."""

    code = "llm_error"

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        error = body.get("error")
        message = error.get("message") if isinstance(error, Mapping) else error
        super().__init__(f"HTTP {status}: {message or body}")
        self.status = status
        self.body = dict(body)


class PaidLLM:
    """An OpenAI-style client (``.chat.completions.create``, ``.embeddings.create``,
    ``.models.list``) that pays the gateway at `base_url` by itself: per request with
    ``exact``, or per token through a channel opened with `channel_deposit_atomic`."""

    def __init__(
        self,
        key: PrivateKey,
        base_url: str,
        *,
        max_per_payment: str | Amount | Sequence[str | Amount] = "$0.01",
        mandate: MandateChain | str | Path | None = None,
        facilitators: Mapping[str, str] | None = None,
        networks: Sequence[str] = DEFAULT_NETWORKS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        channel_deposit_atomic: int | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.base_url = _base_url(base_url)
        self.channels: SyncChannelTransport | None = None
        self._payer: Payer | None = None
        if http_client is None and channel_deposit_atomic is not None:
            self._payer = Payer.create(
                key,
                max_per_payment=max_per_payment,
                networks=networks,
                facilitators=facilitators,
                mandate=mandate if mandate is not None else load_mandate(),
            )
            self.channels = SyncChannelTransport(self._payer, deposit_atomic=channel_deposit_atomic)
            http_client = httpx.Client(transport=self.channels, timeout=timeout_s)
        if http_client is None:
            client = SyncPaywireClient(
                key,
                max_per_payment=max_per_payment,
                mandate=mandate,
                facilitators=facilitators,
                networks=networks,
                timeout=timeout_s,
            )
            # Each request has its own price: terms remembered from the last one would be
            # refused, so the client waits for each request's 402.
            client.payer.pay_upfront = False
            self._payer = client.payer
            http_client = client
        self.http = http_client
        self.charges: list[dict[str, Any]] = []
        self.chat = _Chat(self)
        self.embeddings = _Embeddings(self)
        self.models = _Models(self)

    @property
    def payer(self) -> Payer | None:
        """The payer (its spending rule, mandate and receipts), unless `http_client` was
        given."""
        return self._payer

    @property
    def receipts(self) -> list[Receipt]:
        """The checked receipts of the payments made, oldest first."""
        return list(self.payer.receipts) if self.payer is not None else []

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> PaidLLM:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def keep(self, record: Mapping[str, Any], *, streamed: bool = False) -> None:
        """Keep a charge record; a stream's also tells its channel the charged total (an
        answer's came in its PAYMENT-RESPONSE, which the transport read)."""
        self.charges.append(dict(record))
        del self.charges[:-MAX_KEPT_CHARGES]
        if streamed and self.channels is not None:
            settlement = record.get("settlement")
            extensions = settlement.get("extensions") if isinstance(settlement, Mapping) else None
            state = extensions.get(CHANNEL_EXTENSION) if isinstance(extensions, Mapping) else None
            if isinstance(state, Mapping):
                for channel in self.channels.state.channels.values():
                    if channel.observe(state):
                        break

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        response = self.http.post(self.base_url + path, json=dict(body))
        data = _json(response)
        if response.status_code >= 400:
            raise LLMError(response.status_code, data)
        record = data.get("paywire")
        if isinstance(record, Mapping):
            self.keep(record)
        return data

    def get(self, path: str) -> dict[str, Any]:
        response = self.http.get(self.base_url + path)
        data = _json(response)
        if response.status_code >= 400:
            raise LLMError(response.status_code, data)
        return data

    def stream(self, path: str, body: Mapping[str, Any]) -> ChatStream:
        request = self.http.build_request("POST", self.base_url + path, json=dict(body))
        response = self.http.send(request, stream=True)
        if response.status_code >= 400:
            try:
                response.read()
            finally:
                response.close()
            raise LLMError(response.status_code, _json(response))
        return ChatStream(self, response)


class ChatStream:
    """A streamed chat answer: iterate for OpenAI's chunks (dicts). The gateway's final
    ``paywire`` chunk is not yielded: it is `charge` once the stream ended."""

    def __init__(self, llm: PaidLLM, response: httpx.Response) -> None:
        self._llm = llm
        self.response = response
        self.charge: dict[str, Any] | None = None
        self._lines = response.iter_lines()
        self._data: list[str] = []
        self._closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        while not self._closed:
            try:
                line = next(self._lines)
            except StopIteration:
                self.close()
                break
            if line.startswith("data:"):
                self._data.append(line[5:].removeprefix(" "))
                continue
            if line or not self._data:
                continue
            data, self._data = "\n".join(self._data), []
            if data == "[DONE]":
                self.close()
                break
            chunk = _parse(data)
            if "error" in chunk and "choices" not in chunk:
                self.close()
                raise LLMError(200, chunk)
            record = chunk.get("paywire")
            if isinstance(record, Mapping):
                self.charge = dict(record)
                self._llm.keep(record, streamed=True)
                continue
            return chunk
        raise StopIteration

    def close(self) -> None:
        """Stop reading (the gateway charges what it delivered until then)."""
        if not self._closed:
            self._closed = True
            self.response.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _Completions:
    def __init__(self, llm: PaidLLM) -> None:
        self._llm = llm

    def create(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        max_tokens: int | None = None,
        stream: bool = False,
        **options: Any,
    ) -> Any:
        """A chat completion: a dict, or with ``stream=True`` a `ChatStream` of chunks."""
        body: dict[str, Any] = {**options, "model": model, "messages": list(messages)}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if stream:
            body["stream"] = True
            return self._llm.stream("/chat/completions", body)
        return self._llm.post("/chat/completions", body)


class _Chat:
    def __init__(self, llm: PaidLLM) -> None:
        self.completions = _Completions(llm)


class _Embeddings:
    def __init__(self, llm: PaidLLM) -> None:
        self._llm = llm

    def create(self, *, model: str, input: str | Sequence[str], **options: Any) -> dict[str, Any]:
        """Embeddings of `input` (OpenAI's argument name)."""
        texts = input if isinstance(input, str) else list(input)
        return self._llm.post("/embeddings", {**options, "model": model, "input": texts})


class _Models:
    def __init__(self, llm: PaidLLM) -> None:
        self._llm = llm

    def list(self) -> dict[str, Any]:
        """The gateway's models, each with its ``pricing`` (free)."""
        return self._llm.get("/models")


def _base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"{url[:200]!r} is not an http(s) URL")
    url = url.rstrip("/")
    return url if parts.path.strip("/") else url + "/v1"


def _json(response: httpx.Response) -> dict[str, Any]:
    if len(response.content) > MAX_ERROR_BODY_BYTES and response.status_code >= 400:
        return {"error": {"message": f"HTTP {response.status_code}"}}
    try:
        value = load_json(response.content)
    except ValueError:
        return {"error": {"message": response.text[:500] or f"HTTP {response.status_code}"}}
    return value if isinstance(value, dict) else {"data": value}


def _parse(data: str) -> dict[str, Any]:
    try:
        value = load_json(data)
    except ValueError:
        raise LLMError(
            200, {"error": {"message": "the stream sent an event that is not JSON"}}
        ) from None
    if not isinstance(value, dict):
        raise LLMError(
            200, {"error": {"message": "the stream sent an event that is not an object"}}
        )
    return value
