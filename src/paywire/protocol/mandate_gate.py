"""The facilitator's mandate enforcement on the ledger network.

A payment carrying a mandate chain (`paywire-mandate`) is checked against it before the
write (signatures, links, validity, network, asset, payee, origin, per-payment maximum)
and written naming the ledger spend limits of every mandate in the chain, which the ledger
checks atomically with the transfer (totals, rolling windows, revocation). A payer whose
account says ``mandatePrincipal`` in its metadata may only pay under a mandate chain
rooted at that principal.

Refusals carry the mandate's reason (``mandate_total_exceeded``,
``mandate_window_exceeded``, ``mandate_revoked``, ...) and a message naming the mandate,
the limit and by how much.

A payment under a chain whose mandates name a task id is for that task (`task_of`): what
it writes to the ledger carries ``{"task": <id>}`` in its metadata (`TASK_KEY`), so the
per-task books find a task's spending, whatever the scheme (`exact`, channels).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from x402.schemas import PaymentPayload

from paywire.errors import PaywireError
from paywire.ledger import AccountNotFound, Ledger, LimitClosed, LimitExceeded, LimitNotFound
from paywire.mandate import MandateChain, Payment, origin_of
from paywire.mandate._ledger import LedgerMandates, refusal_of
from paywire.money import Asset
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.mandate_extension import mandate_of

MANDATE_PRINCIPAL_KEY = "mandatePrincipal"
"""Account metadata: payments from this account need a mandate chain rooted here."""

MANDATE_REQUIRED = "mandate_required"
MANDATE_REVOKED = "mandate_revoked"
MANDATE_INVALID = "mandate_invalid"

MAX_KNOWN_PAYERS = 100_000
"""Payer accounts whose mandate requirement is cached (account metadata never changes)."""

TASK_KEY = "task"
"""Transfer metadata: the task id a payment made under a task's mandate is for."""


@dataclass(frozen=True, slots=True)
class MandatedPayment:
    """A payment's mandate chain and the ledger limits its transfer must name."""

    chain: MandateChain
    limits: tuple[str, ...]


def chain_task(chain: MandateChain) -> str | None:
    """The task a payment under `chain` is for: the most specific task id, i.e. the leaf's
    (the payer's own mandate), else that of the nearest ancestor naming one; None if no
    mandate of the chain names a task. When mandates name different tasks, the leaf's
    wins: a sub-agent delegated for a sub-task pays for that sub-task."""
    for mandate in reversed(tuple(chain)):
        if mandate.task_id:
            return mandate.task_id
    return None


def task_of(mandated: MandatedPayment | None) -> str | None:
    """The task a mandated payment is for (see `chain_task`); None without a mandate."""
    return None if mandated is None else chain_task(mandated.chain)


class MandateGate:
    """Checks payments on one ledger against their mandate chains."""

    def __init__(
        self,
        ledger: Ledger,
        assets: dict[str, Asset],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.mandates = LedgerMandates(ledger, assets=assets, clock=clock)
        self._clock = clock
        self._lock = threading.Lock()
        self._principals: OrderedDict[str, str | None] = OrderedDict()

    def check(
        self,
        payload: PaymentPayload,
        *,
        network: str,
        asset: str,
        payer: str,
        payee: str,
        amount: int,
        payer_account: str,
        resource: str | None,
    ) -> MandatedPayment | None:
        """The payment's mandate and limits (None: no mandate, and none required); a
        `PaymentProblem` naming the rule it breaks."""
        chain = mandate_of(payload)
        required = self._required_principal(payer_account)
        if chain is None:
            if required is not None:
                raise PaymentProblem(
                    MANDATE_REQUIRED,
                    f"payments from {payer} need a mandate from {required} (paywire-mandate)",
                )
            return None
        if required is not None and chain.principal.lower() != required.lower():
            raise PaymentProblem(
                MANDATE_REQUIRED,
                f"payments from {payer} need a mandate from {required}, not {chain.principal}",
            )
        url = resource or (payload.resource.url if payload.resource else None)
        try:
            origin = origin_of(url) if url else None
        except PaywireError:
            origin = None
        payment = Payment(network, asset, amount, payee, origin, int(self._clock()))
        try:
            authorized = self.mandates.authorize(chain, payer, payment)
        except PaywireError as error:
            reason = getattr(error, "code", MANDATE_INVALID)
            if not reason.startswith("mandate_"):
                reason = MANDATE_INVALID
            raise PaymentProblem(reason, str(error)) from None
        return MandatedPayment(chain, authorized.limits)

    async def warm(self, account_id: str) -> None:
        """Read whether `account_id` needs a mandate, in a thread, so that `check` (sync)
        finds it known and does not block an event loop on the ledger."""
        with self._lock:
            if account_id in self._principals:
                return
        await asyncio.to_thread(self._required_principal, account_id)

    def _required_principal(self, account_id: str) -> str | None:
        with self._lock:
            if account_id in self._principals:
                self._principals.move_to_end(account_id)
                return self._principals[account_id]
        try:
            metadata = self.ledger.account(account_id).metadata
        except AccountNotFound:
            return None  # no account, no payment: the transfer will say so
        value = metadata.get(MANDATE_PRINCIPAL_KEY)
        principal = value if isinstance(value, str) else None
        with self._lock:
            self._principals[account_id] = principal
            while len(self._principals) > MAX_KNOWN_PAYERS:
                self._principals.popitem(last=False)
        return principal

    async def prepare(self, mandated: MandatedPayment, network: str, asset: str) -> None:
        """Open the chain's ledger limits (once; idempotent) before the transfer names them."""
        if self.mandates.limits_open(mandated.limits):
            return
        try:
            await asyncio.to_thread(self.mandates.open_limits, mandated.chain, network, asset)
        except PaywireError as error:
            message = f"cannot open the mandate's limits: {error}"
            raise PaymentProblem(MANDATE_INVALID, message) from None

    def check_now(self, mandated: MandatedPayment, amount: int) -> None:
        """Whether the limits would take `amount` now (a read, for `verify`: settling
        decides, atomically)."""
        for limit_id in mandated.limits:
            try:
                status = self.ledger.limit(limit_id)
            except LimitNotFound:
                continue  # never used: all of it is left
            if status.closed:
                raise PaymentProblem(
                    MANDATE_REVOKED, f"a mandate of the chain was revoked ({limit_id})"
                )
            if status.used_atomic + amount > status.cap_atomic:
                refusal = refusal_of(limit_id, status.cap_atomic, status.used_atomic, amount)
                raise PaymentProblem(refusal.code, str(refusal))

    def refusal(self, error: LimitExceeded | LimitClosed) -> PaymentProblem:
        """The x402 refusal for a ledger limit error on a mandate limit."""
        if isinstance(error, LimitClosed):
            return PaymentProblem(MANDATE_REVOKED, f"a mandate of the chain was revoked: {error}")
        refusal = refusal_of(error.limit_id, error.cap, error.used, error.amount)
        return PaymentProblem(refusal.code, str(refusal))
