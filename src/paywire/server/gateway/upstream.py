"""What serves the tokens: any OpenAI-compatible model behind one `Upstream` protocol.

Two upstreams come with paywire: `LocalModelUpstream` (the local SmolLM2 model, in process)
and `HttpUpstream` (any OpenAI-compatible HTTP API: llama.cpp's server, Ollama, vLLM, a
hosted API). The gateway hands an upstream a request body it has already checked and
bounded (``model``, ``messages``, ``max_tokens`` set; ``stream`` removed), and reads:

- `Upstream.chat`: a Chat Completions response (a dict, OpenAI's shape, with ``usage`` if
  the upstream reports it);
- `Upstream.chat_stream`: the stream's chunks (parsed ``data:`` objects, as OpenAI sends
  them, a last usage-only chunk where the upstream reports usage), as an async generator
  that the gateway closes when it stops early (the upstream then stops generating);
- `Upstream.embeddings`: an Embeddings response.

An upstream that fails raises `UpstreamError` with the status the gateway answers: the
upstream's own 4xx refusal of the request is passed on, anything else is 502 (503 when it
is busy, 504 when it timed out).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any, Protocol

Json = dict[str, Any]


class UpstreamError(Exception):
    """The upstream failed or refused: `status` is what the gateway answers."""

    def __init__(self, status: int, message: str, *, code: str = "upstream_failed") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class Upstream(Protocol):
    """An OpenAI-compatible model server."""

    @property
    def description(self) -> str:
        """What it is, for the banner and logs (no secrets)."""
        ...

    @property
    def context_window(self) -> int | None:
        """Its context size in tokens, where known (the gateway refuses larger requests)."""
        ...

    def serves(self, model: str) -> bool:
        """Whether it serves `model` (a remote API decides for itself: True)."""
        ...

    async def chat(self, body: Json) -> Json: ...

    def chat_stream(self, body: Json) -> AsyncGenerator[Json, None]: ...

    async def embeddings(self, body: Json) -> Json: ...

    async def aclose(self) -> None: ...


def delta_text(chunk: Mapping[str, Any]) -> str:
    """The text a stream chunk adds (content, reasoning, tool call arguments), all choices."""
    parts: list[str] = []
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return ""
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, Mapping) else None
        if not isinstance(delta, Mapping):
            continue
        for key in ("content", "reasoning_content", "refusal"):
            value = delta.get(key)
            if isinstance(value, str):
                parts.append(value)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                function = call.get("function") if isinstance(call, Mapping) else None
                if isinstance(function, Mapping):
                    for key in ("name", "arguments"):
                        value = function.get(key)
                        if isinstance(value, str):
                            parts.append(value)
    return "".join(parts)


def chunk_tokens(chunk: Mapping[str, Any]) -> int:
    """Completion tokens a stream chunk delivers: OpenAI-compatible servers send one token
    per chunk, so a chunk that adds text counts one (a server that packs several tokens
    in a chunk is undercounted, never overcounted; its reported usage corrects a stream
    that ran to its end)."""
    return 1 if delta_text(chunk) else 0


def chunk_usage(chunk: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``usage`` a chunk carries (the last chunk, with ``include_usage``), if any."""
    usage = chunk.get("usage")
    return usage if isinstance(usage, Mapping) else None


def is_usage_only(chunk: Mapping[str, Any]) -> bool:
    """A chunk with usage and no choices: the upstream's usage report, not content."""
    return chunk_usage(chunk) is not None and not chunk.get("choices")


def finish_reason(chunk: Mapping[str, Any]) -> str | None:
    choices = chunk.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, Mapping) and isinstance(choice.get("finish_reason"), str):
                return str(choice["finish_reason"])
    return None


def response_text(response: Mapping[str, Any]) -> str:
    """The completion text of a Chat Completions response (to count it where the upstream
    reports no usage)."""
    parts: list[str] = []
    choices = response.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            message = choice.get("message") if isinstance(choice, Mapping) else None
            if isinstance(message, Mapping):
                content = message.get("content")
                if isinstance(content, str):
                    parts.append(content)
                calls = message.get("tool_calls")
                if isinstance(calls, list):
                    parts.extend(str(call) for call in calls)
    return "".join(parts)
