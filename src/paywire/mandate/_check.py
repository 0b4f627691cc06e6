"""Checking one payment against a chain of mandates: `Payment`, `SpentView`, `check_payment`.

The check is pure: what has been spent comes from a `SpentView` (the in-memory tracker of
an agent client, or the ledger's books), and nothing is recorded. A payment is checked
against every mandate of the chain, leaf first, because it is charged to every one of
them: a sub-agent's spending counts against each ancestor's budget.

Windows. A window (w, L) holds if, for every time e, the payments at times t with
``e - w < t <= e`` sum to at most L. A payment at time t lies in the windows ending at
t .. t + w - 1, which between them hold payments at times t - w + 1 .. t + w - 1; so the
check asks the view for that span. With times that only move forward (the usual case)
the later part is empty and the check is exact; with a payment dated before others
already charged it may refuse more than strictly needed, and never lets a window overflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from paywire.errors import InvalidInput
from paywire.mandate._chain import CLOCK_SKEW_S, MandateChain, check_skew, check_valid_at
from paywire.mandate._errors import (
    InvalidMandate,
    MandateAssetNotAllowed,
    MandateNetworkNotAllowed,
    MandateOriginNotAllowed,
    MandatePayeeNotAllowed,
    MandatePerPaymentExceeded,
    MandateTotalExceeded,
    MandateWindowExceeded,
)
from paywire.mandate._fields import (
    check_address,
    check_asset,
    check_int,
    check_network,
    network_matches,
    parse_origin,
)
from paywire.mandate._model import MAX_TIME_S, AssetLimit, Mandate
from paywire.money import KNOWN_ASSETS, MAX_ATOMIC, format_atomic


@dataclass(frozen=True, slots=True)
class Payment:
    """One payment as a mandate sees it: `amount_atomic` of `asset` on the exact CAIP-2
    `network`, to `payee`, for a resource at `origin` (``scheme://host[:port]``, see
    `origin_of`; None when the payment is not for a URL), at Unix time `at_s`.

    The payer is the chain's agent; the caller checks that the payment's signer is that key.
    """

    network: str
    asset: str
    amount_atomic: int
    payee: str
    origin: str | None
    at_s: int

    def __post_init__(self) -> None:
        try:
            check_network(self.network, "network")
            object.__setattr__(self, "asset", check_asset(self.asset, "asset"))
            check_int(self.amount_atomic, "amount", 1, MAX_ATOMIC, " atomic units")
            object.__setattr__(self, "payee", check_address(self.payee, "payee"))
            if self.origin is not None:
                object.__setattr__(self, "origin", parse_origin(self.origin, "origin"))
            check_int(self.at_s, "at", 0, MAX_TIME_S)
        except InvalidMandate as error:
            raise InvalidInput(f"payment {error.message}") from None


class SpentView(Protocol):
    """What has been charged under mandates: read-only, answered per asset limit.

    A limit is named by the mandate's id and its ``(network, asset)`` as written in the
    mandate (the network may be a pattern such as ``eip155:*``): a payment is charged, in
    each mandate of its chain, to the one limit that governs its asset and network.
    """

    def spent_total(self, mandate_id: str, network: str, asset: str) -> int:
        """Everything charged to this limit of this mandate."""
        ...

    def spent_between(
        self, mandate_id: str, network: str, asset: str, after_s: int, until_s: int
    ) -> int:
        """What was charged to this limit by payments at times t with
        ``after_s < t <= until_s``."""
        ...


def describe_amount(asset: str, atomic: int) -> str:
    """An amount for people: whole units of a known asset, with its atomic units."""
    known = KNOWN_ASSETS.get(asset)
    if known is None:
        return f"{atomic} atomic units of {asset}"
    return f"{format_atomic(atomic, known.decimals)} {asset} ({atomic} atomic)"


def check_payment(
    chain: MandateChain,
    payment: Payment,
    spent: SpentView,
    *,
    skew_s: int = CLOCK_SKEW_S,
) -> None:
    """Check that `payment` stays within every mandate of `chain`, given what `spent`
    says was charged already. Raises a `MandateLimitExceeded` subclass naming the mandate,
    the limit, the limit's value, what was spent, the payment and the overrun.

    It does not verify the chain (signatures, links, revocation): call
    `MandateChain.verify` when the chain is received; this is the per-payment part.
    """
    check_skew(skew_s)
    if not isinstance(payment, Payment):
        raise InvalidInput(f"needs a Payment, got {type(payment).__name__}")
    for mandate in reversed(tuple(chain)):
        check_valid_at(mandate, payment.at_s, skew_s)
        limit = _allowed_limit(mandate, payment)
        _check_amounts(mandate, limit, payment, spent)


def _allowed_limit(mandate: Mandate, payment: Payment) -> AssetLimit:
    """The limit of `mandate` that governs `payment`, after its allow-lists are checked."""
    mandate_id = mandate.id
    if mandate.networks and not any(
        network_matches(pattern, payment.network) for pattern in mandate.networks
    ):
        raise MandateNetworkNotAllowed(
            f"network {payment.network} is not allowed; allowed: {', '.join(mandate.networks)}",
            mandate_id=mandate_id,
            limit="networks",
            network=payment.network,
        )
    limit = mandate.limit_for(payment.network, payment.asset)
    if limit is None:
        raise MandateAssetNotAllowed(
            f"has no limit for {payment.asset} on {payment.network}, so it may not be spent; "
            "limits: " + ", ".join(candidate.describe() for candidate in mandate.limits),
            mandate_id=mandate_id,
            limit="limits",
            network=payment.network,
            asset=payment.asset,
        )
    if mandate.payees and payment.payee not in mandate.payees:
        raise MandatePayeeNotAllowed(
            f"payee {payment.payee} is not allowed; allowed: {', '.join(mandate.payees)}",
            mandate_id=mandate_id,
            limit="payees",
        )
    if mandate.origins and payment.origin not in mandate.origins:
        said = (
            f"origin {payment.origin} is not allowed"
            if payment.origin is not None
            else "the payment is not for a URL, and the mandate allows only payments for URLs"
        )
        raise MandateOriginNotAllowed(
            f"{said}; allowed origins: {', '.join(mandate.origins)}",
            mandate_id=mandate_id,
            limit="origins",
        )
    return limit


def _check_amounts(mandate: Mandate, limit: AssetLimit, payment: Payment, spent: SpentView) -> None:
    mandate_id, network, asset = mandate.id, limit.network, limit.asset
    amount = payment.amount_atomic
    subject = limit.describe()

    def show(atomic: int) -> str:
        return describe_amount(asset, atomic)

    if amount > limit.per_payment_atomic:
        over = amount - limit.per_payment_atomic
        raise MandatePerPaymentExceeded(
            f"a payment of {show(amount)} is above the per-payment maximum for {subject} of "
            f"{show(limit.per_payment_atomic)}, by {show(over)}",
            mandate_id=mandate_id,
            limit="perPayment",
            network=network,
            asset=asset,
            allowed=limit.per_payment_atomic,
            spent=0,
            amount=amount,
            overrun=over,
        )
    total = spent.spent_total(mandate_id, network, asset)
    if total + amount > limit.total_atomic:
        over = total + amount - limit.total_atomic
        raise MandateTotalExceeded(
            f"a payment of {show(amount)} would take the spending for {subject} past its "
            f"total of {show(limit.total_atomic)}: already spent {show(total)}, over by "
            f"{show(over)}",
            mandate_id=mandate_id,
            limit="total",
            network=network,
            asset=asset,
            allowed=limit.total_atomic,
            spent=total,
            amount=amount,
            overrun=over,
        )
    at = payment.at_s
    for window in limit.windows:
        width = window.window_s
        used = spent.spent_between(mandate_id, network, asset, at - width, at + width - 1)
        if used + amount > window.limit_atomic:
            over = used + amount - window.limit_atomic
            raise MandateWindowExceeded(
                f"a payment of {show(amount)} would take the spending for {subject} in "
                f"{width} s past its limit of {show(window.limit_atomic)}: already spent "
                f"{show(used)} in that window, over by {show(over)}",
                mandate_id=mandate_id,
                limit="windows",
                network=network,
                asset=asset,
                window_s=width,
                allowed=window.limit_atomic,
                spent=used,
                amount=amount,
                overrun=over,
            )
