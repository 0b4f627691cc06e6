"""Mandates: budgets signed by a principal that bound what an agent key may spend.

A `Mandate` is an EIP-712 document by which an issuer (a human or organisation for a
root; an agent, for a delegation) authorizes an agent key: per asset and network a total,
a per-payment maximum and rolling windows (`AssetLimit`, `Window`); allowed payees, URL
origins and networks (empty means any); a validity window; a purpose and a task id. Its
`id` is its EIP-712 digest. A `SignedMandate` carries the issuer's signature and travels
as canonical JSON or one base64url string.

An agent may delegate a narrower mandate to a sub-agent (`Mandate.delegate`,
`check_delegation`); a `MandateChain` runs from the principal's mandate to one agent's
and is verified from the principal down (`MandateChain.verify`). `check_payment` checks a
`Payment` against every mandate of the chain, given what a `SpentView` says was spent;
`MemorySpendTracker` is the in-memory view an agent client uses to fail fast, before
signing. `Revocation` documents revoke a mandate and its subtree (`verify_revocation`).

Every refusal is a `MandateError` with a precise `code`, naming the mandate, the field or
limit, and the values.
"""

from paywire.mandate._chain import (
    CLOCK_SKEW_S,
    MAX_CHAIN_DEPTH,
    MAX_CHAIN_JSON_BYTES,
    MAX_CLOCK_SKEW_S,
    MandateChain,
    RevokedTest,
)
from paywire.mandate._check import Payment, SpentView, check_payment, describe_amount
from paywire.mandate._codec import MAX_MANDATE_JSON_BYTES
from paywire.mandate._delegation import check_delegation, window_bound
from paywire.mandate._errors import (
    InvalidMandate,
    MandateAssetNotAllowed,
    MandateChainBroken,
    MandateChainInvalid,
    MandateError,
    MandateExpired,
    MandateLimitExceeded,
    MandateNetworkNotAllowed,
    MandateNotYetValid,
    MandateOriginNotAllowed,
    MandatePayeeNotAllowed,
    MandatePerPaymentExceeded,
    MandateRevoked,
    MandateSignatureInvalid,
    MandateTooLarge,
    MandateTotalExceeded,
    MandateUnknownField,
    MandateVersionUnsupported,
    MandateWiderThanParent,
    MandateWindowExceeded,
    MandateWrongPrincipal,
)
from paywire.mandate._fields import MAX_ORIGIN_CHARS, origin_of
from paywire.mandate._model import (
    MANDATE_DOMAIN,
    MANDATE_MESSAGE,
    MANDATE_VERSION,
    MAX_ASSET_LIMITS,
    MAX_NETWORKS,
    MAX_ORIGINS,
    MAX_PAYEES,
    MAX_PURPOSE_CHARS,
    MAX_TASK_ID_CHARS,
    MAX_TIME_S,
    MAX_VALIDITY_S,
    MAX_WINDOW_S,
    MAX_WINDOWS,
    MIN_WINDOW_S,
    AssetLimit,
    Mandate,
    Window,
)
from paywire.mandate._revocation import (
    MAX_REVOCATION_JSON_BYTES,
    REVOCATION_MESSAGE,
    Revocation,
    SignedRevocation,
    verify_revocation,
)
from paywire.mandate._signed import SignedMandate
from paywire.mandate._spend import MAX_TRACKED_PAYMENTS, MemorySpendTracker

__all__ = [
    "CLOCK_SKEW_S",
    "MANDATE_DOMAIN",
    "MANDATE_MESSAGE",
    "MANDATE_VERSION",
    "MAX_ASSET_LIMITS",
    "MAX_CHAIN_DEPTH",
    "MAX_CHAIN_JSON_BYTES",
    "MAX_CLOCK_SKEW_S",
    "MAX_MANDATE_JSON_BYTES",
    "MAX_NETWORKS",
    "MAX_ORIGINS",
    "MAX_ORIGIN_CHARS",
    "MAX_PAYEES",
    "MAX_PURPOSE_CHARS",
    "MAX_REVOCATION_JSON_BYTES",
    "MAX_TASK_ID_CHARS",
    "MAX_TIME_S",
    "MAX_TRACKED_PAYMENTS",
    "MAX_VALIDITY_S",
    "MAX_WINDOWS",
    "MAX_WINDOW_S",
    "MIN_WINDOW_S",
    "REVOCATION_MESSAGE",
    "AssetLimit",
    "InvalidMandate",
    "Mandate",
    "MandateAssetNotAllowed",
    "MandateChain",
    "MandateChainBroken",
    "MandateChainInvalid",
    "MandateError",
    "MandateExpired",
    "MandateLimitExceeded",
    "MandateNetworkNotAllowed",
    "MandateNotYetValid",
    "MandateOriginNotAllowed",
    "MandatePayeeNotAllowed",
    "MandatePerPaymentExceeded",
    "MandateRevoked",
    "MandateSignatureInvalid",
    "MandateTooLarge",
    "MandateTotalExceeded",
    "MandateUnknownField",
    "MandateVersionUnsupported",
    "MandateWiderThanParent",
    "MandateWindowExceeded",
    "MandateWrongPrincipal",
    "MemorySpendTracker",
    "Payment",
    "Revocation",
    "RevokedTest",
    "SignedMandate",
    "SignedRevocation",
    "SpentView",
    "Window",
    "check_delegation",
    "check_payment",
    "describe_amount",
    "origin_of",
    "verify_revocation",
    "window_bound",
]
