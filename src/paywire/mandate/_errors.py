"""The errors of mandates: a malformed document, a chain that does not hold, a payment
past a limit. Each has a stable `code` and names the mandate, the field and the values."""

from __future__ import annotations

from paywire.errors import InvalidInput, PaywireError


class MandateError(PaywireError):
    """Any refusal about a mandate, a delegation chain, a revocation or a payment under them."""

    code = "mandate_error"


# --- malformed documents ------------------------------------------------------------------


class InvalidMandate(MandateError, InvalidInput):
    """A mandate or revocation document that can never be valid: wrong shape, type or value.

    `field` is where, in the document's own (camelCase) names, e.g. ``limits[0].perPayment``.
    """

    code = "invalid_mandate"

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message

    def within(self, prefix: str) -> InvalidMandate:
        """The same error, its field placed under `prefix` (a list item or a parent object)."""
        field = f"{prefix}.{self.field}" if self.field else prefix
        return type(self)(self.reason, field)


class MandateTooLarge(InvalidMandate):
    """A serialized document past its size cap (checked before parsing)."""

    code = "mandate_too_large"


class MandateUnknownField(InvalidMandate):
    """A document with a field paywire does not know: unsigned data must not ride along."""

    code = "mandate_unknown_field"


class MandateVersionUnsupported(InvalidMandate):
    """A document of a format version this paywire does not read."""

    code = "mandate_version_unsupported"


# --- chains that do not hold ----------------------------------------------------------------


class MandateChainInvalid(MandateError):
    """A delegation chain that does not hold. `mandate_id` names the mandate at fault,
    `field` the part of it (a document field name, or "signature")."""

    code = "mandate_chain_invalid"

    def __init__(self, message: str, *, mandate_id: str, field: str) -> None:
        super().__init__(f"mandate {mandate_id}: {message}")
        self.mandate_id = mandate_id
        self.field = field


class MandateSignatureInvalid(MandateChainInvalid):
    """A mandate or revocation whose signature is malformed or not by its issuer."""

    code = "mandate_signature_invalid"


class MandateWrongPrincipal(MandateChainInvalid):
    """A chain whose root was issued by someone other than the expected principal."""

    code = "mandate_wrong_principal"


class MandateChainBroken(MandateChainInvalid):
    """A child that does not name its parent: wrong parent id, wrong issuer, or a gap."""

    code = "mandate_chain_broken"


class MandateWiderThanParent(MandateChainInvalid):
    """A child mandate that allows something its parent does not."""

    code = "mandate_wider_than_parent"

    def __init__(
        self,
        message: str,
        *,
        mandate_id: str,
        field: str,
        child_value: object,
        parent_value: object,
    ) -> None:
        super().__init__(message, mandate_id=mandate_id, field=field)
        self.child_value = child_value
        self.parent_value = parent_value


class MandateRevoked(MandateChainInvalid):
    """A chain holding a revoked mandate (revoking one revokes its whole subtree)."""

    code = "mandate_revoked"


# --- payments past a limit ------------------------------------------------------------------


class MandateLimitExceeded(MandateError):
    """A payment (or a moment) outside what a mandate of the chain allows.

    Attributes say exactly what: `mandate_id`; `limit`, the document field of the limit
    (``total``, ``perPayment``, ``windows``, ``payees``, ``origins``, ``networks``,
    ``limits`` for an asset, ``validAfter``, ``validBefore``); for amount limits the
    limit's `network` and `asset`, `window_s` for a window, `allowed` (the limit),
    `spent` (already charged), `amount` (this payment) and `overrun` (by how much the
    payment goes past: ``spent + amount - allowed``; for time limits, seconds).
    """

    code = "mandate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        mandate_id: str,
        limit: str,
        network: str | None = None,
        asset: str | None = None,
        window_s: int | None = None,
        allowed: int | None = None,
        spent: int | None = None,
        amount: int | None = None,
        overrun: int | None = None,
    ) -> None:
        super().__init__(f"mandate {mandate_id}: {message}")
        self.mandate_id = mandate_id
        self.limit = limit
        self.network = network
        self.asset = asset
        self.window_s = window_s
        self.allowed = allowed
        self.spent = spent
        self.amount = amount
        self.overrun = overrun


class MandateExpired(MandateLimitExceeded):
    """At or past a mandate's validBefore (plus the clock-skew allowance)."""

    code = "mandate_expired"


class MandateNotYetValid(MandateLimitExceeded):
    """Before a mandate's validAfter (minus the clock-skew allowance)."""

    code = "mandate_not_yet_valid"


class MandateTotalExceeded(MandateLimitExceeded):
    """The payment would take the spending under one asset limit past its total."""

    code = "mandate_total_exceeded"


class MandatePerPaymentExceeded(MandateLimitExceeded):
    """The payment alone is larger than the per-payment maximum."""

    code = "mandate_per_payment_exceeded"


class MandateWindowExceeded(MandateLimitExceeded):
    """The payment would take the spending in a rolling window past its limit."""

    code = "mandate_window_exceeded"


class MandateAssetNotAllowed(MandateLimitExceeded):
    """The mandate has no limit for this asset on this network: it may not be spent."""

    code = "mandate_asset_not_allowed"


class MandateNetworkNotAllowed(MandateLimitExceeded):
    """The payment's network is not among the mandate's allowed networks."""

    code = "mandate_network_not_allowed"


class MandatePayeeNotAllowed(MandateLimitExceeded):
    """The payee is not among the mandate's allowed payees."""

    code = "mandate_payee_not_allowed"


class MandateOriginNotAllowed(MandateLimitExceeded):
    """The payment's URL origin (or its lack of one) is not among the allowed origins."""

    code = "mandate_origin_not_allowed"
