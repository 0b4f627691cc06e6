"""Token usage: how many AI tokens a request consumed, as an upstream reports it.

`Usage` follows OpenAI's meaning, which both its Chat Completions and Responses APIs use:
`input_tokens` counts *all* prompt tokens, `cached_input_tokens` is the part of them served
from the prompt cache (so at most `input_tokens`), and `output_tokens` counts every
completion token, reasoning tokens included. A charge prices ``input - cached`` at the input
price, ``cached`` at the cached-input price and ``output`` at the output price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from paywire.meter._errors import InvalidUsage

MAX_TOKENS = 10**12
"""Bound of one token count: a trillion tokens is far past any context window or any sum a
channel accumulates, so a larger number is a bug or an attack."""

_NAMES = {
    # Chat Completions (and every OpenAI-compatible server: vLLM, llama.cpp, ...).
    "chat": ("prompt_tokens", "completion_tokens", "prompt_tokens_details"),
    # Responses API.
    "responses": ("input_tokens", "output_tokens", "input_tokens_details"),
}


@dataclass(frozen=True, slots=True)
class Usage:
    """Whole, bounded token counts of one request (or the running sum of several)."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("input_tokens", "output_tokens", "cached_input_tokens"):
            _check_count(getattr(self, name), name)
        if self.cached_input_tokens > self.input_tokens:
            raise InvalidUsage(
                f"cached_input_tokens ({self.cached_input_tokens}) is more than input_tokens "
                f"({self.input_tokens}); cached tokens are part of the input"
            )

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens that were not served from the cache."""
        return self.input_tokens - self.cached_input_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        """The sum of two usages (a channel meters the running sum of its requests)."""
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
        )

    @classmethod
    def from_openai(cls, usage: object) -> Usage:
        """Read an OpenAI-style ``usage`` object (parsed JSON).

        Chat Completions names (``prompt_tokens``, ``completion_tokens``,
        ``prompt_tokens_details.cached_tokens``) and Responses API names (``input_tokens``,
        ``output_tokens``, ``input_tokens_details.cached_tokens``) are both read; if both are
        present they must agree. A present ``total_tokens`` must equal input plus output.
        Other fields (audio, reasoning details, provider extras) are ignored.
        """
        if not isinstance(usage, Mapping):
            raise InvalidUsage(f"usage must be a JSON object, not {type(usage).__name__}")
        read: dict[str, tuple[int, int, int]] = {}
        for style, (input_name, output_name, details_name) in _NAMES.items():
            present = [name for name in (input_name, output_name) if name in usage]
            if not present:
                continue
            if len(present) == 1:
                missing = output_name if present == [input_name] else input_name
                raise InvalidUsage(f"usage has {present[0]!r} but no {missing!r}")
            input_tokens = _check_count(usage[input_name], input_name)
            output_tokens = _check_count(usage[output_name], output_name)
            cached = _cached(usage.get(details_name), details_name)
            read[style] = (input_tokens, output_tokens, cached)
        if not read:
            raise InvalidUsage(
                "usage has no token counts (prompt_tokens/completion_tokens or "
                "input_tokens/output_tokens)"
            )
        counts = set(read.values())
        if len(counts) > 1:
            raise InvalidUsage(
                f"usage reports different counts under its two sets of names: {sorted(counts)}"
            )
        input_tokens, output_tokens, cached = counts.pop()
        if usage.get("total_tokens") is not None:
            total = _check_count(usage["total_tokens"], "total_tokens")
            if total != input_tokens + output_tokens:
                raise InvalidUsage(
                    f"usage total_tokens ({total}) is not input ({input_tokens}) plus output "
                    f"({output_tokens})"
                )
        return cls(input_tokens, output_tokens, cached)

    def to_openai(self) -> dict[str, object]:
        """This usage as a Chat Completions ``usage`` object."""
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_input_tokens},
        }


def _cached(details: object, name: str) -> int:
    if details is None:
        return 0
    if not isinstance(details, Mapping):
        raise InvalidUsage(f"usage {name} must be an object, not {type(details).__name__}")
    value = details.get("cached_tokens")
    if value is None:
        return 0
    return _check_count(value, f"{name}.cached_tokens")


def _check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        shown = repr(value)[:40]
        raise InvalidUsage(f"{name} must be a whole number of tokens, not {shown}")
    if value < 0:
        raise InvalidUsage(f"{name} is negative ({value})")
    if value > MAX_TOKENS:
        raise InvalidUsage(f"{name} is past the bound of {MAX_TOKENS} tokens")
    return value
