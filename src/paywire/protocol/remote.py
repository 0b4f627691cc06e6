"""A facilitator over HTTP: x402's `/verify`, `/settle` and `/supported`, from a provider.

Whatever the facilitator answers, the provider gets a typed response: a facilitator that
is down, slow, or answers malformed JSON becomes a failed settlement with a reason, not an
exception in the provider's request path.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError
from x402.schemas import (
    PaymentPayload,
    PaymentRequirements,
    SettleResponse,
    SupportedResponse,
    VerifyResponse,
)

from paywire.errors import PaywireError
from paywire.protocol import errors
from paywire.protocol.facilitator import X402_VERSION

DEFAULT_TIMEOUT_S = 10.0
"""A settlement on the ledger network takes milliseconds; ten seconds means trouble."""

MAX_RESPONSE_BYTES = 1024 * 1024
"""A facilitator's answer is a few KB; more is not an answer."""


class FacilitatorUnavailable(PaywireError):
    code = "facilitator_unavailable"


class RemoteFacilitator:
    """The facilitator at `url` (e.g. ``http://127.0.0.1:4020``)."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.url = url.rstrip("/")
        self._client = client or httpx.AsyncClient(timeout=timeout_s)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = await self._client.request(method, self.url + path, json=body)
        except httpx.HTTPError as error:
            raise FacilitatorUnavailable(
                f"cannot reach the facilitator at {self.url}: {type(error).__name__}"
            ) from None
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise FacilitatorUnavailable("the facilitator's answer is too large")
        try:
            return response.json()
        except ValueError:
            raise FacilitatorUnavailable(
                f"the facilitator answered HTTP {response.status_code} without JSON"
            ) from None

    async def fetch_supported(self) -> SupportedResponse:
        data = await self._call("GET", "/supported")
        try:
            return SupportedResponse.model_validate(data)
        except ValidationError:
            raise FacilitatorUnavailable("the facilitator's /supported is malformed") from None

    def _body(self, payload: PaymentPayload, requirements: PaymentRequirements) -> dict[str, Any]:
        return {
            "x402Version": X402_VERSION,
            "paymentPayload": payload.model_dump(by_alias=True, exclude_none=True),
            "paymentRequirements": requirements.model_dump(by_alias=True, exclude_none=True),
        }

    async def verify(
        self, payload: PaymentPayload, requirements: PaymentRequirements
    ) -> VerifyResponse:
        try:
            data = await self._call("POST", "/verify", self._body(payload, requirements))
            return VerifyResponse.model_validate(data)
        except (FacilitatorUnavailable, ValidationError) as error:
            return VerifyResponse(
                is_valid=False, invalid_reason=errors.UNEXPECTED_ERROR, invalid_message=str(error)
            )

    async def settle(
        self,
        payload: PaymentPayload,
        requirements: PaymentRequirements,
        *,
        resource: str | None = None,
    ) -> SettleResponse:
        # `resource` is already in the payload; the x402 body has no other place for it.
        try:
            data = await self._call("POST", "/settle", self._body(payload, requirements))
            return SettleResponse.model_validate(data)
        except (FacilitatorUnavailable, ValidationError) as error:
            message = str(error) if isinstance(error, PaywireError) else "malformed answer"
            return SettleResponse(
                success=False,
                error_reason=errors.UNEXPECTED_ERROR,
                error_message=f"the facilitator failed: {message}",
                transaction="",
                network=requirements.network,
            )
