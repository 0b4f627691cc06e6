"""What a `ChannelBook` holds per channel and hands out per request."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from x402.schemas import SettleResponse

from paywire.crypto.keys import address_bytes
from paywire.money import Asset
from paywire.protocol.channel.backends import ChannelInfo
from paywire.protocol.channel.store import ChannelRow
from paywire.protocol.channel.summary import Summary
from paywire.protocol.channel.wire import (
    CHANNEL_EXTENSION,
    sdk_channel_state,
    state_dict,
    voucher_prefix,
)

NO_SIGNATURE = bytes(65)
"""A claim with nothing new to claim (a close) needs no voucher; this stands in for it."""


@dataclass(slots=True, eq=False)
class ChannelAuthorization:
    """One request's right to charge a channel, up to `max_charge_atomic` (the voucher's
    increase over the charged total)."""

    channel_id: str
    payer: str
    network: str
    asset: Asset
    max_charge_atomic: int
    voucher_max: int
    charged_before: int
    lease_until: float
    done: bool = False


@dataclass(frozen=True, slots=True)
class ChannelCharge:
    """What one request was charged, and where its channel stands."""

    channel_id: str
    payer: str
    network: str
    asset: Asset
    charged_atomic: int
    charged_total_atomic: int
    deposit_atomic: int
    claimed_atomic: int

    def state(self) -> dict[str, Any]:
        """The ``paywire-channel`` extension of the answer."""
        return {
            **state_dict(
                self.channel_id,
                charged=self.charged_total_atomic,
                deposit=self.deposit_atomic,
                claimed=self.claimed_atomic,
            ),
            "charged": str(self.charged_atomic),
        }

    def settle_response(self) -> SettleResponse:
        """The x402 `SettleResponse` for `PAYMENT-RESPONSE`: paid by voucher (no
        transaction yet: claims come in batches), with ``extensions["paywire-channel"]``
        and the SDK's ``extra`` (``chargedAmount``, ``channelState``)."""
        state = self.state()
        return SettleResponse(
            success=True,
            payer=self.payer,
            transaction="",
            network=self.network,
            amount=str(self.charged_atomic),
            extensions={CHANNEL_EXTENSION: state},
            extra={
                "chargedAmount": str(self.charged_atomic),
                "channelState": sdk_channel_state(state),
            },
        )


@dataclass(slots=True, eq=False)
class OpenChannel:
    """A channel in a book's memory: what was read of it, the highest voucher, what was
    charged and claimed, and whose turn it is."""

    info: ChannelInfo
    voucher_max: int = 0
    voucher_signature: bytes = b""
    charged: int = 0
    claimed: int = 0
    closed: bool = False
    summary: Summary = field(default_factory=Summary)
    unclaimed_since: float | None = None
    refreshed_at: float = 0.0
    holder: ChannelAuthorization | None = None
    claiming: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    payer_bytes: bytes = b""
    prefix: bytes = b""

    def __post_init__(self) -> None:
        self.payer_bytes = address_bytes(self.info.payer)
        self.prefix = voucher_prefix(self.info.domain)

    @property
    def channel_id(self) -> str:
        return self.info.channel_id

    @property
    def channel_bytes(self) -> bytes:
        return bytes.fromhex(self.info.channel_id[2:])

    @classmethod
    def new(cls, info: ChannelInfo, now: float) -> OpenChannel:
        return cls(info, claimed=info.claimed, closed=info.closed, refreshed_at=now)

    @classmethod
    def from_row(cls, row: ChannelRow) -> OpenChannel:
        return cls(
            ChannelInfo.from_json(json.loads(row.info)),
            voucher_max=row.voucher_max,
            voucher_signature=row.voucher_signature,
            charged=row.charged,
            claimed=row.claimed,
            closed=row.closed,
            summary=Summary.loads(row.summary),
            unclaimed_since=row.unclaimed_since,
        )

    def row(self) -> ChannelRow:
        return ChannelRow(
            channel_id=self.channel_id,
            info=json.dumps(self.info.to_json(), separators=(",", ":")),
            voucher_max=self.voucher_max,
            voucher_signature=self.voucher_signature,
            charged=self.charged,
            claimed=self.claimed,
            closed=self.closed,
            summary=self.summary.dumps(),
            unclaimed_since=self.unclaimed_since,
        )

    def state(self) -> dict[str, Any]:
        return state_dict(
            self.channel_id,
            charged=self.charged,
            deposit=self.info.deposit,
            claimed=self.claimed,
            voucher_max=self.voucher_max,
            voucher_signature=self.voucher_signature,
        )

    @property
    def signature_for_claim(self) -> bytes:
        return self.voucher_signature or NO_SIGNATURE
