"""The Paywire USD contract on a real EVM: ERC-20, mint, EIP-712 domain, EIP-3009."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from paywire.chain import (
    Authorization,
    AuthorizationKind,
    LocalChain,
    Token,
    TransactionReverted,
    new_nonce,
    token_domain,
)
from paywire.chain.eip3009 import sign_authorization
from paywire.chain.token import (
    AUTHORIZATION_CANCELED_TOPIC,
    AUTHORIZATION_USED_TOPIC,
    TRANSFER_TOPIC,
)
from paywire.crypto import PrivateKey, keccak256
from paywire.crypto.keys import SECP256K1_N

UNLIMITED = 2**256 - 1


def _topic(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


def _reverts(reason: str) -> pytest.RaisesExc[TransactionReverted]:
    return pytest.raises(TransactionReverted, match=reason)


# ----- metadata and the EIP-712 domain --------------------------------------------------------


def test_metadata(chain: LocalChain, token: Token) -> None:
    assert (token.name, token.symbol, token.version, token.decimals) == (
        "Paywire USD",
        "USDC",
        "2",
        6,
    )
    assert token.owner() == chain.operator.address
    assert token.extra == {"name": "Paywire USD", "version": "2"}


def test_domain_separator_is_eip712_of_the_runtime_chain(chain: LocalChain, token: Token) -> None:
    domain_type = keccak256(
        b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    expected = keccak256(
        domain_type
        + keccak256(b"Paywire USD")
        + keccak256(b"2")
        + chain.chain_id.to_bytes(32, "big")
        + _topic(token.address)
    )
    assert token.domain_separator() == expected == token.domain.separator


# ----- mint and ERC-20 ----------------------------------------------------------------------


def test_mint_only_by_owner(
    chain: LocalChain, token: Token, funded: Callable[[], PrivateKey]
) -> None:
    stranger = funded()
    supply = token.total_supply()
    with _reverts("caller is not the owner"):
        token.mint(stranger, stranger.address, 1)
    receipt = token.mint(chain.operator, stranger.address, 5_000_000)
    assert token.balance_of(stranger.address) == 5_000_000
    assert token.total_supply() == supply + 5_000_000
    (log,) = receipt.logs
    assert log.topics == (TRANSFER_TOPIC, bytes(32), _topic(stranger.address))
    assert int.from_bytes(log.data, "big") == 5_000_000


def test_mint_past_the_supply_bound_refused(chain: LocalChain, token: Token) -> None:
    with _reverts("total supply bound"):
        token.mint(chain.operator, PrivateKey.generate().address, UNLIMITED)


def test_transfer(chain: LocalChain, token: Token, funded: Callable[[], PrivateKey]) -> None:
    alice, bob = funded(), PrivateKey.generate()
    token.mint(chain.operator, alice.address, 100)
    receipt = token.transfer(alice, bob.address, 40)
    assert (token.balance_of(alice.address), token.balance_of(bob.address)) == (60, 40)
    assert token.check_transfer(receipt, alice.address, bob.address, 40)
    with _reverts("transfer amount exceeds balance"):
        token.transfer(alice, bob.address, 61)
    with _reverts("transfer to the zero address"):
        token.transfer(alice, "0x" + "00" * 20, 1)


def test_approve_and_transfer_from(
    chain: LocalChain, token: Token, funded: Callable[[], PrivateKey]
) -> None:
    owner, spender, payee = funded(), funded(), PrivateKey.generate()
    token.mint(chain.operator, owner.address, 1_000)
    receipt = token.approve(owner, spender.address, 300)
    (log,) = receipt.logs
    assert log.topics[0] == keccak256(b"Approval(address,address,uint256)")
    assert token.allowance(owner.address, spender.address) == 300
    token.transfer_from(spender, owner.address, payee.address, 200)
    assert token.allowance(owner.address, spender.address) == 100
    assert token.balance_of(payee.address) == 200
    with _reverts("transfer amount exceeds allowance"):
        token.transfer_from(spender, owner.address, payee.address, 101)
    # The largest allowance is unlimited and is not spent down.
    token.approve(owner, spender.address, UNLIMITED)
    token.transfer_from(spender, owner.address, payee.address, 500)
    assert token.allowance(owner.address, spender.address) == UNLIMITED
    with _reverts("approve to the zero address"):
        token.approve(owner, "0x" + "00" * 20, 1)


# ----- EIP-3009 --------------------------------------------------------------------------------


def _funded_payer(chain: LocalChain, token: Token, amount: int = 10_000_000) -> PrivateKey:
    payer = PrivateKey.generate()
    token.mint(chain.operator, payer.address, amount)
    return payer


def test_transfer_with_authorization(chain: LocalChain, token: Token) -> None:
    payer, payee = _funded_payer(chain, token), PrivateKey.generate()
    authorization = token.authorization(payer.address, payee.address, 1_250_000)
    signature = token.sign_transfer(payer, authorization)
    assert token.simulate_transfer_with_authorization(authorization, signature).ok
    receipt = token.transfer_with_authorization(authorization, signature)
    assert receipt.ok and receipt.gas_used < 100_000
    assert token.balance_of(payee.address) == 1_250_000
    assert token.balance_of(payer.address) == 8_750_000
    assert token.authorization_state(payer.address, authorization.nonce)
    used = [log for log in receipt.logs if log.topics[0] == AUTHORIZATION_USED_TOPIC]
    assert used[0].topics[1:] == (_topic(payer.address), authorization.nonce)
    assert token.authorization_used_log(payer.address, authorization.nonce) == used[0]


def test_replayed_nonce_refused(chain: LocalChain, token: Token) -> None:
    payer, payee = _funded_payer(chain, token), PrivateKey.generate()
    authorization = token.authorization(payer.address, payee.address, 1)
    signature = token.sign_transfer(payer, authorization)
    token.transfer_with_authorization(authorization, signature)
    simulation = token.simulate_transfer_with_authorization(authorization, signature)
    assert not simulation.ok
    assert simulation.reason == "authorization is used or canceled"
    assert simulation.code == "invalid_exact_evm_nonce_already_used"
    with _reverts("authorization is used or canceled"):
        token.transfer_with_authorization(authorization, signature)
    # Another authorization with the same nonce (another value) is refused too.
    again = token.authorization(payer.address, payee.address, 2, nonce=authorization.nonce)
    with _reverts("authorization is used or canceled"):
        token.transfer_with_authorization(again, token.sign_transfer(payer, again))
    assert token.balance_of(payee.address) == 1


def test_expired_and_not_yet_valid_refused(chain: LocalChain, token: Token) -> None:
    payer, payee = _funded_payer(chain, token), PrivateKey.generate()
    now = chain.timestamp()
    expired = token.authorization(payer.address, payee.address, 1, valid_before=now)
    simulation = token.simulate_transfer_with_authorization(
        expired, token.sign_transfer(payer, expired)
    )
    assert (simulation.reason, simulation.code) == (
        "authorization is expired",
        "invalid_exact_evm_payload_authorization_valid_before",
    )
    early = token.authorization(
        payer.address, payee.address, 1, valid_after=now + 3600, valid_before=now + 7200
    )
    simulation = token.simulate_transfer_with_authorization(
        early, token.sign_transfer(payer, early)
    )
    assert simulation.code == "invalid_exact_evm_payload_authorization_valid_after"
    with _reverts("authorization is not yet valid"):
        token.transfer_with_authorization(early, token.sign_transfer(payer, early))
    assert token.balance_of(payee.address) == 0


def test_time_window_is_strict_at_both_ends(fresh_chain: LocalChain) -> None:
    token = fresh_chain.deploy_token(fresh_chain.operator.address)
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    token.mint(fresh_chain.operator, payer.address, 100)
    # Far ahead of the wall clock, the next block's timestamp is the latest one + 1.
    latest = fresh_chain.advance_time(10_000)
    at = latest + 1

    def attempt(valid_after: int, valid_before: int) -> None:
        authorization = token.authorization(
            payer.address, payee.address, 1, valid_after=valid_after, valid_before=valid_before
        )
        token.transfer_with_authorization(authorization, token.sign_transfer(payer, authorization))

    with _reverts("authorization is expired"):
        attempt(0, at)
    assert fresh_chain.timestamp() == latest  # the refused one was never mined
    with _reverts("authorization is not yet valid"):
        attempt(at, at + 100)
    attempt(at - 1, at + 1)
    assert token.balance_of(payee.address) == 1


def test_authorization_becomes_valid_when_time_passes(fresh_chain: LocalChain) -> None:
    token = fresh_chain.deploy_token(fresh_chain.operator.address)
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    token.mint(fresh_chain.operator, payer.address, 100)
    now = int(time.time())
    authorization = token.authorization(
        payer.address, payee.address, 7, valid_after=now + 600, valid_before=now + 1200
    )
    signature = token.sign_transfer(payer, authorization)
    assert not token.simulate_transfer_with_authorization(authorization, signature).ok
    fresh_chain.advance_time(700)
    assert token.simulate_transfer_with_authorization(authorization, signature).ok
    token.transfer_with_authorization(authorization, signature)
    fresh_chain.advance_time(1000)  # and once past validBefore a fresh one is refused
    late = token.authorization(
        payer.address, payee.address, 1, valid_after=now, valid_before=now + 1200
    )
    with _reverts("authorization is expired"):
        token.transfer_with_authorization(late, token.sign_transfer(payer, late))
    assert token.balance_of(payee.address) == 7


def test_wrong_signer_refused(chain: LocalChain, token: Token) -> None:
    payer, payee, thief = _funded_payer(chain, token), PrivateKey.generate(), PrivateKey.generate()
    authorization = token.authorization(payer.address, payee.address, 5)
    forged = token._messages[AuthorizationKind.TRANSFER].sign(authorization.message(), thief)
    simulation = token.simulate_transfer_with_authorization(authorization, forged)
    assert (simulation.reason, simulation.code) == (
        "invalid signature",
        "invalid_exact_evm_payload_signature",
    )
    # A valid signature over other fields (the value) is a wrong signer for these fields.
    signed = token.sign_transfer(payer, authorization)
    inflated = Authorization(
        payer.address, payee.address, 6, 0, authorization.valid_before, authorization.nonce
    )
    with _reverts("invalid signature"):
        token.transfer_with_authorization(inflated, signed)
    assert token.balance_of(payee.address) == 0


def test_signature_for_another_chain_or_contract_refused(chain: LocalChain, token: Token) -> None:
    payer, payee = _funded_payer(chain, token), PrivateKey.generate()
    authorization = token.authorization(payer.address, payee.address, 5)
    other_chain = token_domain(token.name, token.version, chain.chain_id + 1, token.address)
    other_contract = chain.deploy_token(chain.operator.address)
    other_version = token_domain(token.name, "1", chain.chain_id, token.address)
    for domain in (other_chain, other_contract.domain, other_version):
        signature = sign_authorization(domain, payer, authorization)
        simulation = token.simulate_transfer_with_authorization(authorization, signature)
        assert simulation.reason == "invalid signature"
    # The same authorization, signed for the right domain, goes through.
    token.transfer_with_authorization(authorization, token.sign_transfer(payer, authorization))


def test_malleable_and_malformed_signatures_refused(chain: LocalChain, token: Token) -> None:
    payer, payee = _funded_payer(chain, token), PrivateKey.generate()
    authorization = token.authorization(payer.address, payee.address, 5)
    signature = token.sign_transfer(payer, authorization)
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    # (r, n - s, v flipped) recovers the same key: the high-s twin EIP-2 forbids.
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    simulation = token.simulate_transfer_with_authorization(authorization, twin)
    assert simulation.reason == "invalid signature 's' value"
    assert simulation.code == "invalid_exact_evm_payload_signature"
    bad_v = signature[:64] + bytes([29])
    assert (
        token.simulate_transfer_with_authorization(authorization, bad_v).reason
        == "invalid signature 'v' value"
    )
    # All zeros recovers no key (ecrecover answers the zero address).
    zeros = bytes(64) + bytes([27])
    assert (
        token.simulate_transfer_with_authorization(authorization, zeros).reason
        == "invalid signature"
    )
    # And a "payer" of the zero address cannot be impersonated by an unrecoverable signature.
    nobody = Authorization("0x" + "00" * 20, payee.address, 0, 0, 2**40, new_nonce())
    assert not token.simulate_transfer_with_authorization(nobody, zeros).ok
    # v as the recovery id (0/1) is accepted: the wrapper turns it into 27/28.
    recid = signature[:64] + bytes([v - 27])
    assert token.simulate_transfer_with_authorization(authorization, recid).ok


def test_insufficient_balance_refused(chain: LocalChain, token: Token) -> None:
    payer, payee = _funded_payer(chain, token, 10), PrivateKey.generate()
    authorization = token.authorization(payer.address, payee.address, 11)
    simulation = token.simulate_transfer_with_authorization(
        authorization, token.sign_transfer(payer, authorization)
    )
    assert simulation.code == "invalid_exact_evm_insufficient_balance"


def test_receive_with_authorization_only_by_the_payee(
    chain: LocalChain, token: Token, funded: Callable[[], PrivateKey]
) -> None:
    payer, payee, front_runner = _funded_payer(chain, token), funded(), funded()
    authorization = token.authorization(payer.address, payee.address, 3)
    signature = token.sign_receive(payer, authorization)
    with pytest.raises(Exception, match="only the payee"):
        token.receive_with_authorization(authorization, signature, key=front_runner)
    # Straight to the contract, bypassing the wrapper's check: the contract refuses too.
    data = token._authorization_call("receiveWithAuthorization", authorization, signature)
    with _reverts("caller must be the payee"):
        chain.transact(front_runner, token.address, data)
    # A TransferWithAuthorization signature is not a ReceiveWithAuthorization one.
    wrong_kind = token.sign_transfer(payer, authorization)
    with _reverts("invalid signature"):
        token.receive_with_authorization(authorization, wrong_kind, key=payee)
    # Nor the other way round.
    assert not token.simulate_transfer_with_authorization(authorization, signature).ok
    receipt = token.receive_with_authorization(authorization, signature, key=payee)
    assert token.check_transfer(receipt, payer.address, payee.address, 3)
    assert token.balance_of(payee.address) == 3


def test_cancel_authorization(chain: LocalChain, token: Token) -> None:
    payer, payee = _funded_payer(chain, token), PrivateKey.generate()
    authorization = token.authorization(payer.address, payee.address, 4)
    signature = token.sign_transfer(payer, authorization)
    # Only the authorizer's signature cancels.
    stranger = PrivateKey.generate()
    with _reverts("invalid signature"):
        token.cancel_authorization(
            payer.address, authorization.nonce, token.sign_cancel(stranger, authorization.nonce)
        )
    receipt = token.cancel_authorization(
        payer.address, authorization.nonce, token.sign_cancel(payer, authorization.nonce)
    )
    (log,) = receipt.logs
    assert log.topics == (
        AUTHORIZATION_CANCELED_TOPIC,
        _topic(payer.address),
        authorization.nonce,
    )
    assert token.authorization_state(payer.address, authorization.nonce)
    assert token.authorization_used_log(payer.address, authorization.nonce) is None
    with _reverts("authorization is used or canceled"):
        token.transfer_with_authorization(authorization, signature)
    with _reverts("authorization is used or canceled"):
        token.cancel_authorization(
            payer.address, authorization.nonce, token.sign_cancel(payer, authorization.nonce)
        )
    assert token.balance_of(payee.address) == 0
