"""Keccak, addresses, private keys, signing and recovery, checked against eth_account."""

from __future__ import annotations

import os
import pickle
import threading
from dataclasses import FrozenInstanceError

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address as eth_utils_checksum
from hypothesis import given, settings
from hypothesis import strategies as st

from paywire.crypto import keys
from paywire.crypto.keys import (
    SECP256K1_HALF_N,
    SECP256K1_N,
    InvalidAddress,
    InvalidPrivateKey,
    InvalidSignature,
    PrivateKey,
    WrongSigner,
    address_bytes,
    keccak256,
    parse_address,
    parse_signature,
    recover_address,
    recover_address_bytes,
    to_checksum_address,
    verify_signer,
)
from paywire.errors import InvalidInput, PaywireError

KEY = PrivateKey.from_hex("0x" + "11" * 32)
DIGEST = keccak256(b"paywire")


# --- keccak ---------------------------------------------------------------------------------


def test_keccak_known_vectors() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    assert keccak256(b"abc").hex() == (
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    )


def test_fast_keccak_is_in_use() -> None:
    # The ctypes binding should load with the pinned pycryptodome; a silent fallback would
    # cost a third of the hot path's speed.
    assert keys._fast_keccak is not None
    assert keccak256 is keys._fast_keccak


@given(st.binary(max_size=600))
def test_keccak_matches_pycryptodome(data: bytes) -> None:
    assert keccak256(data) == keys._keccak256_portable(data)


def test_keccak_from_many_threads() -> None:
    failures: list[bytes] = []
    inputs = [os.urandom(n) for n in range(0, 400, 7)]
    expected = [keys._keccak256_portable(data) for data in inputs]

    def work() -> None:
        for _ in range(50):
            for data, digest in zip(inputs, expected, strict=True):
                if keccak256(data) != digest:
                    failures.append(data)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# --- addresses ------------------------------------------------------------------------------

EIP55_VECTORS = [
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("address", EIP55_VECTORS)
def test_eip55_vectors(address: str) -> None:
    raw = bytes.fromhex(address[2:])
    assert to_checksum_address(raw) == eth_utils_checksum(address)
    assert to_checksum_address(address.lower()) == eth_utils_checksum(address)
    assert parse_address(address) == eth_utils_checksum(address)
    assert address_bytes(address) == raw


@given(st.binary(min_size=20, max_size=20))
def test_checksum_matches_eth_utils(raw: bytes) -> None:
    checksummed = to_checksum_address(raw)
    assert checksummed == eth_utils_checksum(raw)
    assert parse_address(checksummed) == checksummed
    assert parse_address(checksummed.lower()) == checksummed
    assert parse_address("0x" + checksummed[2:].upper()) == checksummed


def test_parse_address_refuses_a_wrong_checksum() -> None:
    good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    typo = good[:-1] + "D"  # one letter of the wrong case
    with pytest.raises(InvalidAddress, match="checksum") as caught:
        parse_address(typo)
    assert caught.value.code == "invalid_address"
    assert good in str(caught.value)  # tells the user what the right form would be


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0x",
        "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",  # no 0x
        "0X5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED",
        "0x5aaeb6053f3e94c9b9a09f33669435e7ef1bea",  # 19 bytes
        "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed00",  # 21 bytes
        "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaeg",  # not hex
        " 0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
        "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beae\n",
        "0x" + "٠" * 40,  # Arabic-Indic zeros: digits to Python, not hex
        "0x" + "a" * 10_000,
    ],
)
def test_parse_address_refuses_malformed_text(text: str) -> None:
    with pytest.raises(InvalidAddress) as caught:
        parse_address(text)
    assert len(str(caught.value)) < 200  # a huge input is not echoed whole


def test_address_functions_refuse_other_types() -> None:
    with pytest.raises(InvalidAddress):
        parse_address(b"\x00" * 20)  # type: ignore[arg-type]
    with pytest.raises(InvalidAddress):
        to_checksum_address(b"\x00" * 19)
    with pytest.raises(InvalidAddress):
        to_checksum_address(1234)  # type: ignore[arg-type]


# --- private keys ---------------------------------------------------------------------------


def test_private_key_matches_eth_account() -> None:
    for _ in range(20):
        key = PrivateKey.generate()
        account = Account.from_key(key.to_bytes())
        assert key.address == account.address
        assert PrivateKey.from_hex(key.to_hex()) == key
        assert PrivateKey.from_hex(key.to_hex()[2:]) == key
        assert PrivateKey.from_bytes(key.to_bytes()) == key
        assert len(key.public_key_bytes) == 64
        assert keccak256(key.public_key_bytes)[12:] == bytes.fromhex(key.address[2:])


def test_private_key_text_never_shows_the_secret() -> None:
    key = PrivateKey.generate()
    secret = key.to_hex()[2:]
    for text in (repr(key), str(key), f"{key}", f"{key!r}", str([key]), str({"k": key})):
        assert secret not in text.lower()
        assert key.address in text


def test_private_key_is_immutable_and_not_picklable() -> None:
    key = PrivateKey.generate()
    with pytest.raises(FrozenInstanceError):
        key.address = "0x0"
    with pytest.raises(FrozenInstanceError):
        del key.address
    with pytest.raises(TypeError, match="picklable"):
        pickle.dumps(key)
    assert key == PrivateKey.from_bytes(key.to_bytes())
    assert key != PrivateKey.generate()
    assert len({key, PrivateKey.from_bytes(key.to_bytes())}) == 1


@pytest.mark.parametrize(
    "secret",
    [
        bytes(32),
        SECP256K1_N.to_bytes(32, "big"),
        (SECP256K1_N + 1).to_bytes(32, "big"),
        b"\xff" * 32,
        b"\x01" * 31,
        b"\x01" * 33,
    ],
)
def test_private_key_refuses_out_of_range_secrets(secret: bytes) -> None:
    with pytest.raises(InvalidPrivateKey) as caught:
        PrivateKey.from_bytes(secret)
    assert caught.value.code == "invalid_private_key"


def test_private_key_edges_of_the_range() -> None:
    assert PrivateKey.from_bytes((1).to_bytes(32, "big")).address == (
        Account.from_key((1).to_bytes(32, "big")).address
    )
    top = (SECP256K1_N - 1).to_bytes(32, "big")
    assert PrivateKey.from_bytes(top).address == Account.from_key(top).address


@pytest.mark.parametrize("text", ["", "0x", "12" * 31, "12" * 33, "zz" * 32, "0x0x" + "12" * 30])
def test_private_key_from_hex_refuses_without_echoing(text: str) -> None:
    with pytest.raises(InvalidPrivateKey) as caught:
        PrivateKey.from_hex(text)
    if len(text) > 8:
        assert text not in str(caught.value)


# --- signatures -----------------------------------------------------------------------------


def test_sign_digest_matches_eth_account() -> None:
    for index in range(20):
        key = PrivateKey.generate()
        digest = keccak256(index.to_bytes(4, "big"))
        signature = key.sign_digest(digest)
        # both are deterministic (RFC 6979, low s): the bytes must be identical
        assert signature == bytes(Account.unsafe_sign_hash(digest, key.to_bytes()).signature)
        assert signature[64] in (27, 28)
        assert int.from_bytes(signature[32:64], "big") <= SECP256K1_HALF_N
        assert recover_address(digest, signature) == key.address


def test_recover_accepts_v_as_recovery_id() -> None:
    signature = KEY.sign_digest(DIGEST)
    zero_based = signature[:64] + bytes((signature[64] - 27,))
    assert recover_address(DIGEST, zero_based) == KEY.address
    assert recover_address(bytearray(DIGEST), bytearray(signature)) == KEY.address  # type: ignore[arg-type]


def test_recover_eth_account_signatures() -> None:
    for _ in range(10):
        account = Account.create()
        digest = os.urandom(32)
        signed = Account.unsafe_sign_hash(digest, account.key)
        assert recover_address(digest, bytes(signed.signature)) == account.address


def test_recover_refuses_high_s_even_though_it_verifies() -> None:
    signature = KEY.sign_digest(DIGEST)
    s = int.from_bytes(signature[32:64], "big")
    flipped_v = 55 - signature[64]  # 27 <-> 28
    twin = signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes((flipped_v,))
    # eth_account accepts the malleable twin and finds the same signer...
    assert Account._recover_hash(DIGEST, signature=twin) == KEY.address
    # ...paywire refuses it, as EIP-2 and OpenZeppelin's ECDSA do.
    with pytest.raises(InvalidSignature, match="malleable") as caught:
        recover_address(DIGEST, twin)
    assert caught.value.code == "invalid_signature"


def _with(
    signature: bytes, *, r: int | None = None, s: int | None = None, v: int | None = None
) -> bytes:
    r_bytes = signature[:32] if r is None else r.to_bytes(32, "big")
    s_bytes = signature[32:64] if s is None else s.to_bytes(32, "big")
    return r_bytes + s_bytes + bytes((signature[64] if v is None else v,))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"r": 0}, "r is out of range"),
        ({"r": SECP256K1_N}, "r is out of range"),
        ({"r": 2**256 - 1}, "r is out of range"),
        ({"s": 0}, "s is out of range"),
        ({"s": SECP256K1_N}, "s is out of range"),
        ({"s": SECP256K1_HALF_N + 1}, "malleable"),
        ({"v": 29}, "v is 29"),
        ({"v": 2}, "v is 2"),
        ({"v": 255}, "v is 255"),
    ],
)
def test_recover_refuses_bad_values(change: dict[str, int], reason: str) -> None:
    bad = _with(KEY.sign_digest(DIGEST), **change)
    with pytest.raises(InvalidSignature, match=reason):
        recover_address(DIGEST, bad)


def test_recover_refuses_bad_lengths() -> None:
    signature = KEY.sign_digest(DIGEST)
    for wrong in (b"", signature[:64], signature + b"\x00", bytes(130)):
        with pytest.raises(InvalidSignature, match="65 bytes"):
            recover_address(DIGEST, wrong)
    with pytest.raises(InvalidInput, match="32 bytes"):
        recover_address(DIGEST[:31], signature)


def test_recover_refuses_a_signature_with_no_key() -> None:
    # r = 5 is not the x coordinate of any curve point: nothing can be recovered.
    bad = _with(KEY.sign_digest(DIGEST), r=5, s=1234)
    with pytest.raises(InvalidSignature, match="recovers no public key"):
        recover_address(DIGEST, bad)


@settings(max_examples=60)
@given(st.binary(min_size=65, max_size=65), st.binary(min_size=32, max_size=32))
def test_recover_garbage_is_an_address_or_a_typed_error(signature: bytes, digest: bytes) -> None:
    try:
        address = recover_address(digest, signature)
    except InvalidSignature:
        return
    assert parse_address(address) == address


def test_sign_digest_needs_32_bytes() -> None:
    with pytest.raises(InvalidInput):
        KEY.sign_digest(b"short")


def test_parse_signature() -> None:
    signature = KEY.sign_digest(DIGEST)
    assert parse_signature("0x" + signature.hex()) == signature
    assert parse_signature("0x" + signature.hex().upper()) == signature
    for text in ("", signature.hex(), "0x" + signature.hex()[:-2], "0x" + "zz" * 65):
        with pytest.raises(InvalidSignature):
            parse_signature(text)
    with pytest.raises(InvalidSignature) as caught:
        parse_signature("0x" + "ab" * 100_000)
    assert "200002 characters" in str(caught.value)
    with pytest.raises(InvalidSignature):
        parse_signature(signature)  # type: ignore[arg-type]


def test_errors_are_paywire_errors() -> None:
    assert issubclass(InvalidSignature, PaywireError)
    assert issubclass(InvalidAddress, InvalidInput)
    assert issubclass(InvalidPrivateKey, InvalidInput)


def test_keccak_takes_any_bytes_like() -> None:
    assert keccak256(bytearray(b"abc")) == keccak256(b"abc")  # type: ignore[arg-type]
    assert keccak256(memoryview(b"abc")) == keccak256(b"abc")  # type: ignore[arg-type]


def test_private_key_copies_are_the_same_key() -> None:
    import copy

    key = PrivateKey.generate()
    assert copy.copy(key) is key
    assert copy.deepcopy({"key": key})["key"] is key


def test_verify_signer() -> None:
    signature = KEY.sign_digest(DIGEST)
    assert recover_address_bytes(DIGEST, signature) == address_bytes(KEY.address)
    verify_signer(DIGEST, signature, KEY.address)
    verify_signer(DIGEST, signature, KEY.address.lower())
    other = PrivateKey.generate().address
    with pytest.raises(WrongSigner, match=f"made by {KEY.address}, not by {other}") as caught:
        verify_signer(DIGEST, signature, other)
    assert caught.value.code == "wrong_signer"
    assert isinstance(caught.value, InvalidSignature)
    with pytest.raises(InvalidAddress):
        verify_signer(DIGEST, signature, "0x1234")
