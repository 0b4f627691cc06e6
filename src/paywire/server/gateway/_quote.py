"""What a request may cost before it runs (`Quote`), and what it did cost after.

A quote bounds a request by its prompt (counted with the model's own tokenizer where paywire
has one; otherwise bounded by the UTF-8 bytes of its JSON, which no byte-level tokenizer
exceeds) and its completion bound (``max_tokens``). Its `Quote.max_amount` is
`paywire.meter.max_cost`: the price of an ``exact`` payment, and the most a channel voucher
has to cover. A voucher that covers less caps the completion (`Quote.affordable_tokens`).
After the request, `Quote.charge` prices the usage and never exceeds what was authorized.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from paywire.meter import (
    PICO_PER_ATOMIC,
    Charge,
    InvalidUsage,
    ModelPrice,
    TokenizerUnavailable,
    Usage,
    UsageSource,
    cost,
    count_tokens,
    max_cost,
)
from paywire.money import Amount
from paywire.server.gateway._errors import bad_request
from paywire.server.gateway._requests import (
    DEFAULT_MAX_TOKENS,
    ChatRequest,
    EmbeddingRequest,
)
from paywire.server.gateway.upstream import Json, response_text

logger = logging.getLogger("paywire.gateway")

BOUND_OVERHEAD_TOKENS = 16
"""Added to a byte-length bound of a prompt: the chat template's few special tokens."""


@dataclass(frozen=True, slots=True)
class Quote:
    """The bounds of one request and what they cost."""

    price: ModelPrice
    prompt_tokens: int
    prompt_counted: bool
    """Counted by the model's tokenizer; False: a bound (UTF-8 bytes of the JSON)."""
    max_tokens: int
    min_tokens: int = 1
    """The fewest completion tokens worth serving (1 for a chat, 0 for embeddings)."""

    @property
    def max_amount(self) -> Amount:
        return max_cost(self.price, self.prompt_tokens, self.max_tokens)

    def bound_usage(self, output_tokens: int) -> Usage:
        """The usage at the bounds, priced as `max_cost` prices it (every input token at
        the dearer of the input and cached-input prices)."""
        price = self.price
        cached = self.prompt_tokens if price.cached_input_pico > price.input_pico else 0
        return Usage(self.prompt_tokens, output_tokens, cached)

    def bound_charge(self) -> Charge:
        """The charge at the bounds: what an ``exact`` payment pays (== `max_amount`)."""
        charge = cost(self.price, self.bound_usage(self.max_tokens), usage_source="counted")
        assert charge.amount == self.max_amount
        return charge

    def affordable_tokens(self, max_charge_atomic: int) -> int:
        """The most completion tokens (up to `max_tokens`) that `max_charge_atomic`
        covers after the prompt; -1 if it does not cover the prompt."""
        price = self.price
        worst_input = max(price.input_pico, price.cached_input_pico)
        room = max_charge_atomic * PICO_PER_ATOMIC - self.prompt_tokens * worst_input
        if room < 0:
            return -1
        if price.output_pico == 0:
            return self.max_tokens
        return min(self.max_tokens, room // price.output_pico)

    def charge(self, usage: Usage, source: UsageSource, limit_atomic: int) -> Charge:
        """The charge for `usage`, never above `limit_atomic` (an upstream that reports
        more than was authorized is charged the authorized part)."""
        charge = cost(self.price, usage, usage_source=source)
        if charge.amount.atomic <= limit_atomic:
            return charge
        logger.warning(
            "usage of %s priced above its authorization (%d > %d); charged within it",
            self.price.model,
            charge.amount.atomic,
            limit_atomic,
        )
        input_only = cost(self.price, Usage(usage.input_tokens, 0, usage.cached_input_tokens))
        if input_only.amount.atomic <= limit_atomic and self.price.output_pico > 0:
            room = limit_atomic * PICO_PER_ATOMIC - input_only.exact_pico
            output = min(usage.output_tokens, room // self.price.output_pico)
            return cost(
                self.price,
                Usage(usage.input_tokens, output, usage.cached_input_tokens),
                usage_source=source,
            )
        output = min(usage.output_tokens, max(0, self.affordable_tokens(limit_atomic)))
        return cost(self.price, self.bound_usage(output), usage_source="counted")

    def delivered_usage(self, output_tokens: int) -> tuple[Usage, UsageSource]:
        """Usage of a request cut short: the prompt as quoted, the tokens delivered."""
        return Usage(self.prompt_tokens, output_tokens), "counted"


async def quote_chat(price: ModelPrice, request: ChatRequest, context_window: int | None) -> Quote:
    """The quote of a chat request; 400 if it cannot fit the context window."""
    prompt, counted = await _count_prompt(request.model, request.messages, request.options)
    # A bound (not a count) says nothing of the context: the upstream judges that itself.
    room = context_window - prompt if context_window is not None and counted else None
    if room is not None and room < 1:
        raise bad_request(
            f"the prompt is {prompt} tokens; the context window is {context_window}",
            "context_length_exceeded",
            param="messages",
        )
    if request.max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS if room is None else min(DEFAULT_MAX_TOKENS, room)
    else:
        max_tokens = request.max_tokens
        if room is not None and max_tokens > room:
            raise bad_request(
                f"max_tokens {max_tokens} and the prompt's {prompt} tokens pass the context "
                f"window of {context_window} tokens",
                "context_length_exceeded",
                param="max_tokens",
            )
    return Quote(price, prompt, counted, max_tokens)


async def quote_embedding(price: ModelPrice, request: EmbeddingRequest) -> Quote:
    total, all_counted = 0, True
    for text in request.inputs:
        tokens, counted = await _count_prompt(request.model, text, {})
        total += tokens
        all_counted = all_counted and counted
    return Quote(price, total, all_counted, max_tokens=0, min_tokens=0)


async def _count_prompt(
    model: str, content: str | list[dict[str, Any]], extras: dict[str, Any]
) -> tuple[int, bool]:
    if not extras.get("tools"):
        try:
            return await asyncio.to_thread(count_tokens, model, content), True
        except TokenizerUnavailable:
            pass
        except InvalidUsage as error:
            raise bad_request(f"the prompt cannot be read: {error}", param="messages") from None
    payload: Any = content if isinstance(content, str) else [content, extras.get("tools")]
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return len(data.encode("utf-8")) + BOUND_OVERHEAD_TOKENS, False


def response_usage(response: Json, quote: Quote, limit_tokens: int) -> tuple[Usage, UsageSource]:
    """A non-streaming answer's usage: as the upstream reported it, else counted (the
    completion with the model's tokenizer, or at its bound where there is none)."""
    reported = response.get("usage")
    if quote.max_tokens == 0:  # embeddings: input tokens only
        tokens = reported.get("prompt_tokens") if isinstance(reported, dict) else None
        if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
            try:
                return Usage(tokens, 0), "upstream"
            except InvalidUsage:
                pass
        return Usage(quote.prompt_tokens, 0), "counted"
    if reported is not None:
        try:
            return Usage.from_openai(reported), "upstream"
        except InvalidUsage as error:
            logger.warning("the upstream's usage is unreadable (%s); counting it", error)
    try:
        output = count_tokens(quote.price.model, response_text(response))
    except (TokenizerUnavailable, InvalidUsage):
        output = limit_tokens
    return Usage(quote.prompt_tokens, min(output, limit_tokens)), "counted"
