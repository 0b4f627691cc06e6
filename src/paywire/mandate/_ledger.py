"""Mandates enforced by the ledger: each limit of a mandate is a ledger spend limit.

A payment under a mandate chain names, for every mandate of the chain, the spend limits of
the `AssetLimit` that governs it: its total (``...:total``) and each rolling window
(``...:w<seconds>``). The ledger checks them in the same write transaction as the payment
(`paywire.ledger.NewLimit`), so no interleaving of concurrent payments, on one ledger, in
any number of threads or processes, takes spending past a limit; a revoked mandate's limits
are closed, which refuses every payment under it or under any mandate below it.

What needs no ledger state (signatures, links, narrowing, validity, networks, assets,
payees, origins, per-payment maximum) is checked here, before the write.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from paywire.errors import InvalidInput
from paywire.ledger import Ledger, LimitStatus, NewLimit
from paywire.ledger.errors import LimitNotFound
from paywire.mandate._chain import CLOCK_SKEW_S, MandateChain
from paywire.mandate._check import Payment, check_payment
from paywire.mandate._errors import (
    MandateAssetNotAllowed,
    MandateLimitExceeded,
    MandateTotalExceeded,
    MandateWindowExceeded,
)
from paywire.mandate._model import AssetLimit, Mandate
from paywire.mandate._revocation import SignedRevocation, verify_revocation
from paywire.money import KNOWN_ASSETS, Asset

LIMIT_PREFIX = "mandate:"

MAX_VERIFIED_CHAINS = 10_000
"""Chains whose signatures and links were verified, kept so a payment costs no signature
recovery for its mandates (bounded: the oldest are verified again if they come back)."""

MAX_OPENED_LIMITS = 100_000
"""Limit ids known to be open in the ledger (bounded; an unknown one is opened again,
which is idempotent)."""


def limit_ids(mandate: Mandate, limit: AssetLimit) -> tuple[str, ...]:
    """The ledger spend limits of one `AssetLimit` of `mandate`: its total, then each
    window (ids stay under the ledger's 128 characters)."""
    index = mandate.limits.index(limit)
    base = f"{LIMIT_PREFIX}{mandate.id[2:]}:{index}"
    return (f"{base}:total", *(f"{base}:w{window.window_s}" for window in limit.windows))


@dataclass(frozen=True, slots=True)
class Authorized:
    """A payment the mandates allow so far: the ledger limits it must count against."""

    chain: MandateChain
    limits: tuple[str, ...]


class _ZeroSpent:
    """A spent view with nothing spent: the per-payment checks, without the running sums
    (the ledger checks those, atomically)."""

    def spent_total(self, mandate_id: str, network: str, asset: str) -> int:
        return 0

    def spent_between(
        self, mandate_id: str, network: str, asset: str, after_s: int, until_s: int
    ) -> int:
        return 0


class LedgerMandates:
    """Checks payments against mandate chains and maps them onto `ledger`'s spend limits."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        assets: dict[str, Asset] | None = None,
        clock: Callable[[], float] = time.time,
        skew_s: int = CLOCK_SKEW_S,
    ) -> None:
        self.ledger = ledger
        self._assets = dict(KNOWN_ASSETS if assets is None else assets)
        self._clock = clock
        self._skew_s = skew_s
        self._lock = threading.Lock()
        self._verified: OrderedDict[tuple[bytes, ...], None] = OrderedDict()
        self._opened: OrderedDict[str, None] = OrderedDict()

    def verify_chain(self, chain: MandateChain) -> None:
        """Signatures, links and narrowing, from the chain's own principal down (cached:
        these never change); validity in time is checked per payment."""
        key = tuple(signed.signature for signed in chain.mandates)
        with self._lock:
            if key in self._verified:
                self._verified.move_to_end(key)
                return
        chain.verify(int(self._clock()), principal=chain.principal, skew_s=self._skew_s)
        with self._lock:
            self._verified[key] = None
            while len(self._verified) > MAX_VERIFIED_CHAINS:
                self._verified.popitem(last=False)

    def authorize(self, chain: MandateChain, payer: str, payment: Payment) -> Authorized:
        """Check `payment` by `payer` against `chain` (all but the running sums) and name
        the ledger limits it counts against. Raises a `MandateError`."""
        self.verify_chain(chain)
        if payer.lower() != chain.agent.lower():
            raise InvalidInput(
                f"the mandate chain is for agent {chain.agent}, the payment is by {payer}"
            )
        check_payment(chain, payment, _ZeroSpent(), skew_s=self._skew_s)
        ids: list[str] = []
        for mandate in chain:
            limit = mandate.limit_for(payment.network, payment.asset)
            if limit is None:  # check_payment already refused this; kept as an invariant
                raise MandateAssetNotAllowed(
                    f"no limit for {payment.asset} on {payment.network}",
                    mandate_id=mandate.id,
                    limit="limits",
                    network=payment.network,
                    asset=payment.asset,
                )
            ids.extend(limit_ids(mandate, limit))
        return Authorized(chain, tuple(ids))

    def limits_open(self, limits: Sequence[str]) -> bool:
        """Whether every limit in `limits` is known to be open (no ledger call needed)."""
        with self._lock:
            return all(limit_id in self._opened for limit_id in limits)

    def open_limits(self, chain: MandateChain, network: str, asset: str) -> None:
        """Open (idempotently) the ledger limits of every mandate in `chain` that govern
        `asset` on `network`."""
        for mandate in chain:
            limit = mandate.limit_for(network, asset)
            if limit is not None:
                self._open(mandate, limit)

    def _open(self, mandate: Mandate, limit: AssetLimit) -> None:
        ids = limit_ids(mandate, limit)
        with self._lock:
            if all(limit_id in self._opened for limit_id in ids):
                return
        asset = self._ledger_asset(limit.asset)
        caps = (
            (ids[0], limit.total_atomic, None),
            *(
                (limit_id, window.limit_atomic, window.window_s)
                for limit_id, window in zip(ids[1:], limit.windows, strict=True)
            ),
        )
        for limit_id, cap, window_s in caps:
            metadata = {"mandate": mandate.id, "agent": mandate.agent, "network": limit.network}
            self.ledger.open_limit(NewLimit(limit_id, asset, cap, window_s, metadata=metadata))
        with self._lock:
            for limit_id in ids:
                self._opened[limit_id] = None
            while len(self._opened) > MAX_OPENED_LIMITS:
                self._opened.popitem(last=False)

    def _ledger_asset(self, code: str) -> Asset:
        asset = self._assets.get(code)
        if asset is None:
            raise InvalidInput(f"asset {code!r} is not an asset of this ledger")
        return asset

    def revoke(self, chain: MandateChain, revocation: SignedRevocation) -> list[str]:
        """Revoke the mandate `revocation` names, which must be in `chain` (from the
        principal down to it at least): close every ledger limit of it, at once. Payments
        under it, or under any mandate it delegated, are refused from the next write.
        Returns the closed limit ids."""
        self.verify_chain(chain)
        if not verify_revocation(revocation, chain):
            raise InvalidInput(
                "the revocation is not signed by the mandate's issuer or an ancestor's"
            )
        target = next((m for m in chain if m.id == revocation.revocation.mandate_id), None)
        if target is None:
            raise InvalidInput("the revoked mandate is not in the chain given")
        closed: list[str] = []
        for limit in target.limits:
            if limit.asset not in self._assets:
                continue  # an EVM token's limit: the ledger does not hold it
            self._open(target, limit)
            for limit_id in limit_ids(target, limit):
                self.ledger.close_limit(limit_id, metadata={"revocation": revocation.to_json()})
                closed.append(limit_id)
        return closed

    def status(self, chain: MandateChain) -> list[tuple[Mandate, AssetLimit, list[LimitStatus]]]:
        """Spent and remaining for every limit of every mandate of `chain` (limits never
        used are reported as unused)."""
        rows: list[tuple[Mandate, AssetLimit, list[LimitStatus]]] = []
        for mandate in chain:
            for limit in mandate.limits:
                statuses = []
                for limit_id in limit_ids(mandate, limit):
                    try:
                        statuses.append(self.ledger.limit(limit_id))
                    except LimitNotFound:
                        continue
                rows.append((mandate, limit, statuses))
        return rows


def refusal_of(limit_id: str, cap: int, used: int, amount: int) -> MandateLimitExceeded:
    """The mandate refusal a ledger `LimitExceeded` on the mandate limit `limit_id` stands
    for: which mandate, which limit, what was spent and by how much the payment goes over."""
    parts = limit_id.split(":")
    mandate_id = "0x" + parts[1] if len(parts) == 4 else limit_id
    over = used + amount - cap
    if parts[-1] == "total":
        return MandateTotalExceeded(
            f"total: {used} of {cap} atomic units spent, the payment of {amount} would go "
            f"over by {over}",
            mandate_id=mandate_id,
            limit="total",
            allowed=cap,
            spent=used,
            amount=amount,
            overrun=over,
        )
    window_s = int(parts[-1][1:]) if parts[-1][1:].isdigit() else None
    return MandateWindowExceeded(
        f"window of {window_s} s: {used} of {cap} atomic units spent in it, the payment of "
        f"{amount} would go over by {over}",
        mandate_id=mandate_id,
        limit="windows",
        window_s=window_s,
        allowed=cap,
        spent=used,
        amount=amount,
        overrun=over,
    )


__all__: Sequence[str] = ("Authorized", "LedgerMandates", "limit_ids", "refusal_of")
