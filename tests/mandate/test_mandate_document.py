"""The mandate document: canonical values, a stable id, signatures, and strict parsing of
its JSON and base64 forms."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st
from mandate_helpers import (
    AGENT,
    BASE,
    LEDGER,
    NONCE,
    ORIGIN,
    OTHER_PAYEE,
    OUTSIDER,
    PAYEE,
    PRINCIPAL,
    START,
    TOKEN,
    fields_of,
    root_mandate,
    usdc_limit,
)

from paywire.errors import InvalidInput, PaywireError
from paywire.mandate import (
    MAX_MANDATE_JSON_BYTES,
    MAX_PAYEES,
    MAX_PURPOSE_CHARS,
    MAX_VALIDITY_S,
    MAX_WINDOWS,
    AssetLimit,
    InvalidMandate,
    Mandate,
    MandateSignatureInvalid,
    MandateTooLarge,
    MandateUnknownField,
    MandateVersionUnsupported,
    SignedMandate,
    Window,
)
from paywire.money import MAX_ATOMIC

PINNED_ID = "0x9153109e52a4092c33556fe28891b4feef4f03b24e6e92cddbb28ecfb9d5dfea"


def signed() -> SignedMandate:
    return SignedMandate.sign(root_mandate(), PRINCIPAL)


# --- values and id ------------------------------------------------------------------------


def test_id_is_stable_and_is_the_eip712_digest_eth_account_computes() -> None:
    mandate = root_mandate()
    assert mandate.id == PINNED_ID  # changing the encoding changes every id: do it on purpose
    reference = _hash_eip191_message(encode_typed_data(full_message=mandate.typed_data()))
    assert mandate.digest == bytes(reference)


def test_id_does_not_depend_on_the_order_parts_are_given_in() -> None:
    mandate = root_mandate()
    shuffled = root_mandate(
        limits=tuple(reversed(mandate.limits)),
        payees=(OTHER_PAYEE.lower(), PAYEE),
        origins=tuple(reversed(mandate.origins)),
        networks=(BASE, LEDGER),
    )
    assert shuffled.id == mandate.id and shuffled == mandate


def test_nonce_makes_equal_mandates_distinct() -> None:
    assert root_mandate(nonce=bytes(32)).id != root_mandate().id
    without_nonce = dict(fields_of(root_mandate()))
    del without_nonce["nonce"]
    assert Mandate(**without_nonce).id != Mandate(**without_nonce).id  # random by default


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"issuer": "0x123"}, "issuer"),
        ({"agent": AGENT.address.lower().replace("0x", "0X")}, "agent"),
        ({"limits": ()}, "limits"),
        ({"limits": (usdc_limit(),) * 2}, "limits"),
        ({"limits": (usdc_limit(network="paywire:*"), usdc_limit())}, "limits"),
        ({"payees": (PAYEE, PAYEE.lower())}, "payees"),
        ({"payees": tuple(f"0x{i:040x}" for i in range(MAX_PAYEES + 1))}, "payees"),
        ({"origins": ("https://api.example.com/v1",)}, "origins[0]"),
        ({"origins": ("ftp://api.example.com",)}, "origins[0]"),
        ({"networks": ("eip155",)}, "networks[0]"),
        ({"networks": ("eip155:*", BASE)}, "networks"),
        ({"valid_before": START}, "validBefore"),
        ({"valid_before": START + MAX_VALIDITY_S + 1}, "validBefore"),
        ({"valid_after": -1}, "validAfter"),
        ({"purpose": "x" * (MAX_PURPOSE_CHARS + 1)}, "purpose"),
        ({"purpose": "bell\x07"}, "purpose"),
        ({"task_id": "two\nlines"}, "taskId"),
        ({"nonce": b"short"}, "nonce"),
        ({"parent": "00" * 32}, "parent"),
        ({"payees": PAYEE}, "payees"),
    ],
)
def test_bad_values_are_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidMandate) as caught:
        root_mandate(**changes)
    assert caught.value.field == field
    assert isinstance(caught.value, InvalidInput)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: usdc_limit(total=0), "total"),
        (lambda: usdc_limit(total=MAX_ATOMIC + 1), "total"),
        (lambda: usdc_limit(per_payment=0), "perPayment"),
        (lambda: usdc_limit(windows=((60, 0),)), "limit"),
        (lambda: usdc_limit(windows=((60, 10), (60, 20))), "windows"),
        (lambda: usdc_limit(windows=tuple((i + 1, 1) for i in range(MAX_WINDOWS + 1))), "windows"),
        (lambda: usdc_limit(network="eip155:*:x"), "network"),
        (lambda: usdc_limit(asset="usdc"), "asset"),
        (lambda: Window(0, 1), "seconds"),
        (lambda: Window(60, True), "limit"),
    ],
)
def test_bad_limits_are_refused_naming_the_field(build: Any, field: str) -> None:
    with pytest.raises(InvalidMandate) as caught:
        build()
    assert caught.value.field == field


def test_lower_case_asset_code_gets_a_hint() -> None:
    with pytest.raises(InvalidMandate, match="write USDC"):
        usdc_limit(asset="usdc")


# --- signatures -----------------------------------------------------------------------------


def test_sign_and_verify() -> None:
    signed().verify()


def test_signing_with_a_key_that_is_not_the_issuers_is_refused() -> None:
    with pytest.raises(InvalidMandate, match="issuer"):
        SignedMandate.sign(root_mandate(), OUTSIDER)


def test_signature_by_the_wrong_key_fails_verification() -> None:
    mandate = root_mandate()
    forged = SignedMandate(mandate, OUTSIDER.sign_digest(mandate.digest))
    with pytest.raises(MandateSignatureInvalid) as caught:
        forged.verify()
    assert (
        caught.value.mandate_id == mandate.id
        and OUTSIDER.address.lower()[2:] in str(caught.value).lower()
    )


def test_mangled_signature_fails_verification() -> None:
    good = signed()
    for position in (0, 40, 64):
        bad = bytearray(good.signature)
        bad[position] ^= 0x01
        with pytest.raises(MandateSignatureInvalid):
            SignedMandate(good.mandate, bytes(bad)).verify()


def _tamper(document: dict[str, Any], path: str) -> None:
    """Change the value at `path` to another valid one."""
    *parents, last = path.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    value = target[last]
    replacements: dict[str, Any] = {
        "issuer": lambda: OUTSIDER.address,
        "agent": lambda: OUTSIDER.address,
        "parent": lambda: "0x" + "11" * 32,
        "nonce": lambda: "0x" + "22" * 32,
        "network": lambda: "paywire:zzzzzzzzzzzzzzzz",
        "asset": lambda: "EURC",
        "total": lambda: str(int(value) - 1),
        "perPayment": lambda: str(int(value) - 1),
        "seconds": lambda: value + 1,
        "limit": lambda: str(int(value) - 1),
        "payees": lambda: [PAYEE],
        "origins": lambda: [ORIGIN],
        "networks": lambda: [LEDGER],
        "validAfter": lambda: value + 1,
        "validBefore": lambda: value - 1,
        "purpose": lambda: value + ".",
        "taskId": lambda: "task-43",
    }
    target[last] = replacements[last]()


TAMPERED_FIELDS = [
    "issuer",
    "agent",
    "parent",
    "nonce",
    "limits.1.network",
    "limits.1.asset",
    "limits.1.total",
    "limits.1.perPayment",
    "limits.1.windows.0.seconds",
    "limits.1.windows.1.limit",
    "payees",
    "origins",
    "networks",
    "validAfter",
    "validBefore",
    "purpose",
    "taskId",
]


@pytest.mark.parametrize("path", TAMPERED_FIELDS)
def test_tampering_with_any_field_breaks_the_signature(path: str) -> None:
    document = signed().to_dict()
    _tamper(document, path)
    tampered = SignedMandate.from_dict(document)
    assert tampered.id != PINNED_ID
    with pytest.raises(MandateSignatureInvalid):
        tampered.verify()


def test_every_field_is_covered_by_the_tamper_test() -> None:
    top = {path.split(".")[0] for path in TAMPERED_FIELDS}
    assert top | {"v", "signature"} == set(signed().to_dict())
    limit_fields = {path.split(".")[2] for path in TAMPERED_FIELDS if path.startswith("limits")}
    assert limit_fields | {"windows"} >= {"network", "asset", "total", "perPayment", "windows"}


# --- carried forms --------------------------------------------------------------------------


def test_json_round_trip_is_exact_and_canonical() -> None:
    original = signed()
    text = original.to_json()
    assert text.startswith('{"v":1,"issuer":') and ", " not in text and ": " not in text
    again = SignedMandate.from_json(text)
    assert again == original and again.to_json() == text
    assert SignedMandate.from_json(text.encode()) == original
    assert json.loads(text)["limits"][0]["total"] == "50000"  # amounts as decimal strings


def test_base64_round_trip() -> None:
    original = signed()
    token = original.to_base64()
    assert "=" not in token and "+" not in token and "/" not in token
    assert SignedMandate.from_base64(token) == original
    assert SignedMandate.from_base64(token + "=" * (-len(token) % 4) + "\n") == original
    assert SignedMandate.from_base64(token.encode()) == original


def test_unicode_purpose_round_trips() -> None:
    mandate = root_mandate(purpose="Recherche für den Bericht 📈\nZeile zwei")
    again = SignedMandate.from_json(SignedMandate.sign(mandate, PRINCIPAL).to_json())
    again.verify()
    assert again.mandate.purpose == mandate.purpose


def _document() -> dict[str, Any]:
    return signed().to_dict()


def _with(path: str, value: Any) -> dict[str, Any]:
    document = _document()
    *parents, last = path.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return document


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "error", "field"),
    [
        ("v", 2, MandateVersionUnsupported, "v"),
        ("v", True, MandateVersionUnsupported, "v"),
        ("extra", 1, MandateUnknownField, ""),
        ("limits.0.extra", 1, MandateUnknownField, "limits[0]"),
        ("limits.0.windows", [{"seconds": 60, "limit": "1", "x": 1}], MandateUnknownField, ""),
        ("purpose", _DELETE, InvalidMandate, ""),
        ("issuer", "0x12", InvalidMandate, "issuer"),
        ("issuer", 12, InvalidMandate, "issuer"),
        ("agent", AGENT.address[:-1] + ("a" if AGENT.address[-1] != "a" else "b"), None, "agent"),
        ("payees", [PAYEE.swapcase().replace("0X", "0x")], InvalidMandate, "payees[0]"),
        ("limits.0.total", 50000, InvalidMandate, "limits[0].total"),
        ("limits.0.total", "-1", InvalidMandate, "limits[0].total"),
        ("limits.0.total", "050000", InvalidMandate, "limits[0].total"),
        ("limits.0.total", str(MAX_ATOMIC + 1), InvalidMandate, "limits[0].total"),
        ("limits.0.total", "1" * 50, InvalidMandate, "limits[0].total"),
        ("limits.0.total", "0", InvalidMandate, "limits[0].total"),
        ("limits.0.perPayment", "1.5", InvalidMandate, "limits[0].perPayment"),
        ("limits.0.perPayment", "0", InvalidMandate, "limits[0].perPayment"),
        ("limits.0.asset", TOKEN.lower(), InvalidMandate, "limits[0].asset"),
        ("limits.1.windows.0.seconds", "3600", InvalidMandate, "limits[1].windows[0].seconds"),
        ("limits.1.windows.0.seconds", 0, InvalidMandate, "limits[1].windows[0].seconds"),
        ("limits", {"a": 1}, InvalidMandate, "limits"),
        ("limits", [], InvalidMandate, "limits"),
        ("limits", list(reversed(_document()["limits"])), InvalidMandate, "limits"),
        ("origins", ["HTTPS://API.example.com"], InvalidMandate, "origins[0]"),
        ("origins", ["https://api.example.com:443"], InvalidMandate, "origins[0]"),
        ("networks", [BASE, LEDGER][::-1], InvalidMandate, "networks"),
        ("validAfter", 1.5, InvalidMandate, ""),
        ("validAfter", "1700000000", InvalidMandate, "validAfter"),
        ("validBefore", 2**70, InvalidMandate, "validBefore"),
        ("nonce", "0x1234", InvalidMandate, "nonce"),
        ("parent", None, InvalidMandate, "parent"),
        ("signature", "0x" + "00" * 64, InvalidMandate, "signature"),
        ("purpose", ["list"], InvalidMandate, "purpose"),
    ],
)
def test_malformed_documents_are_refused_precisely(
    path: str, value: Any, error: type[InvalidMandate] | None, field: str
) -> None:
    document = _with(path, value)
    text = json.dumps(document)
    with pytest.raises(InvalidMandate) as caught:
        SignedMandate.from_json(text)
    if error is not None:
        assert type(caught.value) is error, caught.value
    assert caught.value.field == field or caught.value.field.startswith(field), caught.value


def test_payee_order_is_checked_after_normalising_case() -> None:
    document = _document()
    assert document["payees"] == sorted(document["payees"], key=str.lower)
    document["payees"] = list(reversed(document["payees"]))
    with pytest.raises(InvalidMandate, match="canonical order"):
        SignedMandate.from_dict(document)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "null",
        "[]",
        '"text"',
        "{",
        '{"v":1,"v":1}',
        "NaN",
        '{"v": Infinity}',
        "[" * 1_000 + "]" * 1_000,
        "[" * 16_000 + "]" * 16_000,
        '{"v":1,"issuer":"' + "\ud800" + '"}',
    ],
)
def test_malformed_json_is_refused_without_a_traceback(text: str) -> None:
    with pytest.raises(InvalidMandate):
        SignedMandate.from_json(text)


def test_duplicate_keys_are_refused() -> None:
    text = signed().to_json()
    doubled = text.replace('"purpose":', '"purpose":"innocent","purpose":', 1)
    with pytest.raises(InvalidMandate, match="twice"):
        SignedMandate.from_json(doubled)


def test_huge_input_is_refused_before_parsing() -> None:
    huge = " " * (MAX_MANDATE_JSON_BYTES + 1)
    with pytest.raises(MandateTooLarge):
        SignedMandate.from_json(huge)
    with pytest.raises(MandateTooLarge):
        SignedMandate.from_json(huge.encode())
    with pytest.raises(MandateTooLarge):
        SignedMandate.from_base64("A" * (2 * MAX_MANDATE_JSON_BYTES))


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(InvalidMandate, match="UTF-8"):
        SignedMandate.from_json(b'{"v":1,"purpose":"\xff"}')


@pytest.mark.parametrize(
    "token",
    ["", "not base64!", "ab+c", "abc/", "A", "€uro", "YWJj====", b"\x00\x01"],
)
def test_malformed_base64_is_refused(token: str | bytes) -> None:
    with pytest.raises(InvalidMandate):
        SignedMandate.from_base64(token)


def test_base64_of_non_json_is_refused() -> None:
    with pytest.raises(InvalidMandate):
        SignedMandate.from_base64(base64.urlsafe_b64encode(b"\xff\xfe garbage").decode())


def test_wrong_python_types_are_refused() -> None:
    for value in (None, 12, 1.5, ["a"]):
        with pytest.raises(InvalidMandate):
            SignedMandate.from_json(value)  # type: ignore[arg-type]
        with pytest.raises(InvalidMandate):
            SignedMandate.from_dict(value)


def test_the_largest_valid_mandate_fits_the_size_cap() -> None:
    mandate = root_mandate(
        limits=tuple(
            AssetLimit(
                f"eip155:{i + 1}",
                TOKEN,
                MAX_ATOMIC,
                MAX_ATOMIC,
                tuple(Window(w + 1, MAX_ATOMIC) for w in range(MAX_WINDOWS)),
            )
            for i in range(16)
        ),
        payees=tuple(f"0x{i:040x}" for i in range(MAX_PAYEES)),
        origins=tuple(
            f"https://{'a' * 60}.{'b' * 60}.{'c' * 60}.{i:0>60}.com:65535" for i in range(32)
        ),
        networks=tuple(f"namespac:{'r' * 31}{chr(97 + i)}" for i in range(16)),
        purpose="📈" * MAX_PURPOSE_CHARS,
        task_id="t" * 128,
    )
    text = SignedMandate.sign(mandate, PRINCIPAL).to_json()
    assert len(text.encode()) <= MAX_MANDATE_JSON_BYTES
    assert SignedMandate.from_json(text).mandate == mandate


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_random_corruption_never_escapes_as_a_traceback(data: st.DataObject) -> None:
    text = bytearray(_SIGNED_TEXT.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(text) - 1))
        action = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if action == "flip":
            text[position] = data.draw(st.integers(0, 255))
        elif action == "delete":
            del text[position]
        else:
            text.insert(position, data.draw(st.sampled_from(b'{}[]",:0-9ax\\')))
    try:
        parsed = SignedMandate.from_json(bytes(text))
    except PaywireError:
        return
    try:
        parsed.verify()
    except MandateSignatureInvalid:
        return
    assert parsed == SignedMandate.from_json(_SIGNED_TEXT)  # only harmless changes verify


_SIGNED_TEXT = signed().to_json()


def test_typed_data_is_what_a_wallet_signs() -> None:
    mandate = root_mandate()
    typed = mandate.typed_data()
    assert typed["domain"] == {"name": "paywire-mandate", "version": "1"}
    assert typed["primaryType"] == "Mandate"
    reference = _hash_eip191_message(encode_typed_data(full_message=copy.deepcopy(typed)))
    assert bytes(reference) == mandate.digest
    assert mandate.nonce == NONCE
