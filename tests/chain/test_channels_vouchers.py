"""Vouchers: paywire's fast EIP-712 path, eth_account and the contract agree byte for byte;
a voucher binds its channel, its contract and its chain; the payee's off-chain check
refuses what the contract would (and what only the payee knows: the charged total)."""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from paywire.chain import (
    BadVoucherSignature,
    ChannelClosed,
    ChannelContract,
    LocalChain,
    Token,
    VoucherBelowCharged,
    VoucherNotAboveClaimed,
    VoucherPastDeposit,
    voucher_domain,
)
from paywire.chain.channels import (
    SELECTORS,
    VOUCHER,
    Channel,
    InvalidChannelInput,
    Voucher,
    check_voucher,
    compute_channel_id,
)
from paywire.chain.compile import PAYWIRE_CHANNELS_SOURCE, contract_source, paywire_channels
from paywire.crypto import PrivateKey, keccak256

UINT128_MAX = 2**128 - 1


@pytest.fixture(scope="module")
def channels(chain: LocalChain, token: Token) -> ChannelContract:
    return ChannelContract.deploy(chain, token, challenge_period_s=60)


@pytest.fixture(scope="module")
def opened(
    chain: LocalChain, token: Token, channels: ChannelContract
) -> tuple[PrivateKey, PrivateKey, bytes]:
    """(payer, payee, channel id) of one channel with a deposit of 1000."""
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    for key in (payer, payee):
        chain.fund(key.address, 10**18)
    token.mint(chain.operator, payer.address, 10**9)
    return payer, payee, channels.open(payer, payee.address, 1_000).channel_id


def _eth_account_sign(key: PrivateKey, voucher: Voucher) -> bytes:
    signed = Account.sign_typed_data(key.to_hex(), full_message=voucher.typed_data())
    return bytes(signed.signature)


def _eth_account_digest(voucher: Voucher) -> bytes:
    signable = encode_typed_data(full_message=voucher.typed_data())
    return keccak256(b"\x19" + signable.version + signable.header + signable.body)


def test_the_contract_is_what_paywire_expects(chain: LocalChain, channels: ChannelContract) -> None:
    compiled = paywire_channels()
    signatures = {
        f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
        for item in compiled.abi
        if item.get("type") == "function"
    }
    assert {keccak256(s.encode())[:4] for s in signatures} == set(SELECTORS.values())
    assert channels.domain_separator() == channels.domain.separator
    assert channels.domain == voucher_domain(chain.chain_id, channels.address)
    typehash = chain.call(channels.address, SELECTORS["VOUCHER_TYPEHASH"])
    assert (
        typehash
        == VOUCHER.type_hash
        == keccak256(b"Voucher(bytes32 channelId,uint128 maxClaimableAmount)")
    )
    assert channels.challenge_period_s == 60
    assert "ChannelContract(USDC at" in repr(channels)


def test_the_channel_contract_runs_on_shanghai() -> None:
    """No opcode newer than Shanghai (ganache's EVM), as the stablecoin; and its events."""
    import vyper  # type: ignore[import-untyped]

    source = contract_source(PAYWIRE_CHANNELS_SOURCE)
    assert "# pragma evm-version shanghai" in source
    opcodes = vyper.compile_code(source, output_formats=["opcodes"])["opcodes"].split()
    assert not {"TLOAD", "TSTORE", "MCOPY", "BLOBHASH", "BLOBBASEFEE"} & set(opcodes)
    assert "PUSH0" in opcodes
    events = {e["name"] for e in paywire_channels().abi if e.get("type") == "event"}
    assert events == {
        "ChannelOpened",
        "ChannelToppedUp",
        "Claimed",
        "WithdrawalRequested",
        "ChannelClosed",
    }


def test_channel_id_is_the_contracts(
    chain: LocalChain, channels: ChannelContract, opened: tuple[PrivateKey, PrivateKey, bytes]
) -> None:
    payer, payee, _ = opened
    salt = bytes(range(32))
    ours = compute_channel_id(
        chain.chain_id, channels.address, channels.token.address, payer.address, payee.address, salt
    )
    data = SELECTORS["channel_id"] + bytes(12) + bytes.fromhex(payer.address[2:])
    data += bytes(12) + bytes.fromhex(payee.address[2:]) + salt
    assert (
        chain.call(channels.address, data)
        == ours
        == channels.channel_id(payer.address, payee.address, salt)
    )


def test_digest_and_signature_match_eth_account_and_the_contract(
    channels: ChannelContract, opened: tuple[PrivateKey, PrivateKey, bytes]
) -> None:
    payer, payee, cid = opened
    voucher = channels.voucher(cid, 123)
    assert (
        voucher.digest()
        == _eth_account_digest(voucher)
        == channels.voucher_digest_on_chain(cid, 123)
    )
    ours = voucher.sign(payer)
    # Both sign deterministically (RFC 6979): the very same bytes.
    assert ours.signature == _eth_account_sign(payer, voucher)
    assert ours.recover() == payer.address
    ours.verify(payer.address)
    # The contract takes a voucher signed by eth_account (a wallet) too.
    theirs = dataclasses.replace(voucher, signature=_eth_account_sign(payer, voucher))
    assert channels.claim(payee, theirs).total == 123


def test_a_voucher_binds_its_contract_and_chain(
    chain: LocalChain,
    token: Token,
    channels: ChannelContract,
    opened: tuple[PrivateKey, PrivateKey, bytes],
) -> None:
    payer, payee, cid = opened
    twin = ChannelContract.deploy(chain, token, challenge_period_s=60)
    for domain in (twin.domain, voucher_domain(chain.chain_id + 1, channels.address)):
        foreign = Voucher(domain, cid, 500).sign(payer)
        assert foreign.recover() == payer.address  # a good signature, for elsewhere
        with pytest.raises(BadVoucherSignature, match="another contract or chain"):
            channels.claim(payee, foreign)
        # Forced through: the contract recovers someone else.
        moved = dataclasses.replace(channels.voucher(cid, 500), signature=foreign.signature)
        with pytest.raises(BadVoucherSignature, match="not the payer's"):
            channels.simulate_claim(payee.address, moved)
        with pytest.raises(BadVoucherSignature):
            moved.verify(payer.address)


def test_off_chain_check_refuses_what_the_contract_would(
    channels: ChannelContract, opened: tuple[PrivateKey, PrivateKey, bytes]
) -> None:
    payer, _, cid = opened
    state = channels.channel(cid)
    channel = dataclasses.replace(state, claimed=200, deposit=1_000, closed=False)
    ok = channels.sign_voucher(payer, cid, 400)
    assert channels.check_voucher(ok, channel, charged=400) is channel
    assert channels.check_voucher(ok).channel_id == cid  # reads the channel itself
    cases: list[tuple[Voucher, type[Exception], int]] = [
        (ok, VoucherBelowCharged, 401),
        (channels.sign_voucher(payer, cid, 1_001), VoucherPastDeposit, 0),
        (channels.sign_voucher(payer, cid, 199), VoucherNotAboveClaimed, 0),
        (channels.sign_voucher(PrivateKey.generate(), cid, 400), BadVoucherSignature, 0),
        (channels.sign_voucher(payer, bytes(32), 400), BadVoucherSignature, 0),
        (channels.voucher(cid, 400), BadVoucherSignature, 0),
    ]
    for voucher, error, charged in cases:
        with pytest.raises(error):
            check_voucher(voucher, channel, channels.domain, charged=charged)
    with pytest.raises(ChannelClosed):
        check_voucher(ok, dataclasses.replace(channel, closed=True), channels.domain)
    with pytest.raises(BadVoucherSignature, match="another channel contract"):
        check_voucher(ok, channel, voucher_domain(1, channels.address))
    with pytest.raises(InvalidChannelInput):
        check_voucher("voucher", channel, channels.domain)  # type: ignore[arg-type]


def test_json_round_trip(
    channels: ChannelContract, opened: tuple[PrivateKey, PrivateKey, bytes]
) -> None:
    payer, _, cid = opened
    voucher = channels.sign_voucher(payer, cid, UINT128_MAX)
    data = voucher.to_json()
    assert data["maxClaimableAmount"] == str(UINT128_MAX)
    assert data["channelId"] == "0x" + cid.hex()
    assert Voucher.from_json(data, channels.domain) == voucher
    five = Voucher.from_json({**data, "maxClaimableAmount": 5}, channels.domain)
    assert five.max_claimable_amount == 5
    unsigned = channels.voucher(cid, 1)
    assert "signature" not in unsigned.to_json()
    assert Voucher.from_json(unsigned.to_json(), channels.domain) == unsigned


@pytest.mark.parametrize(
    "change",
    [
        {"channelId": "0x12"},
        {"channelId": 5},
        {"maxClaimableAmount": "-1"},
        {"maxClaimableAmount": "1.5"},
        {"maxClaimableAmount": "1" * 40},
        {"maxClaimableAmount": str(2**128)},
        {"maxClaimableAmount": True},
        {"cumulative": "1"},
        {"signature": "0x1234"},
        {"signature": 7},
        {"extra": "x"},
    ],
)
def test_hostile_json_refused(channels: ChannelContract, change: dict[str, object]) -> None:
    data: dict[str, object] = {"channelId": "0x" + "11" * 32, "maxClaimableAmount": "1", **change}
    with pytest.raises(InvalidChannelInput):
        Voucher.from_json(data, channels.domain)


def test_hostile_fields_refused(channels: ChannelContract) -> None:
    for channel_id, most, signature in [
        (b"\x00" * 31, 1, None),
        ("00" * 32, 1, None),
        (bytes(32), 2**128, None),
        (bytes(32), 1, b"\x00" * 64),
    ]:
        with pytest.raises(InvalidChannelInput):
            Voucher(channels.domain, channel_id, most, signature)  # type: ignore[arg-type]
    with pytest.raises(InvalidChannelInput):
        Voucher("domain", bytes(32), 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidChannelInput):
        compute_channel_id(
            1, channels.address, channels.address, channels.address, channels.address, b""
        )
    state = Channel(bytes(32), channels.address, channels.address, 10, 4, 0, False)
    assert state.remaining == 6 and not state.withdrawal_requested


@settings(max_examples=60, deadline=None)
@given(
    channel_id=st.binary(min_size=32, max_size=32),
    most=st.integers(min_value=0, max_value=UINT128_MAX),
    chain_id=st.integers(min_value=1, max_value=2**64),
    contract=st.binary(min_size=20, max_size=20),
)
def test_fast_path_matches_eth_account_on_any_fields(
    channel_id: bytes, most: int, chain_id: int, contract: bytes
) -> None:
    key = PrivateKey.from_bytes(bytes(31) + b"\x09")
    voucher = Voucher(voucher_domain(chain_id, "0x" + contract.hex()), channel_id, most)
    assert voucher.digest() == _eth_account_digest(voucher)
    assert voucher.sign(key).signature == _eth_account_sign(key, voucher)
