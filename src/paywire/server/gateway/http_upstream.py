"""An upstream over HTTP: any OpenAI-compatible API (llama.cpp's server, Ollama, vLLM, a
hosted API), by its base URL (``http://host:8080/v1``; a URL without a path gets ``/v1``).

A stream is requested with ``stream_options: {"include_usage": true}``, so that the last
chunk carries the upstream's usage; its server-sent events are parsed here, bounded (a line
of more than `MAX_SSE_LINE_BYTES` is a broken upstream), and handed on as parsed chunks.
An upstream that gives no usage is counted by the gateway (`paywire.meter.count_tokens`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from paywire._json import loads as load_json
from paywire.errors import InvalidInput
from paywire.server.gateway.upstream import Json, UpstreamError

DEFAULT_TIMEOUT_S = 120.0
"""How long to wait for the upstream's next bytes (a long generation streams, a long
non-streaming one may take this long in all)."""

CONNECT_TIMEOUT_S = 10.0

MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""A non-streaming answer past this (embeddings of many long inputs reach megabytes) is
refused rather than held in memory."""

MAX_SSE_LINE_BYTES = 1024 * 1024
"""One server-sent event line: a chunk is a few hundred bytes."""

MAX_ERROR_CHARS = 500
"""How much of an upstream's error message is passed on."""


class HttpUpstream:
    """The OpenAI-compatible API at `base_url`, with `api_key` as its bearer token."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        context_window: int | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = normalized_base_url(base_url)
        self.context_window = context_window
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S)
        )

    @property
    def description(self) -> str:
        return f"OpenAI-compatible API at {self.base_url}"

    def serves(self, model: str) -> bool:
        return True  # the upstream says itself which models it has

    async def chat(self, body: Json) -> Json:
        return await self._post("/chat/completions", body)

    async def embeddings(self, body: Json) -> Json:
        return await self._post("/embeddings", body)

    async def chat_stream(self, body: Json) -> AsyncGenerator[Json, None]:
        request = {**body, "stream": True, "stream_options": {"include_usage": True}}
        url = self.base_url + "/chat/completions"
        try:
            async with self._client.stream(
                "POST", url, json=request, headers=self._headers
            ) as response:
                if response.status_code != 200:
                    raise refusal(response.status_code, await _read(response, MAX_ERROR_CHARS * 4))
                async for data in _events(response):
                    if data == "[DONE]":
                        return
                    chunk = _parse(data)
                    if "error" in chunk:
                        raise UpstreamError(502, f"the upstream failed: {_message(chunk)}")
                    yield chunk
        except httpx.TimeoutException:
            raise UpstreamError(
                504, "the upstream did not answer in time", code="timeout"
            ) from None
        except httpx.HTTPError as error:
            raise UpstreamError(502, f"the upstream failed: {type(error).__name__}") from None

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(self, path: str, body: Json) -> Json:
        try:
            async with self._client.stream(
                "POST", self.base_url + path, json=body, headers=self._headers
            ) as response:
                data = await _read(response, MAX_RESPONSE_BYTES)
                if response.status_code != 200:
                    raise refusal(response.status_code, data)
        except httpx.TimeoutException:
            raise UpstreamError(
                504, "the upstream did not answer in time", code="timeout"
            ) from None
        except httpx.HTTPError as error:
            raise UpstreamError(502, f"the upstream failed: {type(error).__name__}") from None
        return _parse(data.decode("utf-8", errors="replace"))


def normalized_base_url(base_url: str) -> str:
    """`base_url` without a trailing slash; ``/v1`` appended where it has no path."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"the upstream {base_url[:200]!r} is not an http(s) URL")
    url = base_url.rstrip("/")
    return url if parts.path.strip("/") else url + "/v1"


def refusal(status: int, data: bytes) -> UpstreamError:
    """The gateway's answer to an upstream's error status."""
    message = _message_of(data)
    if status in (401, 403):
        return UpstreamError(502, f"the upstream refused the gateway's credentials: {message}")
    if status == 429:
        return UpstreamError(503, f"the upstream is rate limited: {message}", code="busy")
    if 400 <= status < 500:
        return UpstreamError(status, f"the upstream refused the request: {message}", code="refused")
    return UpstreamError(502, f"the upstream failed ({status}): {message}")


async def _read(response: httpx.Response, limit: int) -> bytes:
    data = bytearray()
    async for piece in response.aiter_bytes():
        data += piece
        if len(data) > limit:
            if response.status_code != 200:
                break  # an error page: its beginning says enough
            raise UpstreamError(502, f"the upstream's answer is larger than {limit} bytes")
    return bytes(data)


async def _events(response: httpx.Response) -> AsyncGenerator[str, None]:
    """The ``data`` of each server-sent event (lines joined with newlines)."""
    buffer = b""
    data: list[str] = []
    async for piece in response.aiter_bytes():
        buffer += piece
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                break
            line = buffer[:end].rstrip(b"\r").decode("utf-8", errors="replace")
            buffer = buffer[end + 1 :]
            if not line:
                if data:
                    yield "\n".join(data)
                    data = []
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            # "event:", "id:", "retry:" and comments (":") carry nothing the gateway needs
        if len(buffer) > MAX_SSE_LINE_BYTES:
            raise UpstreamError(502, f"the upstream sent a line over {MAX_SSE_LINE_BYTES} bytes")
    if data:
        yield "\n".join(data)


def _parse(text: str) -> Json:
    try:
        value = load_json(text)
    except ValueError:
        raise UpstreamError(502, "the upstream answered something that is not JSON") from None
    if not isinstance(value, dict):
        raise UpstreamError(502, "the upstream answered JSON that is not an object")
    return value


def _message(body: Mapping[str, Any]) -> str:
    error = body.get("error")
    if isinstance(error, Mapping):
        error = error.get("message")
    return str(error if error is not None else body)[:MAX_ERROR_CHARS]


def _message_of(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    try:
        value = load_json(text)
    except ValueError:
        return text[:MAX_ERROR_CHARS] or "no message"
    return _message(value) if isinstance(value, Mapping) else text[:MAX_ERROR_CHARS]
