"""EIP-3009 signatures: paywire's fast EIP-712 path and eth_account agree byte for byte, and
the contract accepts both."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from paywire.chain import (
    Authorization,
    AuthorizationKind,
    InvalidAuthorization,
    LocalChain,
    Token,
    recover_authorizer,
    sign_authorization,
    sign_cancel,
    split_signature,
)
from paywire.chain.eip3009 import CANCEL_AUTHORIZATION
from paywire.crypto import PrivateKey, TypedMessage


def _eth_account_sign(key: PrivateKey, full_message: dict[str, object]) -> bytes:
    signed = Account.sign_typed_data(key.to_hex(), full_message=full_message)
    return bytes(signed.signature)


@pytest.mark.parametrize("kind", list(AuthorizationKind))
def test_fast_path_signature_equals_eth_account(token: Token, kind: AuthorizationKind) -> None:
    payer = PrivateKey.generate()
    authorization = token.authorization(payer.address, PrivateKey.generate().address, 10**6)
    ours = token.sign(payer, authorization, kind)
    theirs = _eth_account_sign(payer, token.typed_data(authorization, kind))
    # Both sign deterministically (RFC 6979), so the bytes match, not only the signer.
    assert ours == theirs
    digest = encode_typed_data(full_message=token.typed_data(authorization, kind))
    assert Account.recover_message(digest, signature=ours) == payer.address
    assert recover_authorizer(token.domain, authorization, theirs, kind) == payer.address


def test_cancel_signature_equals_eth_account(token: Token) -> None:
    key = PrivateKey.generate()
    nonce = bytes(range(32))
    message = TypedMessage(token.domain, CANCEL_AUTHORIZATION).full_message(
        {"authorizer": key.address, "nonce": "0x" + nonce.hex()}
    )
    assert sign_cancel(token.domain, key, nonce) == _eth_account_sign(key, message)
    assert token.sign_cancel(key, nonce) == _eth_account_sign(key, message)


def test_contract_accepts_both_signers(chain: LocalChain, token: Token) -> None:
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    token.mint(chain.operator, payer.address, 10)
    fast = token.authorization(payer.address, payee.address, 3)
    token.transfer_with_authorization(fast, token.sign_transfer(payer, fast))
    slow = token.authorization(payer.address, payee.address, 4)
    signature = _eth_account_sign(payer, token.typed_data(slow))
    assert token.simulate_transfer_with_authorization(slow, signature).ok
    # The signature as x402 carries it: 0x-hex text.
    token.transfer_with_authorization(slow, "0x" + signature.hex())
    assert token.balance_of(payee.address) == 7


def test_json_round_trip_is_the_x402_form(token: Token) -> None:
    payer = PrivateKey.generate()
    authorization = token.authorization(payer.address, payer.address, 2**200)
    data = authorization.to_json()
    assert data["value"] == str(2**200) and data["nonce"].startswith("0x")
    assert Authorization.from_json(data) == authorization
    lower = dict(data, **{"from": data["from"].lower()})
    assert Authorization.from_json(lower).from_ == payer.address


def test_signing_for_someone_else_refused(token: Token) -> None:
    payer, other = PrivateKey.generate(), PrivateKey.generate()
    authorization = token.authorization(payer.address, other.address, 1)
    with pytest.raises(InvalidAuthorization, match="cannot sign for"):
        token.sign_transfer(other, authorization)
    with pytest.raises(InvalidAuthorization, match="cannot sign for"):
        sign_authorization(token.domain, other, authorization)


def test_split_signature() -> None:
    signature = bytes(range(64)) + bytes([28])
    assert split_signature(signature) == (28, bytes(range(32)), bytes(range(32, 64)))
    assert split_signature("0x" + signature.hex())[0] == 28
    assert split_signature(signature[:64] + b"\x00")[0] == 27
    with pytest.raises(InvalidAuthorization):
        split_signature(signature[:64])
    with pytest.raises(Exception, match="130 hex digits"):
        split_signature("0x1234")


_uint = st.integers(min_value=0, max_value=2**256 - 1)


@settings(max_examples=40, deadline=None)
@given(
    value=_uint, valid_after=_uint, valid_before=_uint, nonce=st.binary(min_size=32, max_size=32)
)
def test_fast_path_matches_eth_account_on_any_fields(
    token: Token, value: int, valid_after: int, valid_before: int, nonce: bytes
) -> None:
    key = PrivateKey.from_bytes(bytes(31) + b"\x07")
    authorization = Authorization(
        key.address, token.address, value, valid_after, valid_before, nonce
    )
    theirs = _eth_account_sign(key, token.typed_data(authorization))
    assert token.sign_transfer(key, authorization) == theirs
