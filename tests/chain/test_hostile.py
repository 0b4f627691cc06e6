"""Hostile input: bad addresses, amounts past uint256 and u128, malformed JSON fields. Each is
refused with a typed paywire error before it reaches the chain, or by the contract."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paywire.chain import (
    Authorization,
    ChainError,
    InvalidAuthorization,
    InvalidChainInput,
    LocalChain,
    Token,
)
from paywire.chain.base import check_confirmations
from paywire.chain.token import check_token_text
from paywire.crypto import PrivateKey
from paywire.errors import PaywireError

GOOD = "0x" + "11" * 20
NONCE = bytes(32)

BAD_ADDRESSES: list[object] = [
    "",
    "0x",
    "0x1234",
    "11" * 20,
    "0x" + "gg" * 20,
    "0x" + "11" * 21,
    "0xAbCdEf0123456789AbCdEf0123456789AbCdEf01",  # mixed case, wrong checksum
    " 0x" + "11" * 20,
    "0x" + "11" * 20 + "\n",
    None,
    12,
    b"\x11" * 20,
    "0x" + "1" * 10_000,
]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_bad_addresses_refused(address: object) -> None:
    with pytest.raises(InvalidAuthorization):
        Authorization(address, GOOD, 1, 0, 1, NONCE)  # type: ignore[arg-type]
    with pytest.raises(InvalidAuthorization):
        Authorization(GOOD, address, 1, 0, 1, NONCE)  # type: ignore[arg-type]


@pytest.mark.parametrize("number", [-1, 2**256, 2**1000, True, 1.0, "1", None])
def test_numbers_outside_uint256_refused(number: object) -> None:
    for position in range(3):
        fields: list[object] = [1, 0, 1]
        fields[position] = number
        with pytest.raises(InvalidAuthorization, match="uint256"):
            Authorization(GOOD, GOOD, *fields, NONCE)  # type: ignore[arg-type]


@pytest.mark.parametrize("nonce", [b"", bytes(31), bytes(33), "0x" + "00" * 32, None])
def test_bad_nonces_refused(nonce: object) -> None:
    with pytest.raises(InvalidAuthorization, match="nonce"):
        Authorization(GOOD, GOOD, 1, 0, 1, nonce)  # type: ignore[arg-type]


def _json(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "from": GOOD,
        "to": GOOD,
        "value": "1",
        "validAfter": "0",
        "validBefore": "99",
        "nonce": "0x" + "00" * 32,
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    "data",
    [
        _json(value="0x10"),
        _json(value="1e3"),
        _json(value=" 1"),
        _json(value="-1"),
        _json(value="1.0"),
        _json(value=""),
        _json(value="9" * 79),
        _json(value=str(2**256)),
        _json(value=1.5),
        _json(value=None),
        _json(value=True),
        _json(validBefore=[1]),
        _json(nonce="0x" + "00" * 31),
        _json(nonce="00" * 32),
        _json(nonce=NONCE),
        _json(**{"from": 5}),
        _json(extra="x"),
        {k: v for k, v in _json().items() if k != "nonce"},
        [],
        "authorization",
    ],
)
def test_malformed_json_refused(data: object) -> None:
    with pytest.raises(InvalidAuthorization):
        Authorization.from_json(data)  # type: ignore[arg-type]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["from", "to", "value", "validAfter", "validBefore", "nonce", "x"]),
        _json_values,
    )
)
def test_from_json_fuzz_raises_only_typed_errors(data: dict[str, object]) -> None:
    with contextlib.suppress(PaywireError):
        Authorization.from_json(data)


def test_token_refuses_bad_input_before_the_chain(chain: LocalChain, token: Token) -> None:
    key = PrivateKey.generate()
    block = chain.block_number()
    for call in (
        lambda: token.balance_of("nope"),
        lambda: token.mint(chain.operator, GOOD, 2**256),
        lambda: token.mint(chain.operator, GOOD, -1),
        lambda: token.transfer(key, "0x1234", 1),
        lambda: token.approve(key, GOOD, True),
        lambda: token.authorization_state(GOOD, bytes(31)),
        lambda: token.sign_cancel(key, b"short"),
        lambda: token.faucet(GOOD, 10**30),
        lambda: token.faucet(GOOD, 0),
        lambda: token.authorization(GOOD, GOOD, 1, valid_for_s=0),
        lambda: token.authorization(GOOD, GOOD, 1, valid_for_s=10**9),
    ):
        with pytest.raises(InvalidChainInput):
            call()
    assert chain.block_number() == block  # nothing was sent


def test_huge_values_are_refused_by_the_contract(chain: LocalChain, token: Token) -> None:
    payer = PrivateKey.generate()
    token.mint(chain.operator, payer.address, 5)
    authorization = token.authorization(payer.address, GOOD, 2**256 - 1)
    simulation = token.simulate_transfer_with_authorization(
        authorization, token.sign_transfer(payer, authorization)
    )
    assert simulation.code == "invalid_exact_evm_insufficient_balance"


def test_no_token_at_an_empty_address(chain: LocalChain) -> None:
    with pytest.raises(ChainError, match="no contract"):
        Token(chain, PrivateKey.generate().address)
    with pytest.raises(InvalidChainInput, match="token address"):
        Token(chain, "0x12")


def test_chain_input_bounds(chain: LocalChain) -> None:
    for bad in (0, -1, 1001, True, "1", None):
        with pytest.raises(ChainError, match="confirmations"):
            check_confirmations(bad)
    for bad_hash in ("0x12", "12" * 32, "0x" + "zz" * 32, 5):
        with pytest.raises(ChainError, match="transaction hash"):
            chain.receipt(bad_hash)  # type: ignore[arg-type]
    assert chain.receipt("0x" + "ab" * 32) is None
    with pytest.raises(ChainError):
        chain.mine(0)
    with pytest.raises(ChainError):
        chain.advance_time(-5)
    with pytest.raises(ChainError, match="gas"):
        chain.send(chain.operator, GOOD, b"", gas=10**9)
    for bad_value in (-1, 2**256, True):
        with pytest.raises(InvalidChainInput, match="value"):
            chain.send(chain.operator, GOOD, b"", value=bad_value)
    with pytest.raises(InvalidChainInput, match="bytes"):
        chain.send(chain.operator, GOOD, "0x00")  # type: ignore[arg-type]
    for bad_text in ("", "x" * 65, "tab\there", 5):
        with pytest.raises(ChainError, match="printable"):
            check_token_text(bad_text, "name", 64)
