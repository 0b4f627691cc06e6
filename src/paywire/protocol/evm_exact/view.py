"""`ChainView`: what a facilitator knows of one token's state on chain, so that verify
needs no chain call on its hot path.

**What it holds.** As of the latest block the facilitator has seen (the *head*): each
payer's balance that verify asked about, read once per block (one ``eth_call`` that
reads ``balanceOf``, and ``authorizationState`` of the nonce when needed, together:
`paywire.chain.view_reads`); the token's spent nonces, from its ``AuthorizationUsed`` and
``AuthorizationCanceled`` events (`NonceHistory`: from the chain's first block on a chain
of up to `NONCE_BACKFILL_BLOCKS`; an authorization that may have been used before the
history starts has its nonce read with the balance); and the payments this facilitator
has in flight (`InFlight`): verified but not settled, being settled, or settled in a block
the view has not read yet.

**Following the head.** The view asks for the latest block number at most every
`HEAD_POLL_S` (and on the first verify after each settlement). On a new block it reads
that block's authorization events, forgets every balance and nonce state it read (they
are read again, once, at the new block) and ends the holds of payments mined up to it.

**Verify** on a warm view is a signature recovery and dictionary look-ups: a nonce in
flight here or spent on chain is a replay (``invalid_exact_evm_nonce_already_used``);
the payer's balance at the head, less what it has in flight here, must cover the payment
(``invalid_exact_evm_insufficient_balance``); the payment is then held until it settles,
is refused, or expires. So two payments in flight from one payer can never together pass
verify beyond its balance, and one authorization verified twice passes once.

**What it does not see** (the trade-off against simulating every payment): state younger
than the head (up to `HEAD_POLL_S` plus the node's own lag), other facilitators' payments
in flight, a reorganisation deeper than `REORG_RESCAN_BLOCKS`, and rules a token adds to
EIP-3009 (USDC's pause and blacklist). Each of these can make verify pass a payment that
then fails to settle; none can make money move without the chain's consent: settlement
always runs on the chain (simulated by the node before sending), and a payment that does
not settle is not served (verify, serve, settle) and not recorded. The other way round,
a payment verified and never settled (its handler failed) holds its amount here until it
expires. An operator who prefers the chain's own answer per payment sets
``simulate=True`` on the scheme: the view's checks and then an ``eth_call`` of
``transferWithAuthorization``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from paywire.chain.errors import ChainError
from paywire.protocol import errors
from paywire.protocol.authorization import Authorization
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.evm_exact.history import NonceHistory
from paywire.protocol.evm_exact.inflight import (
    MINED,
    SENDING,
    VERIFIED,
    Hold,
    HoldKey,
    InFlight,
    InFlightFull,
)
from paywire.protocol.ledger_network import CLOCK_SKEW_S

if TYPE_CHECKING:
    from paywire.chain.token import Token

logger = logging.getLogger("paywire.evm")

HEAD_POLL_S = 0.25
"""Verify asks the chain for its latest block number at most this often: a new block on a
2 s L2 (Base) is seen within an eighth of a block, and a busy facilitator costs its node
four ``eth_blockNumber`` a second whatever its load."""

NONCE_BACKFILL_BLOCKS = 50_000
"""On its first verify the view reads the token's authorization events of at most this
many recent blocks (ten ``eth_getLogs``); a chain no longer than that (paywire's local
chain) is read from its first block, and the view then knows every nonce ever spent."""

REORG_RESCAN_BLOCKS = 3
"""Each new head reads the events of this many blocks below it again, so a short
reorganisation's replacement blocks are seen."""

MAX_SPENT_NONCES = 500_000
"""Spent nonces remembered per token (~60 MB); past it the view drops them and reads each
nonce's ``authorizationState`` instead (correct, one read per payment)."""

MAX_HOLDS = 100_000
"""Payments in flight per token; past it verify refuses (``unexpected_verify_error``)
until some settle or expire."""

MAX_CACHED_READS = 100_000
"""Balances (and nonce states) kept per block; past it the cache starts over."""

MAX_READ_ATTEMPTS = 3
"""Reads of one verify retried when a new block arrived during the read."""


class ChainView:
    """The facilitator's view of `token`'s chain state (see the module's docstring).

    Thread-safe: verify may run in many threads; chain reads happen outside the lock.
    `clock` is the wall clock (authorizations' expiry), `monotonic` paces the head polls.
    """

    def __init__(
        self,
        token: Token,
        *,
        head_poll_s: float = HEAD_POLL_S,
        backfill_blocks: int = NONCE_BACKFILL_BLOCKS,
        max_spent_nonces: int = MAX_SPENT_NONCES,
        max_holds: int = MAX_HOLDS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= head_poll_s <= 3600:
            raise ValueError("head_poll_s must be in [0, 3600] seconds")
        if backfill_blocks < 0:
            raise ValueError("backfill_blocks must be 0 or more")
        self.token = token
        self.head_poll_s = head_poll_s
        self.backfill_blocks = backfill_blocks
        self.history = NonceHistory(max_spent_nonces)
        self.in_flight = InFlight(max_holds)
        self.reads = 0
        """Balance and nonce reads made (``eth_call``), for tests and monitoring."""
        self.polls = 0
        """Head polls made (``eth_blockNumber``)."""
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._follow = threading.Lock()
        self._head = -1
        self._next_poll = 0.0
        self._balances: dict[str, int] = {}
        self._nonces: dict[HoldKey, bool] = {}

    @property
    def head(self) -> int:
        """The latest block this view has read (-1 before its first verify)."""
        return self._head

    def refresh(self) -> None:
        """Ask the chain for its head on the next verify, whenever the last poll was."""
        self._next_poll = 0.0

    # ----- verify ------------------------------------------------------------------------

    def reserve(self, authorization: Authorization) -> None:
        """Admit `authorization` as a payment in flight, or refuse it with x402's reason:
        a replay, a spent nonce, or a balance (less what is in flight) short of its value."""
        key = (authorization.payer, authorization.nonce)
        self._follow_head()
        for _ in range(MAX_READ_ATTEMPTS):
            with self._lock:
                self.in_flight.expire(self._clock())
                self._refuse_replay(key)
                covered = self.history.covers(authorization.valid_after)
                if covered and self.history.is_spent(*key):
                    raise PaymentProblem(
                        errors.EVM_NONCE_USED, "the authorization's nonce is used on chain"
                    )
                balance = self._balances.get(authorization.payer)
                spent = False if covered else self._nonces.get(key)
                if balance is not None and spent is not None:
                    self._admit(authorization, balance, spent)
                    return
                head = self._head
            read_balance, read_spent = self._read(
                authorization, head, balance=balance is None, nonce=spent is None
            )
            with self._lock:
                if self._head != head:
                    continue  # another verify moved the head meanwhile: read at the new one
                if read_balance is not None:
                    if len(self._balances) >= MAX_CACHED_READS:
                        self._balances.clear()
                    self._balances[authorization.payer] = read_balance
                if read_spent is not None:
                    if len(self._nonces) >= MAX_CACHED_READS:
                        self._nonces.clear()
                    self._nonces[key] = read_spent
        raise PaymentProblem(
            errors.UNEXPECTED_VERIFY,
            f"{self.token.chain.network} kept moving on while verify read it; try again",
        )

    def release(self, authorization: Authorization) -> None:
        """End the hold verify made (the payment was refused after `reserve`)."""
        with self._lock:
            key = (authorization.payer, authorization.nonce)
            hold = self.in_flight.get(key)
            if hold is not None and hold.state == VERIFIED:
                self.in_flight.drop(key)

    # ----- settlement --------------------------------------------------------------------

    def sending(self, authorization: Authorization) -> None:
        """A settlement transaction of `authorization` is about to be sent."""
        with self._lock:
            hold = self._hold(authorization)
            if hold.state == VERIFIED:
                hold.state = SENDING

    def settled(self, authorization: Authorization, block: int) -> None:
        """`authorization` settled in block `block`: held until the view reads that block."""
        with self._lock:
            key = (authorization.payer, authorization.nonce)
            self._hold(authorization)
            if block <= self._head:
                self.in_flight.drop(key)  # the balance read at the head already shows it
            else:
                self.in_flight.mark_mined(key, block)
        self.refresh()

    def refused(self, authorization: Authorization) -> None:
        """Settlement of `authorization` was refused: nothing moved. The chain did not
        agree with the view, so the payer is read again, at a fresh head."""
        with self._lock:
            key = (authorization.payer, authorization.nonce)
            hold = self.in_flight.get(key)
            if hold is not None and hold.state != MINED:
                self.in_flight.drop(key)
            self._balances.pop(authorization.payer, None)
            self._nonces.pop(key, None)
        self.refresh()

    # ----- inside ------------------------------------------------------------------------

    def _refuse_replay(self, key: HoldKey) -> None:
        hold = self.in_flight.get(key)
        if hold is None:
            return
        if hold.state == MINED:
            raise PaymentProblem(
                errors.EVM_NONCE_USED, f"the authorization was settled in block {hold.mined_block}"
            )
        raise PaymentProblem(
            errors.EVM_NONCE_USED,
            "the authorization is already in flight here (verified or being settled): "
            "a payment is verified once",
        )

    def _admit(self, authorization: Authorization, balance: int, spent: bool) -> None:
        if spent:
            raise PaymentProblem(
                errors.EVM_NONCE_USED, "the authorization's nonce is used on chain"
            )
        held = self.in_flight.held(authorization.payer)
        if balance - held < authorization.value:
            raise PaymentProblem(
                errors.EVM_INSUFFICIENT_BALANCE,
                f"the payer holds {balance} at block {self._head}, {held} of it in payments "
                f"in flight; this payment needs {authorization.value} (atomic units)",
            )
        try:
            self.in_flight.add(
                authorization.payer,
                authorization.nonce,
                authorization.value,
                authorization.valid_before + CLOCK_SKEW_S,
                VERIFIED,
                force=False,
            )
        except InFlightFull as full:
            raise PaymentProblem(
                errors.UNEXPECTED_VERIFY, f"{full}: wait for some to settle or expire"
            ) from None

    def _hold(self, authorization: Authorization) -> Hold:
        """The hold of `authorization`, made now if verify made none (settle alone)."""
        key = (authorization.payer, authorization.nonce)
        hold = self.in_flight.get(key)
        if hold is None:
            hold = self.in_flight.add(
                authorization.payer,
                authorization.nonce,
                authorization.value,
                authorization.valid_before + CLOCK_SKEW_S,
                SENDING,
                force=True,
            )
        return hold

    def _follow_head(self) -> None:
        """Poll the head if it is time; on a new block, read its events and start over."""
        if self._monotonic() < self._next_poll:
            return
        with self._follow:
            if self._monotonic() < self._next_poll:
                return
            from paywire.chain.view_reads import authorization_events

            chain, address = self.token.chain, self.token.address
            history = self.history
            try:
                latest = chain.block_number()
                self.polls += 1
                if history.enabled and not history.started:
                    self._start_history(latest)
                elif history.enabled and latest != self._head:
                    start = max(0, min(history.to_block, latest) + 1 - REORG_RESCAN_BLOCKS)
                    events = authorization_events(chain, address, from_block=start, to_block=latest)
                    with self._lock:
                        history.extend(events, to_block=latest)
            except ChainError as error:
                raise PaymentProblem(
                    errors.UNEXPECTED_VERIFY, f"cannot follow {chain.network}: {error}"
                ) from None
            with self._lock:
                if latest != self._head:
                    self._head = latest
                    self._balances.clear()
                    self._nonces.clear()
                    self.in_flight.forget_mined(latest)
            self._next_poll = self._monotonic() + self.head_poll_s

    def _start_history(self, latest: int) -> None:
        """Read the token's events of the last `backfill_blocks` blocks (all of them on a
        shorter chain). An endpoint that cannot answer that (a range too wide, too many
        events, a timeout) leaves a history that starts after `latest`: correct, with more
        nonce reads until the authorizations verified are younger than it."""
        from paywire.chain.view_reads import authorization_events, block_timestamp

        chain, address = self.token.chain, self.token.address
        first = max(0, latest - self.backfill_blocks + 1)
        try:
            since = None if first == 0 else block_timestamp(chain, first - 1)
            events = authorization_events(chain, address, from_block=first, to_block=latest)
        except ChainError as error:
            logger.warning(
                "%s on %s: cannot read its authorization events from block %d (%s); the "
                "view's nonce history starts at block %d",
                self.token.address,
                chain.network,
                first,
                error,
                latest + 1,
            )
            first, since, events = latest + 1, block_timestamp(chain, latest), []
        with self._lock:
            self.history.start(events, from_block=first, to_block=latest, since=since)

    def _read(
        self, authorization: Authorization, block: int, *, balance: bool, nonce: bool
    ) -> tuple[int | None, bool | None]:
        from paywire.chain.view_reads import token_reads

        try:
            held, states = token_reads(
                self.token.chain,
                self.token.address,
                authorization.payer,
                [authorization.nonce] if nonce else [],
                block=block,
                balance=balance,
            )
        except ChainError as error:
            raise PaymentProblem(
                errors.UNEXPECTED_VERIFY,
                f"cannot read {authorization.payer}'s state on {self.token.chain.network}: {error}",
            ) from None
        self.reads += 1
        return held, (states[0] if nonce else None)
