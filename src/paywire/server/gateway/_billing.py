"""Payment for one request: the 402 computed from its quote, and the `Bill` that collects.

An unpaid request gets 402 offering, for this very request body, ``exact`` at its
`Quote.max_amount` on every network the facilitator settles (the meter's detail of that
price rides in each option's ``extra["meter"]``, and the facilitator's ledger keeps the
signed payment, ``accepted`` included, with the transfer), and ``batch-settlement`` through
the channels, if the gateway has them. A paid retry gets a `Bill` (`_bills`): ``exact``
verified now and settled just before the first byte; a channel voucher authorized now and
charged what was delivered.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.datastructures import Headers
from x402.schemas import (
    PaymentPayload,
    PaymentRequired,
    PaymentRequirements,
    ResourceInfo,
    SettleResponse,
)

from paywire.protocol import errors
from paywire.protocol.channel import corrective_accepts
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.facilitator import FacilitatorLike, problem_status
from paywire.protocol.headers import (
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    X_PAYMENT,
    X_PAYMENT_RESPONSE,
    decode_payment,
    encode,
)
from paywire.protocol.idempotency import payment_id
from paywire.server._asgi import EXPOSE
from paywire.server._terms import as_v2, matching, offer
from paywire.server.gateway._bills import EXACT, Bill, ChannelBill, ExactBill
from paywire.server.gateway._errors import PAYMENT_REQUIRED_TYPE, SERVER_ERROR, GatewayError
from paywire.server.gateway._quote import Quote
from paywire.server.gateway.channels import (
    BATCH_SETTLEMENT,
    CHANNEL_STATE,
    ChannelGate,
)

logger = logging.getLogger("paywire.gateway")

DEFAULT_MAX_TIMEOUT_S = 300
"""How long a client's ``exact`` authorization may stay valid."""


class Biller:
    """The gateway's terms and payments: `pay_to` is paid through `facilitator` (``exact``)
    and `channels` (``batch-settlement``, if given)."""

    def __init__(
        self,
        facilitator: FacilitatorLike,
        channels: ChannelGate[Any] | None,
        pay_to: str,
        *,
        max_timeout_s: int = DEFAULT_MAX_TIMEOUT_S,
        description: str | None = None,
    ) -> None:
        self.facilitator = facilitator
        self.channels = channels
        self.pay_to = pay_to
        self.max_timeout_s = max_timeout_s
        self.description = description
        self._kinds: list[tuple[str, str, dict[str, Any]]] | None = None

    async def accepts(self, quote: Quote) -> list[PaymentRequirements]:
        """What paying for this request takes: every option, priced for it."""
        amount = quote.max_amount
        options: list[PaymentRequirements] = []
        kinds = await self._exact_kinds()
        if kinds:
            meter = quote.bound_charge().metadata
            for option in offer(amount, kinds, self.pay_to, self.max_timeout_s):
                option.extra = {**(option.extra or {}), "meter": meter}
                options.append(option)
        if self.channels is not None:
            try:
                options += self.channels.requirements(amount.atomic, self.pay_to)
            except Exception as error:
                logger.warning("channels cannot quote: %s", type(error).__name__)
        if not options:
            raise GatewayError(
                503, "payments are unavailable", code="facilitator_unavailable", type_=SERVER_ERROR
            )
        return options

    async def _exact_kinds(self) -> list[tuple[str, str, dict[str, Any]]]:
        if self._kinds is None:
            try:
                supported = await self.facilitator.fetch_supported()
            except Exception as error:  # no exact offer now; asked again next time
                logger.warning("cannot reach the facilitator: %s", type(error).__name__)
                return []
            self._kinds = [
                (kind.scheme, kind.network, dict(kind.extra or {}))
                for kind in supported.kinds
                if kind.x402_version == 2 and kind.scheme == EXACT
            ]
        return self._kinds

    async def bill(self, headers: Headers, quote: Quote, url: str) -> Bill:
        """The request's bill, from its payment header; 402 (or 400) if it has none that
        will do."""
        accepts = await self.accepts(quote)
        header = headers.get(PAYMENT_SIGNATURE) or headers.get(X_PAYMENT)
        if header is None:
            raise self.required(url, accepts, "payment required")
        version_one = PAYMENT_SIGNATURE.lower() not in headers
        response_header = X_PAYMENT_RESPONSE if version_one else PAYMENT_RESPONSE
        try:
            payload = as_v2(decode_payment(header), accepts)
            if payload.accepted.scheme == BATCH_SETTLEMENT:
                return await self._channel(payload, accepts, quote)
            return await self._exact(payload, accepts, quote, url, response_header)
        except PaymentProblem as problem:
            raise self.refused(url, accepts, problem) from None

    async def _exact(
        self,
        payload: PaymentPayload,
        accepts: list[PaymentRequirements],
        quote: Quote,
        url: str,
        response_header: str,
    ) -> Bill:
        requirements = matching(payload, accepts)
        if (payload.accepted.extra or {}) != (requirements.extra or {}):
            raise PaymentProblem(
                errors.INVALID_REQUIREMENTS,
                "the payment accepts other terms (extra) than this request's",
            )
        if payment_id(payload) is not None:
            raise PaymentProblem(
                errors.INVALID_PAYLOAD,
                "the gateway takes no payment-identifier ids: each request has its own price, "
                "so a retry signs a new payment",
                status=400,
            )
        try:
            verified = await self.facilitator.verify(payload, requirements)
        except Exception as error:
            logger.warning("the facilitator failed to verify: %s", type(error).__name__)
            raise GatewayError(
                503, "the facilitator failed", code="facilitator_unavailable", type_=SERVER_ERROR
            ) from None
        if not verified.is_valid:
            raise PaymentProblem(
                verified.invalid_reason or errors.SETTLEMENT_FAILED,
                verified.invalid_message or "the payment is not valid",
            )
        return ExactBill(self, payload, requirements, accepts, quote, url, response_header)

    async def _channel(
        self, payload: PaymentPayload, accepts: list[PaymentRequirements], quote: Quote
    ) -> Bill:
        channels = self.channels
        accepted = payload.accepted
        requirements = next(
            (
                option
                for option in accepts
                if option.scheme == BATCH_SETTLEMENT
                and (option.network, option.asset) == (accepted.network, accepted.asset)
                and option.pay_to.lower() == accepted.pay_to.lower()
            ),
            None,
        )
        if channels is None or requirements is None:
            raise PaymentProblem(
                errors.INVALID_REQUIREMENTS,
                f"nothing here is paid with {BATCH_SETTLEMENT} on {accepted.network}",
            )
        try:
            authorization = await channels.authorize(payload, requirements)
        except PaymentProblem:
            raise
        except Exception as error:
            logger.warning("channels failed to authorize: %s", type(error).__name__)
            raise GatewayError(
                503, "channels are unavailable", code="channel_unavailable", type_=SERVER_ERROR
            ) from None
        limit_tokens = quote.affordable_tokens(authorization.max_charge_atomic)
        if authorization.asset.code != quote.price.asset.code or limit_tokens < quote.min_tokens:
            await channels.release(authorization)
            floor = quote.bound_usage(quote.min_tokens)
            raise PaymentProblem(
                errors.INSUFFICIENT_FUNDS,
                f"the voucher authorizes {authorization.max_charge_atomic} atomic units of "
                f"{authorization.asset.code}; this request needs at least that of "
                f"{floor.input_tokens} prompt and {quote.min_tokens} completion tokens "
                f"(at most {quote.max_amount.atomic} {quote.price.asset.code})",
            )
        limit_atomic = min(authorization.max_charge_atomic, quote.max_amount.atomic)
        return ChannelBill(channels, authorization, quote, limit_tokens, limit_atomic)

    async def settle(
        self, payload: PaymentPayload, requirements: PaymentRequirements, url: str
    ) -> SettleResponse:
        try:
            return await self.facilitator.settle(payload, requirements, resource=url)
        except Exception as error:
            logger.warning("the facilitator failed to settle: %s", type(error).__name__)
            return SettleResponse(
                success=False,
                error_reason=errors.UNEXPECTED_ERROR,
                error_message="the facilitator failed",
                transaction="",
                network=requirements.network,
            )

    def refused(
        self, url: str, accepts: list[PaymentRequirements], problem: PaymentProblem
    ) -> GatewayError:
        state = getattr(problem, "channel_state", None)
        status = problem_status(problem.reason) if problem.status == 402 else problem.status
        if state is None and status != 402:
            return GatewayError(status, problem.message, code=problem.reason)
        if state is not None:  # a corrective refusal: the state where a ChannelPayer reads it
            try:
                accepts = corrective_accepts(accepts, problem)
            except (KeyError, TypeError, ValueError):
                logger.warning("a corrective refusal's channel state is malformed")
        return self.required(url, accepts, problem.message, problem.reason, channel_state=state)

    def required(
        self,
        url: str,
        accepts: list[PaymentRequirements],
        message: str,
        reason: str = "payment_required",
        *,
        settled: SettleResponse | None = None,
        channel_state: object = None,
    ) -> GatewayError:
        """402, with `PAYMENT-REQUIRED` offering `accepts` (and the body saying the same in
        OpenAI's error shape)."""
        extensions: dict[str, Any] = {}
        extra: dict[str, Any] = {
            "x402Version": 2,
            "accepts": [option.model_dump(by_alias=True, exclude_none=True) for option in accepts],
        }
        if channel_state is not None:
            state = _json_safe(channel_state)
            extensions[BATCH_SETTLEMENT] = {CHANNEL_STATE: state}
            extra[CHANNEL_STATE] = state
        required = PaymentRequired(
            error=f"{reason}: {message}",
            resource=ResourceInfo(
                url=url, description=self.description, mime_type="application/json"
            ),
            accepts=accepts,
            extensions=extensions or None,
        )
        headers = [
            (PAYMENT_REQUIRED.lower().encode(), encode(required).encode()),
            (b"access-control-expose-headers", EXPOSE.encode()),
        ]
        if settled is not None:
            headers.append((PAYMENT_RESPONSE.lower().encode(), encode(settled).encode()))
        return GatewayError(
            402, message, code=reason, type_=PAYMENT_REQUIRED_TYPE, extra=extra, headers=headers
        )


def _json_safe(value: object) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(by_alias=True, exclude_none=True)
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    if isinstance(value, dict | list | str | int | bool) or value is None:
        return value
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)  # type: ignore[call-overload]
    return str(value)
