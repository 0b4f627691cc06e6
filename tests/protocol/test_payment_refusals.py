"""Hostile and broken payments: each gets x402's status and reason, never a 500 or a charge."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from payment_helpers import Calls, provider_app
from starlette.types import ASGIApp
from x402.schemas import PaymentPayload

from paywire.client import Payer
from paywire.crypto.keys import PrivateKey
from paywire.errors import PaywireError
from paywire.ledger import Ledger
from paywire.ledger.names import wallet_account_id
from paywire.protocol import Facilitator, PaymentProblem, ledger_domain, sign_authorization
from paywire.protocol.headers import (
    MAX_HEADER_BYTES,
    decode_payment,
    decode_payment_required,
    decode_settle_response,
    encode,
)


@pytest.fixture
def base(
    serve: Callable[[ASGIApp], str], facilitator: Facilitator, provider: PrivateKey, calls: Calls
) -> str:
    return serve(provider_app(facilitator, provider.address, calls))


def good_payment(base: str, agent: PrivateKey, **overrides: Any) -> dict[str, Any]:
    """A valid payment for GET /search, as JSON, with `overrides` signed into it."""
    required = decode_payment_required(httpx.get(f"{base}/search").headers["payment-required"])
    [requirements] = required.accepts
    payer = Payer.create(agent, max_per_payment="$1")
    payment = payer.pay(required, requirements)
    data = payment.model_dump(by_alias=True, exclude_none=True)
    if overrides:
        now = int(time.time())
        fields: dict[str, Any] = {
            "payee": requirements.pay_to,
            "value": int(requirements.amount),
            "valid_after": now - 60,
            "valid_before": now + 300,
        }
        domain = ledger_domain(requirements.network, requirements.asset)
        key = overrides.pop("key", agent)
        domain = overrides.pop("domain", domain)
        fields.update(overrides)
        data["payload"] = sign_authorization(key, domain, **fields).to_payload()
        data["payload"]["authorization"]["from"] = agent.address  # an impostor claims agent
    return data


def send(base: str, header: str, name: str = "PAYMENT-SIGNATURE") -> httpx.Response:
    return httpx.get(f"{base}/search", headers={name: header})


def b64(data: Any) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()


def reason_of(response: httpx.Response) -> str:
    if response.status_code == 400:
        return str(response.json()["error"])
    return str(decode_settle_response(response.headers["payment-response"]).error_reason)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("not base64!!", "invalid_payload"),
        (base64.b64encode(b"\xff\xfe").decode(), "invalid_payload"),
        (base64.b64encode(b"not json").decode(), "invalid_payload"),
        (b64([1, 2, 3]), "invalid_payload"),
        (b64({"x402Version": 3}), "invalid_x402_version"),
        (b64({"x402Version": "2"}), "invalid_x402_version"),
        (b64({"x402Version": 2}), "invalid_payload"),
        (
            b64({"x402Version": 2, "payload": {}, "accepted": {"scheme": "exact"}}),
            "invalid_payload",
        ),
        (base64.b64encode(b"[" * 5000 + b"]" * 5000).decode(), "invalid_payload"),
        ("A" * (MAX_HEADER_BYTES + 4), "invalid_payload"),
    ],
)
def test_malformed_headers_get_400(base: str, calls: Calls, header: str, reason: str) -> None:
    response = send(base, header)
    assert response.status_code == 400
    assert response.json()["error"] == reason
    assert calls.count == 0


def test_malformed_authorizations_get_400(base: str, agent: PrivateKey, calls: Calls) -> None:
    good = good_payment(base, agent)
    broken: list[Callable[[dict[str, Any]], None]] = [
        lambda p: p["payload"].pop("signature"),
        lambda p: p["payload"].__setitem__("signature", "0x1234"),
        lambda p: p["payload"]["authorization"].__setitem__("nonce", "0x12"),
        lambda p: p["payload"]["authorization"].__setitem__("value", "1e3"),
        lambda p: p["payload"]["authorization"].__setitem__("value", 1000.0),
        lambda p: p["payload"]["authorization"].__setitem__("value", "-1000"),
        lambda p: p["payload"]["authorization"].__setitem__("validBefore", str(2**300)),
        lambda p: p["payload"]["authorization"].__setitem__("from", "0xnothex"),
        lambda p: p["payload"]["authorization"].__setitem__("extra", "field"),
        lambda p: p["payload"]["authorization"].pop("to"),
    ]
    for mutate in broken:
        payment = copy.deepcopy(good)
        mutate(payment)
        response = send(base, b64(payment))
        assert response.status_code == 400, mutate
        assert response.json()["error"] == "invalid_payload"
    assert calls.count == 0


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("scheme", "upto", "invalid_payment_requirements"),
        ("network", "paywire:someotherledger", "invalid_payment_requirements"),
        ("network", "eip155:84532", "invalid_payment_requirements"),
        ("asset", "EURC", "invalid_payment_requirements"),
        ("amount", "1", "invalid_payment_requirements"),
        ("payTo", "0x" + "11" * 20, "invalid_payment_requirements"),
    ],
)
def test_payments_for_other_terms_are_refused(
    base: str, agent: PrivateKey, calls: Calls, field: str, value: str, reason: str
) -> None:
    payment = good_payment(base, agent)
    payment["accepted"][field] = value
    response = send(base, b64(payment))
    assert response.status_code == 402
    assert decode_payment_required(response.headers["payment-required"]).error.startswith(reason)
    assert calls.count == 0


def test_signed_terms_that_differ_are_refused(
    base: str, ledger: Ledger, agent: PrivateKey, calls: Calls
) -> None:
    now = int(time.time())
    other = ledger_domain("paywire:someotherledger", "USDC")
    cases = [
        ({"payee": "0x" + "22" * 20}, "invalid_exact_paywire_payload_recipient_mismatch"),
        ({"value": 999}, "invalid_exact_paywire_payload_authorization_value_mismatch"),
        ({"value": 1001}, "invalid_exact_paywire_payload_authorization_value_mismatch"),
        ({"valid_before": now - 1}, "invalid_exact_paywire_payload_authorization_valid_before"),
        ({"valid_before": now + 3}, "invalid_exact_paywire_payload_authorization_valid_before"),
        (
            {"valid_before": now + 10_000},
            "invalid_exact_paywire_payload_authorization_valid_before",
        ),
        ({"valid_after": now + 120}, "invalid_exact_paywire_payload_authorization_valid_after"),
        ({"key": PrivateKey.generate()}, "invalid_exact_paywire_payload_signature"),
        ({"domain": other}, "invalid_exact_paywire_payload_signature"),
        (
            {"domain": ledger_domain(f"paywire:{ledger.ledger_id}", "EURC")},
            "invalid_exact_paywire_payload_signature",
        ),
    ]
    for overrides, reason in cases:
        response = send(base, b64(good_payment(base, agent, **overrides)))
        assert response.status_code == 402, overrides
        assert reason_of(response) == reason, overrides
    assert calls.count == 0
    assert ledger.balance(wallet_account_id(agent.address, "USDC")).available == 1_000_000


def test_a_small_clock_skew_is_allowed(base: str, agent: PrivateKey, calls: Calls) -> None:
    ahead = int(time.time()) + 20  # the payer's clock runs 20 s ahead
    response = send(base, b64(good_payment(base, agent, valid_after=ahead)))
    assert response.status_code == 200
    assert calls.count == 1


def test_a_signature_with_tampered_fields_is_refused(base: str, agent: PrivateKey) -> None:
    payment = good_payment(base, agent)
    payment["payload"]["authorization"]["validBefore"] = str(
        int(payment["payload"]["authorization"]["validBefore"]) - 10
    )
    response = send(base, b64(payment))
    assert reason_of(response) == "invalid_exact_paywire_payload_signature"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512) | st.text(max_size=512).map(str.encode))
def test_fuzzed_headers_never_crash_the_decoder(raw: bytes) -> None:
    for value in (raw, base64.b64encode(raw)):
        try:
            decode_payment(value)
        except PaymentProblem as problem:
            assert problem.status in (400, 402)
        except PaywireError:
            pytest.fail("only PaymentProblem may escape the decoder")


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=20,
    )
)
def test_fuzzed_json_never_crashes_the_decoder(value: object) -> None:
    with contextlib.suppress(PaymentProblem):
        decode_payment(b64(value))


def test_the_decoder_round_trips_a_real_payment(base: str, agent: PrivateKey) -> None:
    data = good_payment(base, agent)
    decoded = decode_payment(b64(data))
    assert isinstance(decoded, PaymentPayload)
    assert decode_payment(encode(decoded)) == decoded


def test_logs_hold_no_payment_secrets(
    base: str, agent: PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    data = good_payment(base, agent, key=PrivateKey.generate())
    send(base, b64(data))
    text = caplog.text
    assert data["payload"]["signature"][2:20] not in text
    assert agent.to_hex()[2:20] not in text
