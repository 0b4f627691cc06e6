"""`LedgerChannels`: payment channels on the paywire ledger network (the facilitator's side).

Opening a channel is a hold of the deposit on the payer's wallet account, in favour of the
payee's, until the channel's expiry, authorized by the payer's `OpenChannel` signature
(kept verbatim with the hold). A payer with a mandate chain opens under it: the hold names
the ledger spend limits of every mandate of the chain, so the ledger refuses, atomically,
a deposit past a mandate's total or window, or under a revoked mandate; a deposit counts
as spent until the channel ends, then what was not claimed is given back.

Claiming (by the payee, who signs the batch) is, per channel, one linked ledger batch:
post the newly charged amount of the current hold (with the payer's voucher as its
authorization and the charges' metering summarized in its metadata) and hold the rest
again until the same expiry. A close posts the last claim (or voids the hold) and makes no
new hold, so the rest goes back to the payer; so does the ledger itself when the hold's
timeout passes (expiry): the payee must claim before. The channels of one claim batch are
written concurrently (one group commit), each on its own: one that fails costs the others
nothing. A renewal hold that a mandate now refuses (revoked, window full) turns the claim
into a final one: the payee still gets what it charged, the channel ends.

A channel opened under a mandate chain that names a task (the leaf's task id, else the
nearest ancestor's: `mandate_gate.chain_task`) is that task's: its holds, claims, voids and
close all carry ``{"task": <id>}`` in their metadata, read from the current hold for every
later write (a restarted facilitator keeps tagging). A top-up under a mandate takes that
mandate's task (as it takes its limits); without one it keeps the channel's.

State lives in the ledger only (see `ledger_state`): any facilitator process on the same
ledger reads the same channels, and the ledger's idempotency and hold states decide
races between them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from x402.schemas import PaymentPayload

from paywire.crypto.eip712 import Eip712Domain
from paywire.crypto.keys import InvalidSignature
from paywire.errors import PaywireError
from paywire.ledger import (
    AccountKind,
    AccountNotFound,
    ExceedsCredits,
    IdempotencyConflict,
    InvalidRequest,
    Ledger,
    LedgerError,
    LimitClosed,
    LimitExceeded,
    LinkedBatchFailed,
    NewAccount,
    NewTransfer,
    PendingExpired,
    TransferCode,
    hold,
    void,
)
from paywire.ledger.names import wallet_account_id
from paywire.money import KNOWN_ASSETS, Asset
from paywire.protocol import errors
from paywire.protocol.channel.ledger_claims import (
    channel_hex_of,
    check_claim,
    claim_requests,
    outcome_of,
)
from paywire.protocol.channel.ledger_state import (
    CLOSED,
    EXPIRED,
    OPEN,
    LedgerChannelState,
    hold_id,
    hold_metadata,
    read_state,
    tagged,
    void_id,
)
from paywire.protocol.channel.ledger_wire import (
    ClaimBatch,
    ClaimEntry,
    ClaimOutcome,
    OpenChannelRequest,
)
from paywire.protocol.channel.wire import (
    CHANNEL_CLOSED,
    CLAIM_REFUSED,
    OPEN_REFUSED,
    OPEN_SIGNATURE,
    SCHEME,
    ledger_channel_domain,
    ledger_channel_id,
)
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.idempotency import KeyLocks
from paywire.protocol.ledger_network import ledger_network
from paywire.protocol.mandate_gate import MandateGate, task_of

MIN_TTL_S = 60
"""A channel lives at least a minute (the payee needs time to claim before it expires)."""

MAX_TTL_S = 30 * 24 * 3600
"""...and at most 30 days (a deposit is locked that long at worst)."""

CLOCK_SKEW_S = 30
"""How far a payer's clock may run ahead of the ledger's for an expiry."""

MIN_RENEW_S = 2
"""A claim renews the hold only if this much of the channel's life is left; else it is
the channel's last claim (the rest goes back to the payer)."""

MAX_CLAIM_ATTEMPTS = 4
"""Re-reads of a channel whose hold another writer resolved meanwhile."""

MAX_SEQ_HINTS = 100_000
"""Channels whose latest hold number is remembered (a hint: reads stay correct without)."""


class LedgerChannels:
    """Channels on `ledger`'s network: open (and top up), read, claim, close."""

    scheme = SCHEME

    def __init__(
        self,
        ledger: Ledger,
        *,
        assets: Mapping[str, Asset] | None = None,
        mandates: MandateGate | None = None,
        clock: Callable[[], float] | None = None,
        min_ttl_s: int = MIN_TTL_S,
        max_ttl_s: int = MAX_TTL_S,
    ) -> None:
        self.ledger = ledger
        self.network = ledger_network(ledger.ledger_id)
        self._assets = dict(KNOWN_ASSETS if assets is None else assets)
        self._now: Callable[[], float] = clock or (lambda: ledger.clock() / 1e9)
        self.mandates = mandates or MandateGate(ledger, self._assets, clock=time.time)
        self.min_ttl_s, self.max_ttl_s = min_ttl_s, max_ttl_s
        self._locks = KeyLocks()
        self._hints: OrderedDict[str, int] = OrderedDict()
        self._opened: set[str] = set()

    # ----- reads -------------------------------------------------------------------------

    def domain(self, asset_code: str) -> Eip712Domain:
        """The EIP-712 domain vouchers, opens and claims in `asset_code` are signed in."""
        return ledger_channel_domain(self.network, asset_code)

    def asset(self, code: str) -> Asset:
        asset = self._assets.get(code)
        if asset is None:
            raise PaymentProblem(errors.INVALID_REQUIREMENTS, f"asset {code!r} is not known here")
        return asset

    def info(self) -> dict[str, Any]:
        """What a client needs to open a channel here."""
        return {
            "scheme": SCHEME,
            "network": self.network,
            "minTtl": self.min_ttl_s,
            "maxTtl": self.max_ttl_s,
            "assets": {
                code: {"decimals": asset.decimals, "domain": self.domain(code).to_json()}
                for code, asset in self._assets.items()
            },
        }

    def state_now(self, channel_id: str) -> LedgerChannelState | None:
        """The channel as the ledger says now (None: no such channel). Blocking reads."""
        channel_hex = channel_hex_of(channel_id)
        state = read_state(
            self.ledger, self.network, channel_hex, self._now, self._hints.get(channel_hex, 0)
        )
        if state is not None:
            self._hint(channel_hex, state.seq)
        return state

    async def state(self, channel_id: str) -> LedgerChannelState | None:
        return await asyncio.to_thread(self.state_now, channel_id)

    # ----- open and top up ---------------------------------------------------------------

    async def open(self, payload: PaymentPayload) -> LedgerChannelState:
        """Open the channel `payload` asks for (or top it up: a larger deposit or a later
        expiry, signed anew with the same salt); the same request again changes nothing.
        Raises a `PaymentProblem` naming what is refused."""
        accepted = payload.accepted
        if accepted.scheme != SCHEME:
            raise PaymentProblem(errors.UNSUPPORTED_SCHEME, f"channels are {SCHEME}")
        if accepted.network != self.network:
            raise PaymentProblem(
                errors.NETWORK_MISMATCH,
                f"channels here are on {self.network}, not {accepted.network}",
            )
        asset = self.asset(accepted.asset)
        domain = self.domain(asset.code)
        request = OpenChannelRequest.from_payload(payload.payload, accepted.pay_to)
        try:
            request.verify(domain)
        except (InvalidSignature, PaywireError) as error:
            raise PaymentProblem(OPEN_SIGNATURE, f"the open is not the payer's: {error}") from None
        if request.payer == request.receiver:
            raise PaymentProblem(OPEN_REFUSED, "a channel's payer cannot be its receiver")
        now = int(self._now())
        ttl = request.expiry - now
        if not self.min_ttl_s <= ttl <= self.max_ttl_s + CLOCK_SKEW_S:
            raise PaymentProblem(
                OPEN_REFUSED,
                f"a channel lives {self.min_ttl_s}..{self.max_ttl_s} s; expiry "
                f"{request.expiry} is {ttl} s from now",
            )
        channel_hex = ledger_channel_id(domain, request.payer, request.receiver, request.salt).hex()
        payer_account = wallet_account_id(request.payer, asset.code)
        await self.mandates.warm(payer_account)  # its one ledger read, off the event loop
        mandated = self.mandates.check(
            payload,
            network=self.network,
            asset=asset.code,
            payer=request.payer,
            payee=request.receiver,
            amount=1,  # the deposit's total and windows are the ledger's to check
            payer_account=payer_account,
            resource=payload.resource.url if payload.resource else None,
        )
        limits: tuple[str, ...] = ()
        task = task_of(mandated)
        if mandated is not None:
            await self.mandates.prepare(mandated, self.network, asset.code)
            limits = mandated.limits
        payee_account = await self._payee_account(request.receiver, asset)
        authorization = json.dumps(
            payload.model_dump(by_alias=True, exclude_none=True), separators=(",", ":")
        )
        fields = {
            "channel": "0x" + channel_hex,
            "payer": request.payer,
            "receiver": request.receiver,
        }
        async with self._locks.hold(channel_hex):
            state = await self.state(channel_hex)
            if state is None:
                seq, claimed, requests = 0, 0, []
            elif state.status != OPEN:
                raise PaymentProblem(CHANNEL_CLOSED, f"channel 0x{channel_hex} is {state.status}")
            elif (request.deposit, request.expiry) == (state.deposit, state.expiry):
                return state
            elif request.deposit < state.deposit or request.expiry < state.expiry:
                raise PaymentProblem(
                    OPEN_REFUSED, "a top-up may not lower the channel's deposit or expiry"
                )
            else:
                seq, claimed = state.seq + 1, state.claimed
                limits = limits or state.limits
                task = task if mandated is not None else state.task
                void_meta = tagged(fields, state.task)
                requests = [
                    void(void_id(channel_hex, state.seq), state.hold_id, metadata=void_meta)
                ]
            requests.append(
                hold(
                    hold_id(channel_hex, seq),
                    payer_account,
                    payee_account,
                    asset.atomic(request.deposit - claimed),
                    timeout_s=ttl,
                    code=TransferCode.PAYMENT,
                    metadata=hold_metadata(
                        fields,
                        seq=seq,
                        deposit=request.deposit,
                        claimed=claimed,
                        expiry=request.expiry,
                        task=task,
                    ),
                    authorization=authorization,
                    limits=limits,
                )
            )
            await self._write(requests)
            opened = await self.state(channel_hex)
        assert opened is not None
        return opened

    async def _write(self, requests: list[NewTransfer]) -> None:
        try:
            if len(requests) == 1:
                await self.ledger.asubmit(requests[0])
            else:
                await self.ledger.asubmit_linked(requests)
        except LinkedBatchFailed as failed:
            raise self._refusal(failed.cause) from None
        except LedgerError as error:
            raise self._refusal(error) from None

    def _refusal(self, error: LedgerError) -> PaymentProblem:
        if isinstance(error, LimitExceeded | LimitClosed):
            return self.mandates.refusal(error)
        if isinstance(error, ExceedsCredits | AccountNotFound):
            return PaymentProblem(errors.INSUFFICIENT_FUNDS, f"the deposit is not there: {error}")
        if isinstance(error, IdempotencyConflict):
            return PaymentProblem(OPEN_REFUSED, "the channel changed meanwhile; send it again")
        return PaymentProblem(errors.SETTLEMENT_FAILED, str(error))

    async def _payee_account(self, receiver: str, asset: Asset) -> str:
        account = wallet_account_id(receiver, asset.code)
        if account not in self._opened:
            request = NewAccount(account, asset, AccountKind.AGENT, owner=receiver)
            try:
                await asyncio.to_thread(self.ledger.open_account, request)
            except LedgerError as error:
                raise PaymentProblem(errors.SETTLEMENT_FAILED, str(error)) from None
            self._opened.add(account)
        return account

    # ----- claims and closes -------------------------------------------------------------

    async def claim(self, batch: ClaimBatch) -> list[ClaimOutcome]:
        """Claim (or close) every channel of `batch`, each on its own, all at once: one
        outcome per claim, in order. The batch must be signed by the channels' receiver."""
        asset = self.asset(batch.asset)
        domain = self.domain(asset.code)
        try:
            signer = batch.signer(domain)
        except (InvalidSignature, PaywireError) as error:
            raise PaymentProblem(CLAIM_REFUSED, f"the claim batch's {error}", status=400) from None
        return list(
            await asyncio.gather(
                *(self._claim(entry, signer, asset, domain) for entry in batch.claims)
            )
        )

    async def _claim(
        self, entry: ClaimEntry, signer: str, asset: Asset, domain: Eip712Domain
    ) -> ClaimOutcome:
        channel_hex = entry.channel_id.hex()
        close = entry.close
        async with self._locks.hold(channel_hex):
            for _ in range(MAX_CLAIM_ATTEMPTS):
                state = await self.state(channel_hex)
                refused = check_claim(entry, state, signer, asset, domain)
                if refused is not None:
                    return refused
                assert state is not None
                if state.status != OPEN:
                    # Ended: fine if it already paid this much, else it is too late.
                    if entry.total <= state.claimed:
                        return outcome_of(state, True, closed=True)
                    return outcome_of(state, False, CHANNEL_CLOSED, f"the channel {state.status}")
                delta = entry.total - state.claimed
                if delta <= 0 and not close:
                    return outcome_of(state, True)
                final = close or int(self._now()) + MIN_RENEW_S > state.expiry
                requests = claim_requests(state, entry, signer, asset, delta, final, self._now())
                try:
                    done = await self.ledger.asubmit_linked(requests)
                except LinkedBatchFailed as failed:
                    cause = failed.cause
                    if failed.index == 1 and isinstance(cause, LimitExceeded | LimitClosed):
                        close = True  # the mandate no longer takes the rest: end here
                        continue
                    if isinstance(cause, PendingExpired):
                        return outcome_of(state, False, CHANNEL_CLOSED, "the channel expired")
                    if isinstance(cause, InvalidRequest):
                        return outcome_of(state, False, CLAIM_REFUSED, str(cause))
                    continue  # resolved by another writer meanwhile: read again
                except IdempotencyConflict:
                    continue
                except LedgerError as error:
                    return outcome_of(state, False, CLAIM_REFUSED, str(error))
                self._hint(channel_hex, state.seq + (0 if final else 1))
                return ClaimOutcome(
                    channel_id=state.channel_id,
                    ok=True,
                    claimed=max(entry.total, state.claimed),
                    deposit=state.deposit,
                    closed=final or entry.total >= state.deposit,
                    transfer=done[0].id,
                )
        return ClaimOutcome(
            "0x" + channel_hex, False, 0, reason=CLAIM_REFUSED, message="the channel kept changing"
        )

    def _hint(self, channel_hex: str, seq: int) -> None:
        self._hints[channel_hex] = seq
        self._hints.move_to_end(channel_hex)
        while len(self._hints) > MAX_SEQ_HINTS:
            self._hints.popitem(last=False)


__all__ = ["CLOSED", "EXPIRED", "OPEN", "LedgerChannels"]
