"""How one paid request is collected: a `Bill`, per scheme (see `_billing` for the terms).

- `ExactBill`: verified first; settled (`Bill.open`) only once the upstream has produced
  its answer or a stream's first chunk, just before the first byte goes out. An upstream
  that fails before that costs the client nothing; after it, the price is paid (``exact``
  has no refunds: use a channel to pay for exactly what was delivered).
- `ChannelBill`: the voucher authorized at most ``max_charge_atomic``; the request runs
  within it; `Bill.close` charges the metered usage, or `Bill.cancel` releases the
  authorization when nothing was delivered (a refused charge releases it too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from x402.schemas import PaymentPayload, PaymentRequirements, SettleResponse

from paywire.meter import METER_METADATA_KEY, Charge, Usage, UsageSource
from paywire.protocol import errors
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.facilitator import problem_status
from paywire.protocol.headers import PAYMENT_RESPONSE, encode
from paywire.server.gateway._errors import PAYMENT_REQUIRED_TYPE, SERVER_ERROR, GatewayError
from paywire.server.gateway._quote import Quote
from paywire.server.gateway.channels import (
    BATCH_SETTLEMENT,
    ChannelAuthorizationLike,
    ChannelGate,
)

if TYPE_CHECKING:
    from paywire.server.gateway._billing import Biller

logger = logging.getLogger("paywire.gateway")

EXACT = "exact"


class Bill(Protocol):
    """How one paid request is collected."""

    scheme: str
    response_header: str
    limit_tokens: int
    """Completion tokens the payment covers (the stream stops there)."""
    limit_atomic: int
    """The most the request may cost, in atomic units."""

    async def open(self) -> str | None:
        """Just before the first byte goes out: the ``PAYMENT-RESPONSE`` if the money
        moved now (``exact``), else None; a `GatewayError` (402) if it could not."""
        ...

    async def close(self, usage: Usage, source: UsageSource) -> dict[str, Any]:
        """After delivering `usage`: collect it; the record of the charge."""
        ...

    async def cancel(self) -> dict[str, Any]:
        """Nothing was delivered: collect nothing that can be left uncollected."""
        ...


def record(
    scheme: str,
    quote: Quote,
    limit_atomic: int,
    usage: Usage | None,
    charge: Charge | None,
    settled: SettleResponse | None,
) -> dict[str, Any]:
    """What a request was charged, JSON-safe: the final ``paywire`` chunk of a stream and
    the ``paywire`` field of an answer."""
    return {
        "scheme": scheme,
        "asset": quote.price.asset.code,
        "authorized": str(limit_atomic),
        "charged": str(charge.amount.atomic if charge is not None else 0),
        "usage": usage.to_openai() if usage is not None else None,
        "meter": charge.metadata if charge is not None else None,
        "payment_response": encode(settled) if settled is not None else None,
        "settlement": settled.model_dump(by_alias=True, exclude_none=True) if settled else None,
    }


@dataclass(slots=True)
class ExactBill:
    biller: Biller
    payload: PaymentPayload
    requirements: PaymentRequirements
    accepts: list[PaymentRequirements]
    quote: Quote
    url: str
    response_header: str
    scheme: str = EXACT
    settled: SettleResponse | None = None
    limit_tokens: int = field(init=False)
    limit_atomic: int = field(init=False)

    def __post_init__(self) -> None:
        self.limit_tokens = self.quote.max_tokens
        self.limit_atomic = self.quote.max_amount.atomic

    async def open(self) -> str | None:
        settled = await self.biller.settle(self.payload, self.requirements, self.url)
        if not settled.success:
            raise self.biller.required(
                self.url,
                self.accepts,
                settled.error_message or "the payment did not settle",
                settled.error_reason or errors.SETTLEMENT_FAILED,
                settled=settled,
            )
        self.settled = settled
        return encode(settled)

    async def close(self, usage: Usage, source: UsageSource) -> dict[str, Any]:
        charge = self.quote.bound_charge()  # what was paid: the price at the bounds
        return record(self.scheme, self.quote, self.limit_atomic, usage, charge, self.settled)

    async def cancel(self) -> dict[str, Any]:
        if self.settled is None:
            return record(self.scheme, self.quote, self.limit_atomic, None, None, None)
        logger.info("an exact payment settled for an answer that was not delivered")
        return await self.close(Usage(self.quote.prompt_tokens, 0), "counted")


@dataclass(slots=True)
class ChannelBill:
    channels: ChannelGate[Any]
    authorization: ChannelAuthorizationLike
    quote: Quote
    limit_tokens: int
    limit_atomic: int
    response_header: str = PAYMENT_RESPONSE
    scheme: str = BATCH_SETTLEMENT

    async def open(self) -> str | None:
        return None

    async def close(self, usage: Usage, source: UsageSource) -> dict[str, Any]:
        charge = self.quote.charge(usage, source, self.limit_atomic)
        if charge.amount.atomic == 0:
            await self.cancel()
            return record(self.scheme, self.quote, self.limit_atomic, usage, charge, None)
        metadata = {METER_METADATA_KEY: charge.metadata}
        try:
            done = await self.channels.charge(self.authorization, charge.amount.atomic, metadata)
            settled = done.settle_response()
        except PaymentProblem as problem:
            await self.cancel()  # a refused charge leaves the authorization open: free it
            raise GatewayError(
                problem_status(problem.reason),
                problem.message,
                code=problem.reason,
                type_=PAYMENT_REQUIRED_TYPE,
            ) from None
        except Exception as error:
            logger.warning("a channel charge failed: %s", type(error).__name__)
            await self.cancel()
            raise GatewayError(
                503, "the channel charge failed", code="channel_unavailable", type_=SERVER_ERROR
            ) from None
        return record(self.scheme, self.quote, self.limit_atomic, usage, charge, settled)

    async def cancel(self) -> dict[str, Any]:
        try:
            await self.channels.release(self.authorization)
        except Exception as error:  # the hold lapses by itself; say so, go on
            logger.warning("a channel authorization was not released: %s", type(error).__name__)
        return record(self.scheme, self.quote, self.limit_atomic, None, None, None)
