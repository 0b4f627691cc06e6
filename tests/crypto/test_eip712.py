"""EIP-712 hashing: byte-identical to eth_account on random types and values, strict on
hostile input, and the sign/recover round trips around it."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any

import pytest
from eth_account import Account
from eth_account._utils.encode_typed_data.encoding_and_hashing import (
    encode_type as eth_encode_type,
)
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paywire.crypto import eip712
from paywire.crypto.eip712 import (
    MAX_ARRAY_LENGTH,
    MAX_MESSAGE_BYTES,
    TRANSFER_WITH_AUTHORIZATION,
    Eip712Domain,
    InvalidTypedData,
    StructType,
    TypedMessage,
    digest_typed_data,
    recover_typed_data,
    typed_message_from_json,
)
from paywire.crypto.keys import (
    SECP256K1_N,
    InvalidAddress,
    InvalidSignature,
    PrivateKey,
    WrongSigner,
    keccak256,
    to_checksum_address,
)
from paywire.errors import InvalidInput


def eth_digest(full_message: Mapping[str, Any]) -> bytes:
    """eth_account's digest of typed data in the JSON form: the reference."""
    signable = encode_typed_data(full_message=copy.deepcopy(dict(full_message)))
    return bytes(_hash_eip191_message(signable))


MAIL_TYPES = {
    "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
    "Mail": [
        {"name": "from", "type": "Person"},
        {"name": "to", "type": "Person"},
        {"name": "contents", "type": "string"},
    ],
}
MAIL_DOMAIN = {
    "name": "Ether Mail",
    "version": "1",
    "chainId": 1,
    "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
}
MAIL_MESSAGE = {
    "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
    "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
    "contents": "Hello, Bob!",
}
MAIL: dict[str, Any] = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        **MAIL_TYPES,
    },
    "primaryType": "Mail",
    "domain": MAIL_DOMAIN,
    "message": MAIL_MESSAGE,
}

USDC = Eip712Domain(
    name="USD Coin",
    version="2",
    chain_id=8453,
    verifying_contract="0x833589fCD6eDb6E08F4C3C32D4f71b54BDA02913",
)
PAYER = PrivateKey.from_hex("0x" + "42" * 32)
AUTHORIZATION = {
    "from": PAYER.address,
    "to": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
    "value": "10000",
    "validAfter": "1740672089",
    "validBefore": "1740672154",
    "nonce": "0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480",
}


# --- the specification's own example ------------------------------------------------------


def test_eip712_mail_example() -> None:
    # The digest given in EIP-712's own test (Example.js / Example.sol).
    expected = "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
    assert digest_typed_data(MAIL).hex() == expected
    assert eth_digest(MAIL).hex() == expected

    mail = StructType("Mail", MAIL_TYPES)
    assert mail.encode_type == (
        "Mail(Person from,Person to,string contents)Person(string name,address wallet)"
    )
    assert mail.type_hash.hex() == (
        "a0cedeb2dc280ba39b857546d74f5549c3a1d7bdc2dd96bf881f76108e23dac2"
    )
    domain = Eip712Domain.from_json(MAIL_DOMAIN)
    assert domain.separator.hex() == (
        "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"
    )
    assert mail.hash_struct(MAIL_MESSAGE).hex() == (
        "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"
    )
    assert TypedMessage(domain, mail).digest(MAIL_MESSAGE).hex() == expected


def test_mail_example_signature_from_the_spec() -> None:
    # EIP-712's example signer is keccak256("cow").
    cow = PrivateKey(keccak256(b"cow"))
    assert cow.address == "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"
    signature = TypedMessage(
        Eip712Domain.from_json(MAIL_DOMAIN), StructType("Mail", MAIL_TYPES)
    ).sign(MAIL_MESSAGE, cow)
    assert signature[64] == 28
    assert signature[:32].hex() == (
        "4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d"
    )
    assert signature[32:64].hex() == (
        "07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562"
    )
    assert recover_typed_data(MAIL, signature) == cow.address


# --- EIP-3009 ---------------------------------------------------------------------------------


def test_transfer_with_authorization_matches_eth_account() -> None:
    typed = TypedMessage(USDC, TRANSFER_WITH_AUTHORIZATION)
    full = typed.full_message(AUTHORIZATION)
    assert typed.digest(AUTHORIZATION) == eth_digest(full) == digest_typed_data(full)
    assert TRANSFER_WITH_AUTHORIZATION.type_hash.hex() == (
        # keccak256("TransferWithAuthorization(address from,address to,uint256 value,...)")
        "7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267"
    )
    as_ints = {
        **AUTHORIZATION,
        "value": 10000,
        "validAfter": 1740672089,
        "validBefore": hex(1740672154),
        "nonce": bytes.fromhex(str(AUTHORIZATION["nonce"])[2:]),
        "to": str(AUTHORIZATION["to"]).lower(),
    }
    assert typed.digest(as_ints) == typed.digest(AUTHORIZATION)


def test_sign_and_recover_round_trips() -> None:
    typed = TypedMessage(USDC, TRANSFER_WITH_AUTHORIZATION)
    full = typed.full_message(AUTHORIZATION)
    signature = typed.sign(AUTHORIZATION, PAYER)
    assert typed.recover(AUTHORIZATION, signature) == PAYER.address
    assert typed.recover(AUTHORIZATION, "0x" + signature.hex()) == PAYER.address
    assert recover_typed_data(full, signature) == PAYER.address
    # eth_account's signature is the same bytes, and recovers through the fast path
    theirs = Account.sign_typed_data(PAYER.to_bytes(), full_message=copy.deepcopy(full))
    assert bytes(theirs.signature) == signature
    assert typed.recover(AUTHORIZATION, bytes(theirs.signature)) == PAYER.address
    # and eth_account recovers ours
    signable = encode_typed_data(full_message=copy.deepcopy(full))
    assert Account.recover_message(signable, signature=signature) == PAYER.address


def test_verify_checks_the_signer() -> None:
    typed = TypedMessage(USDC, TRANSFER_WITH_AUTHORIZATION)
    signature = typed.sign(AUTHORIZATION, PAYER)
    typed.verify(AUTHORIZATION, signature, PAYER.address)
    typed.verify(AUTHORIZATION, "0x" + signature.hex(), str(AUTHORIZATION["from"]))
    with pytest.raises(WrongSigner):
        typed.verify({**AUTHORIZATION, "value": "1"}, signature, PAYER.address)
    with pytest.raises(WrongSigner):
        typed.verify(AUTHORIZATION, signature, str(AUTHORIZATION["to"]))


def test_a_changed_message_recovers_someone_else() -> None:
    typed = TypedMessage(USDC, TRANSFER_WITH_AUTHORIZATION)
    signature = typed.sign(AUTHORIZATION, PAYER)
    for field, value in [("value", "10001"), ("to", PAYER.address), ("validBefore", "1")]:
        changed = {**AUTHORIZATION, field: value}
        assert typed.recover(changed, signature) != PAYER.address
    other_chain = TypedMessage(
        Eip712Domain(
            name="USD Coin", version="2", chain_id=1, verifying_contract=USDC.verifying_contract
        ),
        TRANSFER_WITH_AUTHORIZATION,
    )
    assert other_chain.recover(AUTHORIZATION, signature) != PAYER.address


def test_recover_refuses_malleable_signatures() -> None:
    typed = TypedMessage(USDC, TRANSFER_WITH_AUTHORIZATION)
    signature = typed.sign(AUTHORIZATION, PAYER)
    s = int.from_bytes(signature[32:64], "big")
    twin = signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes((55 - signature[64],))
    with pytest.raises(InvalidSignature, match="malleable"):
        typed.recover(AUTHORIZATION, twin)


# --- random types and values against eth_account --------------------------------------------

ATOMIC = [
    "address",
    "bool",
    "string",
    "bytes",
    *(f"uint{bits}" for bits in range(8, 257, 8)),
    *(f"int{bits}" for bits in range(8, 257, 8)),
    *(f"bytes{size}" for size in range(1, 33)),
]
STRUCT_NAMES = st.from_regex(r"[A-Z][A-Za-z0-9_]{0,8}", fullmatch=True)
FIELD_NAMES = st.from_regex(r"[a-z_][A-Za-z0-9_]{0,8}", fullmatch=True)


@st.composite
def type_definitions(draw: st.DrawFn) -> tuple[str, dict[str, list[dict[str, str]]]]:
    """A random acyclic set of struct types, all used by the first (the primary type)."""
    names = draw(st.lists(STRUCT_NAMES, min_size=1, max_size=4, unique=True))
    types: dict[str, list[dict[str, str]]] = {}
    for index, name in enumerate(names):
        later = names[index + 1 :]  # only later structs may be used: no cycles
        bases = st.sampled_from(ATOMIC)
        if later:
            bases = st.one_of(bases, st.sampled_from(later))
        fields = []
        for field_name in draw(st.lists(FIELD_NAMES, min_size=1, max_size=6, unique=True)):
            base = draw(bases)
            dimensions = draw(st.lists(st.one_of(st.none(), st.integers(1, 3)), max_size=2))
            suffix = "".join(f"[{size or ''}]" for size in dimensions)
            fields.append({"name": field_name, "type": base + suffix})
        types[name] = fields
    # keep only the structs the primary type uses (wallets refuse unused ones)
    used, todo = {names[0]}, [names[0]]
    while todo:
        for member in types[todo.pop()]:
            base = member["type"].split("[")[0]
            if base in types and base not in used:
                used.add(base)
                todo.append(base)
    return names[0], {name: fields for name, fields in types.items() if name in used}


def _int_forms(value: int) -> st.SearchStrategy[object]:
    forms: list[object] = [value, str(value)]
    if value >= 0:
        forms.append(hex(value))
    return st.sampled_from(forms)


def _bytes_forms(raw: bytes) -> st.SearchStrategy[object]:
    return st.sampled_from([raw, "0x" + raw.hex()])


def _address_forms(raw: bytes) -> st.SearchStrategy[object]:
    checksummed = to_checksum_address(raw)
    return st.sampled_from([checksummed, checksummed.lower(), "0x" + checksummed[2:].upper(), raw])


def values_of(type_text: str, types: Mapping[str, list[dict[str, str]]]) -> st.SearchStrategy[Any]:
    """Random values of a field type, in every form both eth_account and paywire accept."""
    if type_text.endswith("]"):
        inner, length = (
            type_text[: type_text.rindex("[")],
            type_text[type_text.rindex("[") + 1 : -1],
        )
        items = values_of(inner, types)
        if length:
            return st.lists(items, min_size=int(length), max_size=int(length))
        return st.lists(items, max_size=2)
    if type_text in types:
        return st.fixed_dictionaries(
            {member["name"]: values_of(member["type"], types) for member in types[type_text]}
        )
    if type_text.startswith("uint"):
        return st.integers(0, 2 ** int(type_text[4:]) - 1).flatmap(_int_forms)
    if type_text.startswith("int"):
        bits = int(type_text[3:])
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1).flatmap(_int_forms)
    if type_text == "bytes":
        return st.binary(max_size=40).flatmap(_bytes_forms)
    if type_text.startswith("bytes"):
        size = int(type_text[5:])
        return st.binary(min_size=size, max_size=size).flatmap(_bytes_forms)
    if type_text == "string":
        return st.text(max_size=20)
    if type_text == "bool":
        return st.sampled_from([True, False, "true", "false"])
    assert type_text == "address"
    return st.binary(min_size=20, max_size=20).flatmap(_address_forms)


@st.composite
def domains(draw: st.DrawFn) -> dict[str, object]:
    domain: dict[str, object] = {}
    if draw(st.booleans()):
        domain["name"] = draw(st.text(max_size=12))
    if draw(st.booleans()):
        domain["version"] = draw(st.sampled_from(["1", "2", ""]))
    if draw(st.booleans()):
        domain["chainId"] = draw(st.integers(0, 2**256 - 1).flatmap(_int_forms))
    if draw(st.booleans()):
        domain["verifyingContract"] = to_checksum_address(draw(st.binary(min_size=20, max_size=20)))
    if draw(st.booleans()):
        domain["salt"] = draw(st.binary(min_size=32, max_size=32).flatmap(_bytes_forms))
    return domain


@st.composite
def typed_data(draw: st.DrawFn) -> dict[str, Any]:
    primary, types = draw(type_definitions())
    domain = draw(domains())
    full: dict[str, Any] = {
        "types": dict(types),
        "domain": domain,
        "message": draw(values_of(primary, types)),
    }
    if draw(st.booleans()):
        full["primaryType"] = primary
    if draw(st.booleans()):
        full["types"]["EIP712Domain"] = [
            {"name": name, "type": kind} for name, kind in eip712.DOMAIN_FIELDS if name in domain
        ]
    return full


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(typed_data())
def test_random_typed_data_matches_eth_account(full: dict[str, Any]) -> None:
    assert digest_typed_data(full) == eth_digest(full)
    typed, _ = typed_message_from_json(full)
    types = {name: fields for name, fields in full["types"].items() if name != "EIP712Domain"}
    assert typed.struct.encode_type == eth_encode_type(typed.struct.primary_type, types)


@settings(max_examples=100, deadline=None)
@given(typed_data(), st.integers(1, SECP256K1_N - 1))
def test_random_typed_data_signatures_round_trip(full: dict[str, Any], secret: int) -> None:
    key = PrivateKey(secret.to_bytes(32, "big"))
    typed, message = typed_message_from_json(full)
    signature = typed.sign(message, key)  # type: ignore[arg-type]
    theirs = Account.sign_typed_data(key.to_bytes(), full_message=copy.deepcopy(full))
    assert bytes(theirs.signature) == signature
    assert recover_typed_data(full, signature) == key.address


@settings(max_examples=50, deadline=None)
@given(domains())
def test_random_domains_match_eth_account(domain: dict[str, object]) -> None:
    full = {
        "types": {"Empty": [{"name": "x", "type": "uint8"}]},
        "domain": domain,
        "message": {"x": 1},
    }
    assert digest_typed_data(full) == eth_digest(full)
    separator = Eip712Domain.from_json(domain).separator
    assert Eip712Domain.from_json(Eip712Domain.from_json(domain).to_json()).separator == separator


def test_domain_fields_and_json() -> None:
    domain = Eip712Domain(chain_id=1, salt=b"\x01" * 32)
    assert domain.to_json() == {"chainId": 1, "salt": "0x" + "01" * 32}
    assert domain.types_json() == [
        {"name": "chainId", "type": "uint256"},
        {"name": "salt", "type": "bytes32"},
    ]
    lower = Eip712Domain(verifying_contract=str(MAIL_DOMAIN["verifyingContract"]).lower())
    assert lower.verifying_contract == MAIL_DOMAIN["verifyingContract"]
    assert Eip712Domain().separator == keccak256(keccak256(b"EIP712Domain()"))


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"chain_id": -1}, InvalidTypedData),
        ({"chain_id": 2**256}, InvalidTypedData),
        ({"chain_id": True}, InvalidTypedData),
        ({"name": 5}, InvalidTypedData),
        ({"salt": b"short"}, InvalidTypedData),
        ({"verifying_contract": "0xCCCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"}, InvalidAddress),
    ],
)
def test_domain_refuses_bad_fields(fields: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        Eip712Domain(**fields)  # type: ignore[arg-type]


def test_domain_from_json_refuses_unknown_fields() -> None:
    with pytest.raises(InvalidTypedData, match="unknown domain fields 'chainid'"):
        Eip712Domain.from_json({"chainid": 1})


# --- strictness where eth_account is lenient ---------------------------------------------


def _authorization(**changes: object) -> dict[str, object]:
    message: dict[str, object] = dict(AUTHORIZATION)
    for key, value in changes.items():
        if value is None:
            del message[key]
        else:
            message[key] = value
    return message


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (_authorization(value=None), r"TransferWithAuthorization: .*missing value"),
        (_authorization(memo="hi"), r"unexpected 'memo'"),
        (_authorization(value=2**256), r"\.value: .* out of range for uint256"),
        (_authorization(value=-1), r"\.value: -1 is out of range"),
        (_authorization(value="1e6"), r"\.value: '1e6' is not a uint256"),
        (_authorization(value=" 5"), r"not a uint256"),
        (_authorization(value="1_000"), r"not a uint256"),
        (_authorization(value="٣"), r"not a uint256"),  # an Arabic-Indic digit
        (_authorization(value="9" * 100), r"not a uint256"),
        (_authorization(value=1.0), r"needs an integer"),
        (_authorization(value=True), r"needs an integer"),
        (_authorization(nonce="0x1234"), r"\.nonce: bytes32 needs exactly 32 bytes, got 2"),
        (_authorization(nonce="12" * 32), r"\.nonce: bytes32 needs bytes or 0x-hex"),
        (_authorization(nonce="0x" + "1 " * 32), r"bytes32 needs bytes or 0x-hex"),
        (_authorization(nonce=b"\x00" * 31), r"exactly 32 bytes, got 31"),
        (_authorization(to="0x1234"), r"\.to: .*not an address"),
        (_authorization(to=12), r"\.to: address needs"),
        ([], r"needs an object"),
        ("text", r"needs an object"),
    ],
)
def test_bad_messages_are_refused_naming_the_field(message: object, match: str) -> None:
    typed = TypedMessage(USDC, TRANSFER_WITH_AUTHORIZATION)
    with pytest.raises(InvalidInput, match=match):
        typed.digest(message)  # type: ignore[arg-type]


def test_a_bad_address_checksum_in_a_message_is_an_invalid_address() -> None:
    typed = TypedMessage(USDC, TRANSFER_WITH_AUTHORIZATION)
    address = str(AUTHORIZATION["to"])
    wrong_case = address[:-1] + (
        address[-1].lower() if address[-1].isupper() else address[-1].upper()
    )
    if wrong_case[-1].isdigit():  # pragma: no cover - the fixture ends in a letter
        pytest.skip("needs a letter to flip")
    with pytest.raises(InvalidAddress, match=r"TransferWithAuthorization\.to: .*checksum"):
        typed.digest(_authorization(to=wrong_case))


NESTED_TYPES = {
    "Order": [
        {"name": "items", "type": "Item[]"},
        {"name": "grid", "type": "bool[2][]"},
        {"name": "tags", "type": "string[3]"},
    ],
    "Item": [{"name": "sku", "type": "bytes"}, {"name": "qty", "type": "uint8"}],
}
NESTED_MESSAGE = {
    "items": [{"sku": "0x01", "qty": 1}, {"sku": b"", "qty": "255"}],
    "grid": [[True, False], [1, 0]],
    "tags": ["a", "b", "c"],
}


def test_nested_arrays_match_eth_account() -> None:
    full = {"types": NESTED_TYPES, "domain": {"name": "shop"}, "message": NESTED_MESSAGE}
    assert digest_typed_data(full) == eth_digest(full)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"tags": ["a", "b"]}, r"Order\.tags: string\[3\] needs exactly 3 items, got 2"),
        ({"items": [{"sku": "0x01", "qty": 256}]}, r"Order\.items\[0\]\.qty: 256 is out of range"),
        (
            {"items": [{"sku": "hello", "qty": 1}]},
            r"Order\.items\[0\]\.sku: bytes needs bytes or 0x-hex",
        ),
        ({"items": [{"sku": "0x1", "qty": 1}]}, r"bytes needs bytes or 0x-hex"),
        ({"items": [{"sku": "0x01"}]}, r"Order\.items\[0\]: Item has fields sku, qty: missing qty"),
        ({"items": {"sku": "0x01", "qty": 1}}, r"Order\.items: Item\[\] needs a list"),
        ({"grid": [[True, "yes"]]}, r"Order\.grid\[0\]\[1\]: bool needs true or false"),
        ({"grid": [[True, 2]]}, r"bool needs true or false"),
        ({"grid": [[True, None]]}, r"bool needs true or false"),
        ({"tags": ["a", "b", 3]}, r"Order\.tags\[2\]: string needs text"),
        ({"tags": ["a", "b", "\ud800"]}, r"not valid UTF-8"),
    ],
)
def test_nested_errors_name_the_path(change: dict[str, object], match: str) -> None:
    order = StructType("Order", NESTED_TYPES)
    with pytest.raises(InvalidTypedData, match=match):
        order.hash_struct({**NESTED_MESSAGE, **change})


# --- hostile input --------------------------------------------------------------------------


def _types(**fields: str) -> dict[str, list[dict[str, str]]]:
    return {"T": [{"name": name, "type": kind} for name, kind in fields.items()]}


@pytest.mark.parametrize(
    ("primary", "types", "match"),
    [
        ("T", _types(a="Missing"), "type Missing is not defined"),
        ("T", _types(a="uint"), r"type uint is not defined \(write uint256\)"),
        ("T", _types(a="uint7"), "type uint7 is not defined"),
        ("T", _types(a="uint264"), "type uint264 is not defined"),
        ("T", _types(a="bytes33"), "type bytes33 is not defined"),
        ("T", _types(a="bytes0"), "type bytes0 is not defined"),
        ("T", _types(a="uint256[0]"), "is not a type name"),
        ("T", _types(a="uint256[01]"), "is not a type name"),
        ("T", _types(a="uint256[-1]"), "is not a type name"),
        ("T", _types(a="uint256[ ]"), "is not a type name"),
        ("T", _types(a="uint256 "), "is not a type name"),
        ("T", _types(a="uint256[1025]"), "more than 1024 items"),
        ("T", _types(a="uint8[][][][][]"), "deeper than 4"),
        ("T", _types(a="T"), "recursive types are not supported: T -> T"),
        ("T", _types(a="T[]"), "recursive types"),
        (
            "A",
            {"A": [{"name": "b", "type": "B"}], "B": [{"name": "a", "type": "A[2]"}]},
            "recursive types are not supported: A -> B -> A",
        ),
        ("T", {"T": [{"name": "a", "type": "bool"}], "U": []}, "U are defined but not used"),
        ("X", _types(a="bool"), "primary type 'X' is not among the defined types"),
        ("T", _types(**{"a b": "bool"}), "field name 'a b' must be an identifier"),
        ("T", _types(**{"": "bool"}), "field name '' must be an identifier"),
        ("T", {"T": [{"name": "a", "type": "bool"}, {"name": "a", "type": "bool"}]}, "twice"),
        ("uint256", {"uint256": [{"name": "a", "type": "bool"}]}, "reserved"),
        ("T x", {"T x": [{"name": "a", "type": "bool"}]}, "must be an identifier"),
        ("T", {"T": "uint256 a"}, "must be a list of fields"),
        ("T", {"T": [{"name": "a"}]}, r"must be \{'name': ..., 'type': ...\}"),
        ("T", {"T": [{"name": "a", "type": "bool", "extra": 1}]}, "must be"),
        ("T", {"T": [{"name": 1, "type": "bool"}]}, "with text values"),
        ("T", ["T"], "types must be an object"),
        ("T", {"T": [{"name": f"f{i}", "type": "bool"} for i in range(65)]}, "more than 64"),
        ("T", {f"T{i}": [] for i in range(65)}, "more than 64"),
    ],
)
def test_bad_definitions_are_refused(primary: str, types: Any, match: str) -> None:
    with pytest.raises(InvalidTypedData, match=match) as caught:
        StructType(primary, types)
    assert caught.value.code == "invalid_typed_data"


def test_total_fields_are_bounded() -> None:
    types = {f"T{i}": [{"name": f"f{j}", "type": "bool"} for j in range(60)] for i in range(5)}
    with pytest.raises(InvalidTypedData, match="more than 256 fields in all"):
        StructType("T0", types)


def test_long_arrays_are_refused() -> None:
    numbers = StructType("T", _types(a="uint8[]"))
    assert len(numbers.hash_struct({"a": [1] * MAX_ARRAY_LENGTH})) == 32
    with pytest.raises(InvalidTypedData, match="1025 items is more than 1024"):
        numbers.hash_struct({"a": [1] * (MAX_ARRAY_LENGTH + 1)})


def test_large_messages_are_refused() -> None:
    text = StructType("T", _types(a="string"))
    with pytest.raises(InvalidTypedData, match="larger than"):
        text.hash_struct({"a": "x" * (MAX_MESSAGE_BYTES + 1)})
    raw = StructType("T", _types(a="bytes"))
    with pytest.raises(InvalidTypedData, match="larger than"):
        raw.hash_struct({"a": "0x" + "00" * (MAX_MESSAGE_BYTES + 1)})
    strings = StructType("T", _types(a="string[]"))
    with pytest.raises(InvalidTypedData, match="larger than"):
        strings.hash_struct({"a": ["x" * 1000] * 1000})


def test_shared_sub_objects_cannot_multiply_the_work() -> None:
    # Eight levels of 64-fold fan-out over one shared object would be 64**8 hashes;
    # the message budget stops it almost at once.
    types: dict[str, list[dict[str, str]]] = {}
    for level in range(8):
        child = f"L{level + 1}" if level < 7 else "uint8"
        types[f"L{level}"] = [{"name": f"f{i}", "type": child} for i in range(30)]
    value: object = 1
    for _ in range(8):
        value = {f"f{i}": value for i in range(30)}
    struct = StructType("L0", types)
    started = time.perf_counter()
    with pytest.raises(InvalidTypedData, match="larger than"):
        struct.hash_struct(value)  # type: ignore[arg-type]
    assert time.perf_counter() - started < 2.0
    deep_lists: object = [1]
    for _ in range(3):
        deep_lists = [deep_lists] * 1000
    nested = StructType("T", _types(a="uint8[][][][]"))
    with pytest.raises(InvalidTypedData, match="larger than"):
        nested.hash_struct({"a": deep_lists})


def test_full_message_shape_is_checked() -> None:
    with pytest.raises(InvalidTypedData, match="typed data has no message"):
        digest_typed_data({"types": MAIL_TYPES, "domain": {}})
    with pytest.raises(InvalidTypedData, match="unknown typed-data keys 'extra'"):
        digest_typed_data({**MAIL, "extra": 1})
    with pytest.raises(InvalidTypedData, match="typed data must be an object"):
        digest_typed_data([])  # type: ignore[arg-type]
    with pytest.raises(InvalidTypedData, match="the domain must be an object"):
        digest_typed_data({**MAIL, "domain": "x"})
    with pytest.raises(InvalidTypedData, match="domain values"):
        digest_typed_data({**MAIL, "domain": {"name": ["x"]}})
    with pytest.raises(InvalidTypedData, match="primaryType must be a type name"):
        digest_typed_data({**MAIL, "primaryType": 5})


def test_primary_type_is_derived_when_absent() -> None:
    without = {key: value for key, value in MAIL.items() if key != "primaryType"}
    assert digest_typed_data(without) == digest_typed_data(MAIL)
    two_roots = {**without, "types": {**MAIL_TYPES, "Other": [{"name": "a", "type": "bool"}]}}
    with pytest.raises(InvalidTypedData, match="cannot tell the primary type"):
        digest_typed_data(two_roots)


def test_domain_type_must_be_canonical() -> None:
    reordered = copy.deepcopy(MAIL)
    reordered["types"]["EIP712Domain"] = list(reversed(reordered["types"]["EIP712Domain"]))
    with pytest.raises(InvalidTypedData, match="EIP-712 order"):
        digest_typed_data(reordered)
    retyped = copy.deepcopy(MAIL)
    retyped["types"]["EIP712Domain"][2]["type"] = "uint64"
    with pytest.raises(InvalidTypedData, match="standard types"):
        digest_typed_data(retyped)
    missing = copy.deepcopy(MAIL)
    del missing["types"]["EIP712Domain"][0]
    with pytest.raises(InvalidTypedData, match="exactly the domain's fields"):
        digest_typed_data(missing)


def test_compiled_types_are_cached() -> None:
    eip712._cached_struct.cache_clear()
    for index in range(5):
        message = {**MAIL_MESSAGE, "contents": f"message {index}"}
        digest_typed_data({**MAIL, "message": message})
    info = eip712._cached_struct.cache_info()
    assert (info.misses, info.hits) == (1, 4)


def test_struct_type_is_a_value() -> None:
    one, two = StructType("Mail", MAIL_TYPES), StructType("Mail", copy.deepcopy(MAIL_TYPES))
    assert one == two
    assert hash(one) == hash(two)
    assert one != StructType("Person", {"Person": MAIL_TYPES["Person"]})
    assert "Mail(Person from" in repr(one)
    assert one.types_json() == MAIL_TYPES
    with pytest.raises(AttributeError):
        one.type_hash = b""
    # an EIP712Domain entry among the types is the domain's business, not the struct's
    assert StructType("Mail", MAIL["types"]) == one


def test_typed_message_needs_the_right_parts() -> None:
    with pytest.raises(InvalidTypedData):
        TypedMessage(MAIL_DOMAIN, TRANSFER_WITH_AUTHORIZATION)  # type: ignore[arg-type]


def test_full_message_round_trips_through_eth_account() -> None:
    typed = TypedMessage(USDC, TRANSFER_WITH_AUTHORIZATION)
    full = typed.full_message(AUTHORIZATION)
    assert full["primaryType"] == "TransferWithAuthorization"
    parsed, message = typed_message_from_json(full)
    assert parsed == typed
    assert message == AUTHORIZATION
