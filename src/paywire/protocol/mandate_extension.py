"""The `paywire-mandate` x402 extension: a payment carries its payer's mandate chain.

    "extensions": {"paywire-mandate": {"info": {"chain": "<base64url MandateChain>"}}}

The chain runs from the principal's mandate to the payer's (root first). A facilitator
that enforces mandates verifies it and charges the payment to every mandate in it; a
client uses it to refuse, before signing, a payment its mandate does not allow.
"""

from __future__ import annotations

import functools

from x402.schemas import PaymentPayload

from paywire.errors import PaywireError
from paywire.mandate import MandateChain
from paywire.protocol.errors import malformed
from paywire.protocol.headers import MAX_HEADER_BYTES

MANDATE_EXTENSION = "paywire-mandate"

PARSED_CHAINS = 4096
"""Chains kept parsed, by their text (an agent sends the same one with every payment)."""


def with_mandate(payload: PaymentPayload, chain: MandateChain) -> PaymentPayload:
    """`payload` carrying `chain`."""
    extensions = dict(payload.extensions or {})
    extensions[MANDATE_EXTENSION] = {"info": {"chain": chain.to_base64()}}
    return payload.model_copy(update={"extensions": extensions})


def mandate_of(payload: PaymentPayload) -> MandateChain | None:
    """The mandate chain a payment carries (None if none); a malformed one is a 400."""
    extension = (payload.extensions or {}).get(MANDATE_EXTENSION)
    if extension is None:
        return None
    info = extension.get("info") if isinstance(extension, dict) else None
    text = info.get("chain") if isinstance(info, dict) else None
    if not isinstance(text, str) or len(text) > MAX_HEADER_BYTES:
        raise malformed(f"the {MANDATE_EXTENSION} extension needs info.chain, a base64 string")
    try:
        return _parse(text)
    except PaywireError as error:
        raise malformed(f"the payment's mandate chain is unreadable: {error}") from None


@functools.lru_cache(maxsize=PARSED_CHAINS)
def _parse(text: str) -> MandateChain:
    # An agent sends the same chain with every payment: parse it once (a chain is
    # immutable; what fails to parse is not cached).
    return MandateChain.from_base64(text)
