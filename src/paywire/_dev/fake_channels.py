"""A fake channel gate for tests and benchmarks (not public API): `FakeChannels` stands in
for `paywire.protocol.channel.ChannelBook` where the gateway, not the channel, is under
test. A voucher's payload names its channel, payer and the most it authorizes
(``maxCharge``); every authorization, charge and release is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from x402.schemas import PaymentPayload, PaymentRequirements, SettleResponse

from paywire.money import USDC, Asset
from paywire.protocol.headers import encode
from paywire.server.gateway import BATCH_SETTLEMENT


@dataclass(frozen=True)
class FakeAuthorization:
    channel_id: str
    payer: str
    network: str
    asset: Asset
    max_charge_atomic: int


@dataclass(frozen=True)
class FakeCharge:
    settled: SettleResponse

    def settle_response(self) -> SettleResponse:
        return self.settled


class FakeChannels:
    """An in-memory `ChannelGate`: a voucher's payload names its channel, payer and the
    most it authorizes (``maxCharge``); every call is recorded."""

    def __init__(self, network: str = "paywire:channels-test") -> None:
        self.network = network
        self.authorized: list[FakeAuthorization] = []
        self.charges: list[tuple[FakeAuthorization, int, Mapping[str, Any]]] = []
        self.released: list[FakeAuthorization] = []
        self.refusal: Exception | None = None

    def requirements(self, price_max_atomic: int, pay_to: str) -> list[PaymentRequirements]:
        return [
            PaymentRequirements(
                scheme=BATCH_SETTLEMENT,
                network=self.network,
                asset="USDC",
                amount=str(price_max_atomic),
                pay_to=pay_to,
                max_timeout_seconds=300,
                extra={"channels": "fake"},
            )
        ]

    async def authorize(
        self, payload: PaymentPayload, requirements: PaymentRequirements
    ) -> FakeAuthorization:
        if self.refusal is not None:
            raise self.refusal
        data = payload.payload
        authorization = FakeAuthorization(
            str(data["channelId"]),
            str(data["payer"]),
            requirements.network,
            USDC,
            int(data["maxCharge"]),
        )
        self.authorized.append(authorization)
        return authorization

    async def charge(
        self,
        auth: FakeAuthorization,
        amount_atomic: int,
        metadata: Mapping[str, Any] | None = None,
    ) -> FakeCharge:
        authorization = auth
        assert metadata is not None
        assert 0 < amount_atomic <= authorization.max_charge_atomic
        self.charges.append((authorization, amount_atomic, metadata))
        return FakeCharge(
            SettleResponse(
                success=True,
                payer=authorization.payer,
                transaction=f"channel:{authorization.channel_id}:{len(self.charges)}",
                network=authorization.network,
                amount=str(amount_atomic),
            )
        )

    async def release(self, auth: FakeAuthorization) -> None:
        self.released.append(auth)

    def voucher(self, pay_to: str, max_charge: int, channel_id: str = "ch-1") -> str:
        """A ``PAYMENT-SIGNATURE`` header carrying a (fake) voucher."""
        [accepted] = self.requirements(max_charge, pay_to)
        payload = PaymentPayload(
            x402_version=2,
            accepted=accepted,
            payload={"channelId": channel_id, "payer": "0x" + "ab" * 20, "maxCharge": max_charge},
        )
        return encode(payload)

    def wait_done(self, timeout_s: float = 10.0) -> None:
        """Wait until a request was charged or released (a server finishes after its
        client left)."""
        deadline = time.monotonic() + timeout_s
        while not (self.charges or self.released):
            if time.monotonic() > deadline:
                raise AssertionError("the gateway neither charged nor released")
            time.sleep(0.01)
