"""Reading a request: the body (bounded), then a checked Chat Completions or Embeddings
request. Every refusal is a `GatewayError` in OpenAI's shape (400, or 413 for a body past
`MAX_BODY_BYTES`), raised before any payment is asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Headers
from starlette.types import Receive

from paywire._json import loads as load_json
from paywire.meter.price_book import MAX_MODEL_ID_CHARS
from paywire.server.gateway._errors import GatewayError, bad_request

MAX_BODY_BYTES = 1024 * 1024
"""A request body past 1 MiB is refused (413): about 250k tokens of text, past any
context window the gateway serves."""

MAX_MESSAGES = 2048
"""Messages in one chat request."""

MAX_COMPLETION_TOKENS = 32_768
"""The largest ``max_tokens`` taken (400 past it); an upstream's context window may bound
it further."""

DEFAULT_MAX_TOKENS = 512
"""The completion bound of a request that sets none (a price needs a bound): at most this,
or what is left of the context window."""

MAX_EMBEDDING_INPUTS = 256
"""Texts in one embeddings request."""

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

CHAT_OPTIONS = frozenset(
    {
        "temperature",
        "top_p",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "logit_bias",
        "user",
    }
)
"""Fields passed on to the upstream as they are. Others are dropped: the gateway owns
``model``, ``messages``, ``max_tokens``, ``stream`` and ``stream_options``, refuses ``n``
other than 1 (a price covers one answer), and passes nothing it does not know."""

EMBEDDING_OPTIONS = frozenset({"dimensions", "user"})


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None
    """What the client asked for; None: `DEFAULT_MAX_TOKENS` or what the context leaves."""
    stream: bool
    include_usage: bool
    options: dict[str, Any] = field(default_factory=dict)

    def upstream_body(self, max_tokens: int) -> dict[str, Any]:
        """The body an upstream gets: the checked fields, and the completion bound."""
        return {
            **self.options,
            "model": self.model,
            "messages": self.messages,
            "max_tokens": max_tokens,
        }


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    model: str
    inputs: list[str]
    options: dict[str, Any] = field(default_factory=dict)

    def upstream_body(self) -> dict[str, Any]:
        return {**self.options, "model": self.model, "input": self.inputs}


async def read_body(receive: Receive, headers: Headers, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, or 413 as soon as it is known to pass `limit`."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError(400, "the client left before its request", code="disconnected")
        body += message.get("body", b"")
        if len(body) > limit:
            raise too_large(limit)
        if not message.get("more_body", False):
            return bytes(body)


def too_large(limit: int) -> GatewayError:
    return GatewayError(
        413, f"the request body is larger than {limit} bytes", code="request_too_large"
    )


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        value = load_json(body)
    except (ValueError, RecursionError):
        raise bad_request("the request body is not valid JSON", "invalid_json") from None
    if not isinstance(value, dict):
        raise bad_request("the request body must be a JSON object", "invalid_json")
    return value


def parse_chat(body: bytes) -> ChatRequest:
    data = parse_json(body)
    model = _model(data)
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list", param="messages")
    if len(messages) > MAX_MESSAGES:
        raise bad_request(f"at most {MAX_MESSAGES} messages", param="messages")
    for index, message in enumerate(messages):
        _check_message(index, message)
    n = data.get("n")
    if n is not None and n != 1:
        raise bad_request("only n=1 is served (a price covers one answer)", param="n")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be true or false", param="stream")
    stream_options = data.get("stream_options")
    include_usage = False
    if stream_options is not None:
        if not isinstance(stream_options, dict) or not isinstance(
            stream_options.get("include_usage", False), bool
        ):
            raise bad_request(
                "'stream_options' must be {\"include_usage\": bool}", param="stream_options"
            )
        include_usage = bool(stream_options.get("include_usage", False))
    options = {name: value for name, value in data.items() if name in CHAT_OPTIONS}
    return ChatRequest(model, messages, _max_tokens(data), stream, include_usage, options)


def parse_embedding(body: bytes) -> EmbeddingRequest:
    data = parse_json(body)
    model = _model(data)
    raw = data.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs:
        raise bad_request("'input' must be text or a non-empty list of texts", param="input")
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        raise bad_request(f"at most {MAX_EMBEDDING_INPUTS} inputs", param="input")
    for item in inputs:
        if not isinstance(item, str) or not item:
            raise bad_request(
                "every input must be non-empty text (token arrays are not taken)", param="input"
            )
    encoding = data.get("encoding_format", "float")
    if encoding != "float":
        raise bad_request("only encoding_format 'float' is served", param="encoding_format")
    options = {name: value for name, value in data.items() if name in EMBEDDING_OPTIONS}
    return EmbeddingRequest(model, inputs, options)


def _model(data: dict[str, Any]) -> str:
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("'model' is required", param="model")
    if len(model) > MAX_MODEL_ID_CHARS:
        raise bad_request(f"'model' is longer than {MAX_MODEL_ID_CHARS} characters", param="model")
    return model


def _check_message(index: int, message: object) -> None:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise bad_request(f"{where} must be an object", param=where)
    role = message.get("role")
    if role not in ROLES:
        raise bad_request(f"{where}.role must be one of {', '.join(sorted(ROLES))}", param=where)
    content = message.get("content")
    if content is None and role == "assistant":
        return  # a tool-calling turn
    if not isinstance(content, str | list):
        raise bad_request(f"{where}.content must be text or a list of parts", param=where)


def _max_tokens(data: dict[str, Any]) -> int | None:
    values = {
        name: data[name]
        for name in ("max_tokens", "max_completion_tokens")
        if data.get(name) is not None
    }
    if not values:
        return None
    if len(set(map(repr, values.values()))) > 1:
        raise bad_request("max_tokens and max_completion_tokens differ", param="max_tokens")
    name, value = next(iter(values.items()))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad_request(f"'{name}' must be a whole number of at least 1", param=name)
    if value > MAX_COMPLETION_TOKENS:
        raise bad_request(
            f"'{name}' is {value}; the most this gateway serves is {MAX_COMPLETION_TOKENS}",
            "max_tokens_too_large",
            param=name,
        )
    return value
