"""Why metering refuses: a bad price book, an unpriced model, bad usage, no tokenizer."""

from __future__ import annotations

from paywire.errors import InvalidInput, NotFound, PaywireError


class InvalidPriceBook(InvalidInput):
    """A price book file that cannot be read, or an entry in it that is not exact or valid."""

    code = "invalid_price_book"


class UnknownModel(NotFound):
    """The price book has no price for the model (no entry, alias or wildcard matches)."""

    code = "unknown_model"


class InvalidUsage(InvalidInput):
    """Token counts that are not whole, non-negative, bounded and consistent."""

    code = "invalid_usage"


class TokenizerUnavailable(PaywireError):
    """No offline tokenizer can count this model's tokens; the upstream must report usage."""

    code = "tokenizer_unavailable"


class LocalModelUnavailable(PaywireError):
    """The local model's packages (the ``llm`` extra) are not installed, or its file is gone."""

    code = "local_model_unavailable"
