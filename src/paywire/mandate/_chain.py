"""`MandateChain`: a principal's mandate and its delegations down to one agent, verified
from the principal down (signatures, links, narrowing, time, revocation).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass

from paywire.errors import InvalidInput
from paywire.mandate._codec import (
    MAX_MANDATE_JSON_BYTES,
    JsonForms,
    check_version,
    expect_object,
)
from paywire.mandate._delegation import check_delegation
from paywire.mandate._errors import (
    InvalidMandate,
    MandateChainBroken,
    MandateExpired,
    MandateNotYetValid,
    MandateRevoked,
    MandateWrongPrincipal,
)
from paywire.mandate._fields import check_address
from paywire.mandate._model import Mandate
from paywire.mandate._signed import SignedMandate

MAX_CHAIN_DEPTH = 8
"""Mandates in one chain (the principal's and 7 delegations): deeper is an org chart, not a
budget, and each link costs a signature recovery on every verification."""

MAX_CHAIN_JSON_BYTES = MAX_CHAIN_DEPTH * MAX_MANDATE_JSON_BYTES + 1024
"""A chain as JSON: its mandates, each within its own cap."""

CLOCK_SKEW_S = 60
"""How far the clocks of principal, agent and facilitator may disagree: a mandate is taken
as valid from validAfter - skew to validBefore + skew (both sides, as JWT leeway)."""

MAX_CLOCK_SKEW_S = 600
"""The largest skew a caller may allow: past ten minutes a clock is wrong, not skewed."""

RevokedTest = Callable[[str], bool] | Collection[str] | None
"""Which mandates are revoked: a test on ids, a collection of ids, or None (none are)."""


@dataclass(frozen=True, slots=True)
class MandateChain(JsonForms):
    """Signed mandates from a principal's (the root) down to one agent's (the leaf).

    Building one checks only the shape (1 to MAX_CHAIN_DEPTH signed mandates); `verify`
    checks signatures, links, narrowing, time and revocation.
    """

    JSON_MAX_BYTES = MAX_CHAIN_JSON_BYTES
    JSON_WHAT = "a mandate chain"

    mandates: tuple[SignedMandate, ...]

    def __post_init__(self) -> None:
        mandates: object = self.mandates
        if isinstance(mandates, SignedMandate) or not isinstance(mandates, Sequence):
            raise InvalidMandate("a chain is a list of signed mandates, root first", "chain")
        if not 1 <= len(mandates) <= MAX_CHAIN_DEPTH:
            raise InvalidMandate(
                f"a chain holds 1 to {MAX_CHAIN_DEPTH} mandates, got {len(mandates)}", "chain"
            )
        for index, signed in enumerate(mandates):
            if not isinstance(signed, SignedMandate):
                raise InvalidMandate(
                    f"must be a SignedMandate, got {type(signed).__name__}", f"chain[{index}]"
                )
        object.__setattr__(self, "mandates", tuple(mandates))

    @property
    def root(self) -> Mandate:
        """The principal's mandate."""
        return self.mandates[0].mandate

    @property
    def leaf(self) -> Mandate:
        """The mandate of the agent that pays under this chain."""
        return self.mandates[-1].mandate

    @property
    def principal(self) -> str:
        """Who issued the root (as the document says; `verify` checks it against yours)."""
        return self.root.issuer

    @property
    def agent(self) -> str:
        """The key that may pay under this chain: the leaf's agent."""
        return self.leaf.agent

    @property
    def ids(self) -> tuple[str, ...]:
        """The ids of the mandates, root first."""
        return tuple(signed.id for signed in self.mandates)

    def __len__(self) -> int:
        return len(self.mandates)

    def __iter__(self) -> Iterator[Mandate]:
        return (signed.mandate for signed in self.mandates)

    def extend(self, child: SignedMandate) -> MandateChain:
        """This chain with `child` (a delegation by the leaf's agent) appended."""
        return MandateChain((*self.mandates, child))

    def verify(
        self,
        now_s: int,
        revoked: RevokedTest = None,
        *,
        principal: str,
        skew_s: int = CLOCK_SKEW_S,
    ) -> None:
        """Check the chain from the principal down, at time `now_s` (Unix seconds):

        - every signature is by its mandate's issuer;
        - the root has no parent and was issued by `principal`;
        - each child names its parent's id and is issued by its parent's agent (no gap);
        - each child is within its parent (`check_delegation`);
        - every mandate is valid at `now_s`, give or take `skew_s`;
        - no mandate is revoked (a revoked ancestor revokes the whole subtree).

        Raises a `MandateChainInvalid` or, for time, a `MandateLimitExceeded` (expired, not
        yet valid), naming the mandate, the field and the values.
        """
        expected = check_address(principal, "principal")
        check_skew(skew_s)
        is_revoked = _revocation_test(revoked)
        parent: Mandate | None = None
        for signed in self.mandates:
            mandate = signed.mandate
            signed.verify()
            if parent is None:
                if not mandate.is_root:
                    raise MandateChainBroken(
                        f"the first mandate names a parent ({mandate.parent_id}): give the "
                        "chain from its root, the principal's mandate",
                        mandate_id=mandate.id,
                        field="parent",
                    )
                if mandate.issuer != expected:
                    raise MandateWrongPrincipal(
                        f"the root is issued by {mandate.issuer}, not by the principal {expected}",
                        mandate_id=mandate.id,
                        field="issuer",
                    )
            else:
                check_delegation(parent, mandate)
            check_valid_at(mandate, now_s, skew_s)
            parent = mandate
        for depth, signed in enumerate(self.mandates):
            if is_revoked(signed.id):
                below = len(self.mandates) - 1 - depth
                raise MandateRevoked(
                    "is revoked"
                    + (
                        f", and with it the {below} mandate(s) below it in this chain"
                        if below
                        else ""
                    ),
                    mandate_id=signed.id,
                    field="revoked",
                )

    # --- carried forms -------------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """The JSON object ``{"v": 1, "chain": [signed mandate, ...]}``, root first."""
        return {"v": 1, "chain": [signed.to_dict() for signed in self.mandates]}

    @classmethod
    def from_dict(cls, value: object) -> MandateChain:
        """Parse the JSON object strictly (see `SignedMandate.from_dict`); no signature or
        link is checked here: call `verify`."""
        if isinstance(value, dict) and "v" in value:
            check_version(value)
        fields = expect_object(value, ("v", "chain"), "")
        items = fields["chain"]
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_CHAIN_DEPTH:
            raise InvalidMandate(
                f"must be a list of 1 to {MAX_CHAIN_DEPTH} signed mandates, root first", "chain"
            )
        mandates = []
        for index, item in enumerate(items):
            try:
                mandates.append(SignedMandate.from_dict(item))
            except InvalidMandate as error:
                raise error.within(f"chain[{index}]") from None
        return cls(tuple(mandates))


def check_skew(skew_s: int) -> None:
    if (
        not isinstance(skew_s, int)
        or isinstance(skew_s, bool)
        or not 0 <= skew_s <= MAX_CLOCK_SKEW_S
    ):
        raise InvalidInput(f"clock skew must be 0 to {MAX_CLOCK_SKEW_S} seconds, got {skew_s!r}")


def check_valid_at(mandate: Mandate, at_s: int, skew_s: int) -> None:
    """Raise `MandateNotYetValid` / `MandateExpired` unless
    ``validAfter - skew <= at_s < validBefore + skew``."""
    if not isinstance(at_s, int) or isinstance(at_s, bool):
        raise InvalidInput(f"a time is whole Unix seconds, got {at_s!r}")
    start = mandate.valid_after - skew_s
    if at_s < start:
        raise MandateNotYetValid(
            f"is not valid before {mandate.valid_after} (with {skew_s} s of clock skew, "
            f"{start}); it is {at_s}, {start - at_s} s early",
            mandate_id=mandate.id,
            limit="validAfter",
            allowed=mandate.valid_after,
            overrun=start - at_s,
        )
    end = mandate.valid_before + skew_s
    if at_s >= end:
        raise MandateExpired(
            f"expired at {mandate.valid_before} (with {skew_s} s of clock skew, {end}); "
            f"it is {at_s}, {at_s - end + 1} s late",
            mandate_id=mandate.id,
            limit="validBefore",
            allowed=mandate.valid_before,
            overrun=at_s - end + 1,
        )


def _revocation_test(revoked: RevokedTest) -> Callable[[str], bool]:
    if revoked is None:
        return lambda mandate_id: False
    if isinstance(revoked, str | bytes):  # `in` on text would test substrings
        raise InvalidInput("revoked must be a collection of mandate ids, not one string")
    if isinstance(revoked, Collection):
        ids = revoked  # ids as `Mandate.id` writes them: lower-case 0x-hex
        return lambda mandate_id: mandate_id in ids
    if callable(revoked):
        return revoked
    raise InvalidInput(f"revoked must be ids or a test on ids, got {type(revoked).__name__}")
