"""The ledger writes and checks of a channel claim (see `ledger`): what a claim may do on
a channel as it stands, and the linked batch that does it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from paywire.crypto.eip712 import Eip712Domain
from paywire.crypto.keys import InvalidSignature
from paywire.errors import PaywireError
from paywire.ledger import LedgerError, NewTransfer, TransferCode, hold, post, void
from paywire.ledger.model import check_metadata
from paywire.ledger.names import wallet_account_id
from paywire.money import Asset
from paywire.protocol import errors
from paywire.protocol.channel.ledger_state import (
    OPEN,
    LedgerChannelState,
    claim_id,
    hold_id,
    hold_metadata,
    tagged,
    void_id,
)
from paywire.protocol.channel.ledger_wire import ClaimEntry, ClaimOutcome
from paywire.protocol.channel.wire import (
    CHANNEL_PAYEE,
    CHANNEL_UNKNOWN,
    CHARGE_EXCEEDS_VOUCHER,
    SCHEME,
    VOUCHER_PAST_DEPOSIT,
    VOUCHER_SIGNATURE,
    VOUCHER_TYPE,
    typed,
)
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.mandate_gate import TASK_KEY

MAX_SUMMARY_BYTES = 2048
"""Charges' metadata kept with a claim; a larger summary is replaced by a marker."""


def check_claim(
    entry: ClaimEntry,
    state: LedgerChannelState | None,
    signer: str,
    asset: Asset,
    domain: Eip712Domain,
) -> ClaimOutcome | None:
    """Why `entry` cannot be claimed on `state` by `signer` (None: it can)."""
    cid = "0x" + entry.channel_id.hex()
    if state is None:
        return ClaimOutcome(cid, False, 0, reason=CHANNEL_UNKNOWN, message="no such channel")
    if state.receiver.lower() != signer.lower() or state.asset != asset.code:
        return outcome_of(state, False, CHANNEL_PAYEE, f"the channel pays {state.receiver}")
    if entry.total > entry.max_claimable:
        return outcome_of(state, False, CHARGE_EXCEEDS_VOUCHER, "the claim exceeds the voucher")
    if entry.total > state.deposit:
        return outcome_of(state, False, VOUCHER_PAST_DEPOSIT, "the claim exceeds the deposit")
    if entry.total > state.claimed:
        message = {"channelId": entry.channel_id, "maxClaimableAmount": entry.max_claimable}
        try:
            typed(domain, VOUCHER_TYPE).verify(message, entry.voucher_signature, state.payer)
        except (InvalidSignature, PaywireError) as error:
            return outcome_of(state, False, VOUCHER_SIGNATURE, f"the voucher's {error}")
    return None


def channel_hex_of(channel_id: str) -> str:
    text = channel_id.lower().removeprefix("0x")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise PaymentProblem(
            errors.INVALID_PAYLOAD, "a channel id is 0x and 32 bytes of hex", status=400
        )
    return text


def outcome_of(
    state: LedgerChannelState,
    ok: bool,
    reason: str | None = None,
    message: str | None = None,
    *,
    closed: bool | None = None,
) -> ClaimOutcome:
    return ClaimOutcome(
        channel_id=state.channel_id,
        ok=ok,
        claimed=state.claimed,
        deposit=state.deposit,
        closed=state.status != OPEN if closed is None else closed,
        reason=reason,
        message=message,
    )


def summary_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """The claim's summary of its charges (see `summary`), if it fits the ledger's rules."""
    if not metadata:
        return {}
    try:
        text = json.dumps(metadata, separators=(",", ":"))
        if len(text) > MAX_SUMMARY_BYTES:
            raise ValueError(text)
        return check_metadata(dict(metadata))
    except (ValueError, TypeError, LedgerError):
        return {"summary": "truncated"}


def claim_requests(
    state: LedgerChannelState,
    entry: ClaimEntry,
    receiver: str,
    asset: Asset,
    delta: int,
    final: bool,
    now: float,
) -> Sequence[NewTransfer]:
    """Post `delta` of the current hold (or void it, for a close with nothing new), then,
    unless `final`, hold the rest again until the channel's expiry. All of it carries the
    channel's task, as the current hold names it; the charges' summary never does (only
    the channel's mandate says what task it pays for)."""
    channel_hex, seq = state.hex, state.seq
    fields = {"channel": state.channel_id, "payer": state.payer, "receiver": state.receiver}
    total = max(entry.total, state.claimed)
    meta = tagged(
        {"scheme": SCHEME, "channel": state.channel_id, "seq": seq, "totalClaimed": str(total)},
        state.task,
    )
    summary = summary_metadata(entry.metadata)
    meta.update((k, v) for k, v in summary.items() if k not in meta and k != TASK_KEY)
    if delta > 0:
        voucher = {
            "type": "voucher",
            "channelId": state.channel_id,
            "maxClaimableAmount": str(entry.max_claimable),
            "signature": "0x" + entry.voucher_signature.hex(),
        }
        authorization = json.dumps(
            {"voucher": voucher, "totalClaimed": str(total), "receiver": receiver},
            separators=(",", ":"),
        )
        first = post(
            claim_id(channel_hex, seq),
            state.hold_id,
            asset.atomic(delta),
            metadata=meta,
            authorization=authorization,
        )
    else:
        first = void(void_id(channel_hex, seq), state.hold_id, metadata=meta)
    requests = [first]
    rest = state.deposit - total
    if not final and rest > 0:
        requests.append(
            hold(
                hold_id(channel_hex, seq + 1),
                wallet_account_id(state.payer, asset.code),
                wallet_account_id(state.receiver, asset.code),
                asset.atomic(rest),
                timeout_s=max(1, state.expiry - int(now)),
                code=TransferCode.PAYMENT,
                metadata=hold_metadata(
                    fields,
                    seq=seq + 1,
                    deposit=state.deposit,
                    claimed=total,
                    expiry=state.expiry,
                    task=state.task,
                ),
                authorization=state.authorization,
                limits=state.limits,
            )
        )
    return requests
