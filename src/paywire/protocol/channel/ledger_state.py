"""A ledger channel's state, read back from the ledger alone.

A channel is a chain of holds from the payer's wallet account to the payee's, one at a
time, with deterministic ids:

    ch:<channel id hex>:<n>          hold n: deposit - claimed, until the channel's expiry
    ch:<channel id hex>:<n>:claim    the post of hold n that pays the payee a claim
    ch:<channel id hex>:<n>:void     the void of hold n (a top-up, or a close with nothing
                                     more to claim)

Each hold's metadata says what it stands for (payer, receiver, deposit, claimed total
before it, expiry, n, and the task the channel pays for if its mandate names one); each
claim posts the newly charged amount of hold n and, in the same linked batch, makes hold
n + 1 for the rest. So the latest hold says where the channel stands: pending (open),
posted with no successor (closed by a final claim, or spent), voided (closed), expired
(the payer got the rest back). It is found by galloping over n (1, 2, 4, ... then
bisection): a few reads, whatever the channel's age; and nothing of the channel's state
needs to live anywhere but the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from paywire.ledger import HoldState, Ledger, Snapshot, TransferNotFound
from paywire.protocol.mandate_gate import TASK_KEY

HOLD_PREFIX = "ch:"

OPEN = "open"
CLOSED = "closed"
EXPIRED = "expired"


def hold_id(channel_hex: str, seq: int) -> str:
    """Hold `seq` of a channel (`channel_hex`: the id's 64 hex digits, lower case)."""
    return f"{HOLD_PREFIX}{channel_hex}:{seq}"


def claim_id(channel_hex: str, seq: int) -> str:
    return f"{hold_id(channel_hex, seq)}:claim"


def void_id(channel_hex: str, seq: int) -> str:
    return f"{hold_id(channel_hex, seq)}:void"


@dataclass(frozen=True, slots=True)
class LedgerChannelState:
    """A ledger channel as its latest hold says: `deposit` in all, `claimed` of it paid to
    `receiver`, the rest held until `expiry` (unix s) while `status` is open."""

    channel_id: str
    network: str
    asset: str
    payer: str
    receiver: str
    deposit: int
    claimed: int
    expiry: int
    status: str
    seq: int
    limits: tuple[str, ...] = ()
    authorization: str | None = None
    """The payer's signed open (or top-up) the current hold was made on, verbatim."""
    task: str | None = None
    """The task the channel pays for (its mandate chain's, see `mandate_gate.chain_task`),
    as the current hold says; every transfer of the channel carries it (None: no task)."""

    @property
    def hex(self) -> str:
        return self.channel_id[2:]

    @property
    def hold_id(self) -> str:
        return hold_id(self.hex, self.seq)

    @property
    def held(self) -> int:
        """What the channel still holds for the payee (0 once it has ended)."""
        return self.deposit - self.claimed if self.status == OPEN else 0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "channelId": self.channel_id,
            "network": self.network,
            "asset": self.asset,
            "payer": self.payer,
            "receiver": self.receiver,
            "deposit": str(self.deposit),
            "claimedTotal": str(self.claimed),
            "expiry": self.expiry,
            "status": self.status,
            "hold": self.hold_id,
        }
        if self.task is not None:
            data["task"] = self.task
        return data


def latest_seq(ledger: Ledger, channel_hex: str, hint: int = 0) -> int | None:
    """The latest hold of a channel (None: no such channel), read in one snapshot."""
    with ledger.snapshot() as snapshot:
        return _latest_seq(snapshot, channel_hex, hint)


def _latest_seq(snapshot: Snapshot, channel_hex: str, hint: int) -> int | None:
    def exists(seq: int) -> bool:
        return snapshot.has_transfer(hold_id(channel_hex, seq))

    if not exists(0):
        return None
    low = hint if hint > 0 and exists(hint) else 0
    step = 1
    high = low + step
    while exists(high):
        low = high
        step *= 2
        high = low + step
    while high - low > 1:
        middle = (low + high) // 2
        if exists(middle):
            low = middle
        else:
            high = middle
    return low


def read_state(
    ledger: Ledger, network: str, channel_hex: str, now: Callable[[], float], hint: int = 0
) -> LedgerChannelState | None:
    """The channel's state from its latest hold (None if there is no such channel), read
    in one snapshot (its holds, and the claim that closed it)."""
    with ledger.snapshot() as snapshot:
        seq = _latest_seq(snapshot, channel_hex, hint)
        if seq is None:
            return None
        try:
            status = snapshot.hold_status(hold_id(channel_hex, seq))
        except TransferNotFound:  # a channel id that is not one of ours
            return None
        closing = (
            snapshot.transfer(status.resolved_by)
            if status.state is HoldState.POSTED and status.resolved_by is not None
            else None
        )
    hold = status.transfer
    meta = hold.metadata
    claimed = int(str(meta.get("claimed", "0")))
    expiry = int(str(meta.get("expiry", "0")))
    if status.state is HoldState.PENDING:
        # The hold's own timeout decides (the signed expiry, to the second of its write).
        deadline = hold.expires_at / 1e9 if hold.expires_at is not None else expiry
        state = OPEN if now() < deadline else EXPIRED
    elif status.state is HoldState.POSTED:
        assert closing is not None
        claimed += closing.amount.atomic
        state = CLOSED
    elif status.state is HoldState.VOIDED:
        state = CLOSED
    else:
        state = EXPIRED
    return LedgerChannelState(
        channel_id="0x" + channel_hex,
        network=network,
        asset=hold.amount.asset.code,
        payer=str(meta.get("payer")),
        receiver=str(meta.get("receiver")),
        deposit=int(str(meta.get("deposit", "0"))),
        claimed=claimed,
        expiry=expiry,
        status=state,
        seq=seq,
        limits=hold.limits,
        authorization=hold.authorization,
        task=task_in(meta),
    )


def task_in(metadata: Mapping[str, Any]) -> str | None:
    """The task a transfer's metadata names (None: none)."""
    value = metadata.get(TASK_KEY)
    return value if isinstance(value, str) and value else None


def tagged(metadata: Mapping[str, Any], task: str | None) -> dict[str, Any]:
    """`metadata` with the channel's task, if it has one (the task always wins)."""
    return {**metadata, TASK_KEY: task} if task else dict(metadata)


def hold_metadata(
    state_or_fields: dict[str, Any],
    *,
    seq: int,
    deposit: int,
    claimed: int,
    expiry: int,
    task: str | None = None,
) -> dict[str, Any]:
    """The metadata of hold `seq` (JSON integers stay under 2^63: amounts are text), with
    the channel's `task` if it has one."""
    return tagged(
        {
            "scheme": "batch-settlement",
            "channel": state_or_fields["channel"],
            "payer": state_or_fields["payer"],
            "receiver": state_or_fields["receiver"],
            "seq": seq,
            "deposit": str(deposit),
            "claimed": str(claimed),
            "expiry": expiry,
        },
        task,
    )
