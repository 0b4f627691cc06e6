"""The x402 HTTP headers: base64 JSON in, typed models out, with limits.

The models are the official `x402` SDK's (pydantic, camelCase on the wire); paywire adds
the guards a server needs on hostile input: a size limit before decoding, strict base64,
UTF-8, a JSON depth guard, and errors with an x402 reason and status instead of
exceptions from deep inside a parser.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from x402.schemas import PaymentPayload, PaymentRequired, SettleResponse
from x402.schemas.v1 import PaymentPayloadV1

from paywire import _json
from paywire._json import json_depth as json_depth  # re-exported: it was defined here
from paywire.protocol.errors import INVALID_X402_VERSION, PaymentProblem, malformed

PAYMENT_REQUIRED = "PAYMENT-REQUIRED"
PAYMENT_SIGNATURE = "PAYMENT-SIGNATURE"
PAYMENT_RESPONSE = "PAYMENT-RESPONSE"
X_PAYMENT = "X-PAYMENT"
"""Version 1's request header."""
X_PAYMENT_RESPONSE = "X-PAYMENT-RESPONSE"
"""Version 1's response header."""

MAX_HEADER_BYTES = 16384
"""Largest payment header accepted. paywire's own are ~1 KB; a mandate chain of depth 3
fits in 8 KB. Some proxies drop headers over a few KB, so clients should stay small."""

MAX_JSON_DEPTH = 32
"""x402 objects nest 4 deep; deeper input is an attack on the parser."""

Model = TypeVar("Model", bound=BaseModel)


def encode(model: BaseModel) -> str:
    """A model as an x402 header value: base64 (standard, padded) of its camelCase JSON."""
    text = model.model_dump_json(by_alias=True, exclude_none=True)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def decode_json(value: str | bytes, what: str) -> dict[str, Any]:
    """Base64 JSON object from a header, or a 400 `PaymentProblem` saying what is wrong."""
    raw = value.encode("latin-1") if isinstance(value, str) else value
    if len(raw) > MAX_HEADER_BYTES:
        raise malformed(f"the {what} header is larger than {MAX_HEADER_BYTES} bytes")
    try:
        text = base64.b64decode(raw.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise malformed(f"the {what} header is not valid base64 of UTF-8 text") from None
    try:
        data = _json.loads(text, max_depth=MAX_JSON_DEPTH)
    except _json.JsonTooDeep:
        raise malformed(f"the {what} header nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise malformed(f"the {what} header is not JSON") from None
    if not isinstance(data, dict):
        raise malformed(f"the {what} header is not a JSON object")
    return data


def validate(model: type[Model], data: dict[str, Any], what: str) -> Model:
    """A model from decoded JSON, or a 400 naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top)"
        raise malformed(f"the {what} is malformed at {where}: {first['msg']}") from None


def decode_payment(value: str | bytes) -> PaymentPayload | PaymentPayloadV1:
    """A client's payment (`PAYMENT-SIGNATURE` or version 1's `X-PAYMENT`)."""
    data = decode_json(value, "payment")
    version = data.get("x402Version")
    if version == 2:
        return validate(PaymentPayload, data, "payment")
    if version == 1:
        return validate(PaymentPayloadV1, data, "payment")
    raise PaymentProblem(
        INVALID_X402_VERSION, f"x402Version {version!r} is not supported (1 or 2)", status=400
    )


def decode_payment_required(value: str | bytes) -> PaymentRequired:
    """A server's `PAYMENT-REQUIRED` (version 2)."""
    return validate(PaymentRequired, decode_json(value, "payment-required"), "payment-required")


def decode_settle_response(value: str | bytes) -> SettleResponse:
    """A server's `PAYMENT-RESPONSE`."""
    return validate(SettleResponse, decode_json(value, "payment-response"), "payment-response")
