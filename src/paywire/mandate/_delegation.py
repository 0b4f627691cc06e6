"""Delegation: a child mandate must be narrower than its parent in every field.

The rule (`check_delegation`) makes a chain honest: no mandate claims more than it was
given. It is not what keeps spending in bounds: every payment is charged to, and checked
against, every mandate of its chain (`check_payment`), so ancestors' limits hold whatever
their children say.

Window rule. A parent window (W, L) says: at most L in any W consecutive seconds. A child
respects it when its own limits, each taken alone, already guarantee it. Any W seconds
are covered by ceil(W / w) windows of w seconds (times are whole seconds; a window of w
seconds holds w of them), so a child window (w, l) allows at most ceil(W / w) * l in W
seconds, and the child's total allows at most its total. The child respects (W, L) when
the smallest of these bounds is at most L: a window at least as long with a limit at
most L (ceil = 1), a shorter one whose multiple fits, or a total at most L. The rule is
sound (a child it accepts can never spend more than L in W seconds); it does not combine
several child windows, so a child relying on such a combination is refused and should
declare the parent's window itself (`Mandate.delegate` starts from the parent's limits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from paywire.mandate._errors import MandateChainBroken, MandateWiderThanParent
from paywire.mandate._fields import pattern_covers
from paywire.mandate._model import AssetLimit, Mandate


def window_bound(limit: AssetLimit, span_s: int) -> tuple[int, str]:
    """The most `limit` lets be spent in any `span_s` consecutive seconds, taking each of
    its limits alone (see the module docstring), and which limit gives that bound."""
    best, how = limit.total_atomic, f"its total {limit.total_atomic}"
    for window in limit.windows:
        count = -(-span_s // window.window_s)
        bound = count * window.limit_atomic
        if bound < best:
            best = bound
            how = f"its {window.window_s} s window of {window.limit_atomic}" + (
                f", {count} times over" if count > 1 else ""
            )
    return best, how


def check_delegation(parent: Mandate, child: Mandate) -> None:
    """Check that `child` is a delegation of `parent` no wider than it in any field.

    Raises `MandateChainBroken` if the child does not name the parent (parent id, issuer)
    and `MandateWiderThanParent` naming the field and both values otherwise. An issuing
    agent can call it before signing a sub-mandate.
    """
    mandate_id = child.id
    if child.parent != parent.digest:
        raise MandateChainBroken(
            f"names parent {child.parent_id or 'none (it is a root)'}, but the mandate above "
            f"it in the chain is {parent.id} (is a mandate missing in between?)",
            mandate_id=mandate_id,
            field="parent",
        )
    if child.issuer != parent.agent:
        raise MandateChainBroken(
            f"is issued by {child.issuer}, but only its parent's agent {parent.agent} may "
            "delegate the parent mandate",
            mandate_id=mandate_id,
            field="issuer",
        )

    def wider(field: str, what: str, child_value: object, parent_value: object) -> NoReturn:
        raise MandateWiderThanParent(
            f"{field} is wider than its parent's: {what}",
            mandate_id=mandate_id,
            field=field,
            child_value=child_value,
            parent_value=parent_value,
        )

    if child.valid_after < parent.valid_after:
        wider(
            "validAfter",
            f"it starts at {child.valid_after}, before the parent's {parent.valid_after}",
            child.valid_after,
            parent.valid_after,
        )
    if child.valid_before > parent.valid_before:
        wider(
            "validBefore",
            f"it ends at {child.valid_before}, after the parent's {parent.valid_before}",
            child.valid_before,
            parent.valid_before,
        )
    for field in ("payees", "origins"):
        mine, theirs = getattr(child, field), getattr(parent, field)
        if theirs and not mine:
            wider(field, f"it allows any, the parent only {', '.join(theirs)}", mine, theirs)
        extra = sorted(set(mine) - set(theirs)) if theirs else []
        if extra:
            wider(field, f"the parent does not allow {', '.join(extra)}", mine, theirs)
    if parent.networks:
        if not child.networks:
            wider(
                "networks",
                f"it allows any, the parent only {', '.join(parent.networks)}",
                child.networks,
                parent.networks,
            )
        for network in child.networks:
            if not any(pattern_covers(outer, network) for outer in parent.networks):
                wider(
                    "networks",
                    f"{network} is not within the parent's {', '.join(parent.networks)}",
                    child.networks,
                    parent.networks,
                )
    for index, limit in enumerate(child.limits):
        _check_limit(parent, limit, f"limits[{index}]", wider)


def _check_limit(
    parent: Mandate,
    limit: AssetLimit,
    field: str,
    wider: Callable[[str, str, object, object], NoReturn],
) -> None:
    outer = next(
        (
            candidate
            for candidate in parent.limits
            if candidate.asset == limit.asset and pattern_covers(candidate.network, limit.network)
        ),
        None,
    )
    if outer is None:
        wider(
            field,
            f"the parent has no limit for {limit.describe()} (it has "
            + ", ".join(candidate.describe() for candidate in parent.limits)
            + ")",
            limit.key,
            [candidate.key for candidate in parent.limits],
        )
    subject = limit.describe()
    if limit.total_atomic > outer.total_atomic:
        wider(
            f"{field}.total",
            f"{subject}: total {limit.total_atomic} is above the parent's {outer.total_atomic} "
            f"by {limit.total_atomic - outer.total_atomic}",
            limit.total_atomic,
            outer.total_atomic,
        )
    if limit.per_payment_atomic > outer.per_payment_atomic:
        wider(
            f"{field}.perPayment",
            f"{subject}: per payment {limit.per_payment_atomic} is above the parent's "
            f"{outer.per_payment_atomic} by {limit.per_payment_atomic - outer.per_payment_atomic}",
            limit.per_payment_atomic,
            outer.per_payment_atomic,
        )
    for window in outer.windows:
        bound, how = window_bound(limit, window.window_s)
        if bound > window.limit_atomic:
            wider(
                f"{field}.windows",
                f"{subject}: the parent allows at most {window.limit_atomic} in any "
                f"{window.window_s} s; the child's limits allow up to {bound} in that time "
                f"({how}), {bound - window.limit_atomic} more. Declare a window of at least "
                f"{window.window_s} s with a limit of at most {window.limit_atomic}",
                (window.window_s, bound),
                (window.window_s, window.limit_atomic),
            )
