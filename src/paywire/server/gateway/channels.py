"""What the gateway needs from payment channels: the `ChannelGate` protocol.

The gateway charges per AI token through channels (x402 scheme ``batch-settlement``): a
request carries a cumulative voucher whose increase over the channel's last charge is the
most this request may cost. The gateway depends on this protocol only; the concrete
implementation is `paywire.protocol.channel.ChannelBook`, which keeps the channels in the
ledger. The flow for one request:

1. `ChannelGate.authorize` checks the voucher and returns a `ChannelAuthorizationLike` whose
   ``max_charge_atomic`` is what this request may cost at most (raises `PaymentProblem`; a
   corrective refusal, such as a voucher that does not continue from the channel's charged
   total, carries ``channel_state`` for the client to correct it).
2. The gateway runs the request within that maximum and meters what it delivered. (A
   `ChannelBook` takes only vouchers that cover the request's whole quoted maximum; a gate
   that authorizes less gets the completion capped to what its authorization covers.)
3. `ChannelGate.charge` collects the actual cost (never above the maximum), with the meter's
   detail as the ledger metadata, and its ``settle_response()`` is the x402 `SettleResponse`
   sent as ``PAYMENT-RESPONSE`` (or in the stream's final ``paywire`` chunk); or, when
   nothing was delivered, `ChannelGate.release` frees the authorization without a charge.

`ChannelBook` (with a `LedgerChannelBackend` in process, or a `RemoteLedgerChannelBackend`
at the operator's facilitator) is one as it is; a gate with ``start()`` and ``aclose()``
coroutines (a book's claim timer) is started and closed with the gateway's ASGI lifespan.
A corrective refusal's state also goes into the 402's ``batch-settlement`` options
(`paywire.protocol.channel.corrective_accepts`), where `paywire.client.ChannelPayer`
resyncs from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from x402.schemas import PaymentPayload, PaymentRequirements, SettleResponse

from paywire.money import Asset
from paywire.protocol.channel import SCHEME

BATCH_SETTLEMENT = SCHEME
"""The x402 scheme name of paywire's payment channels: ``batch-settlement``."""

CHANNEL_STATE = "channelState"
"""Where a 402 carries the channel's state after a corrective refusal (in the
``PAYMENT-REQUIRED`` header's ``extensions[BATCH_SETTLEMENT]`` and in the error body)."""


class ChannelAuthorizationLike(Protocol):
    """One request's authorization on a channel: who pays, in what, and at most how much."""

    @property
    def channel_id(self) -> str: ...

    @property
    def payer(self) -> str: ...

    @property
    def network(self) -> str: ...

    @property
    def asset(self) -> Asset: ...

    @property
    def max_charge_atomic(self) -> int: ...


class ChannelChargeLike(Protocol):
    """A charge collected on a channel."""

    def settle_response(self) -> SettleResponse: ...


AuthT = TypeVar("AuthT", bound=ChannelAuthorizationLike)


class ChannelGate(Protocol[AuthT]):
    """Per-token payments through channels (`paywire.protocol.channel.ChannelBook`, whose
    authorizations are `AuthT`)."""

    async def authorize(
        self, payload: PaymentPayload, requirements: PaymentRequirements
    ) -> AuthT: ...

    async def charge(
        self, auth: AuthT, amount_atomic: int, metadata: Mapping[str, Any] | None = None
    ) -> ChannelChargeLike: ...

    async def release(self, auth: AuthT) -> None: ...

    def requirements(self, price_max_atomic: int, pay_to: str) -> list[PaymentRequirements]: ...
