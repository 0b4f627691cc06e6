"""Payment channels on a real EVM (the compiled Vyper contract on py-evm): open, claim,
claim again, claim many, close, withdraw after the challenge period, the race between a
withdrawal and a claim, and every refusal with its typed error. Token balances are checked
exactly, and payer + payee + contract always hold what they held before."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from paywire.chain import (
    BadVoucherSignature,
    ChallengePeriodNotOver,
    ChannelClosed,
    ChannelContract,
    LocalChain,
    NotPayee,
    NotPayer,
    Token,
    UnknownChannel,
    VoucherNotAboveClaimed,
    VoucherPastDeposit,
)
from paywire.chain.channels import (
    CLAIMED_TOPIC,
    GAS_BOUNDS,
    ChannelExists,
    ChannelFundingFailed,
    ChannelRefused,
    ClaimExceedsVoucher,
    InvalidChannelInput,
    Voucher,
    WithdrawalAlreadyRequested,
    WithdrawalNotRequested,
)
from paywire.crypto import PrivateKey

PERIOD_S = 600
"""The challenge period of the module's contract."""

FUNDS = 10**12
GAS_WEI = 10**18
UINT256_MAX = 2**256 - 1


@pytest.fixture(scope="module")
def channels(chain: LocalChain, token: Token) -> ChannelContract:
    return ChannelContract.deploy(chain, token, challenge_period_s=PERIOD_S)


@dataclasses.dataclass(frozen=True)
class Parties:
    payer: PrivateKey
    payee: PrivateKey


def _party(chain: LocalChain, token: Token, channels: ChannelContract) -> PrivateKey:
    key = PrivateKey.generate()
    chain.fund(key.address, GAS_WEI)
    token.mint(chain.operator, key.address, FUNDS)
    token.approve(key, channels.address, UINT256_MAX)
    return key


@pytest.fixture
def parties(chain: LocalChain, token: Token, channels: ChannelContract) -> Parties:
    payee = PrivateKey.generate()
    chain.fund(payee.address, GAS_WEI)
    return Parties(_party(chain, token, channels), payee)


Books = Callable[[], tuple[int, int, int]]


@pytest.fixture
def books(token: Token, channels: ChannelContract, parties: Parties) -> Books:
    """(payer, payee, contract) token balances now."""

    def read() -> tuple[int, int, int]:
        return (
            token.balance_of(parties.payer.address),
            token.balance_of(parties.payee.address),
            channels.balance(),
        )

    return read


def _moved(before: tuple[int, int, int], after: tuple[int, int, int]) -> tuple[int, int, int]:
    assert sum(after) == sum(before), "tokens were created or lost"
    return (after[0] - before[0], after[1] - before[1], after[2] - before[2])


# ----- flows ------------------------------------------------------------------------------


def test_open_claim_claim_again_close(
    channels: ChannelContract, parties: Parties, books: Books
) -> None:
    payer, payee = parties.payer, parties.payee
    start = books()
    opened = channels.open(payer, payee.address, 1_000)
    assert _moved(start, books()) == (-1_000, 0, 1_000)
    channel = channels.channel(opened.channel_id)
    assert (channel.payer, channel.payee, channel.deposit, channel.claimed) == (
        payer.address,
        payee.address,
        1_000,
        0,
    )
    assert not channel.closed and not channel.withdrawal_requested and channel.remaining == 1_000

    first = channels.sign_voucher(payer, opened.channel_id, 300)
    assert channels.simulate_claim(payee.address, first) == 300
    result = channels.claim(payee, first)
    assert result.total == 300
    (log,) = result.claims
    assert (log.channel_id, log.payee, log.amount, log.claimed) == (
        opened.channel_id,
        payee.address,
        300,
        300,
    )
    assert _moved(start, books()) == (-1_000, 300, 700)

    # The next voucher continues from the charged total: only the difference is paid.
    result = channels.claim(payee, channels.sign_voucher(payer, opened.channel_id, 450))
    assert (result.total, result.claims[0].claimed) == (150, 450)
    assert channels.channel(opened.channel_id).claimed == 450

    closed = channels.close(
        payee, opened.channel_id, channels.sign_voucher(payer, opened.channel_id, 500)
    )
    assert (closed.claimed, closed.refunded, closed.cooperative) == (500, 500, True)
    assert _moved(start, books()) == (-500, 500, 0)
    assert channels.channel(opened.channel_id).closed
    assert channels.channel(opened.channel_id).remaining == 0


def test_the_payee_claims_what_it_charged_on_a_larger_voucher(
    channels: ChannelContract, parties: Parties, books: Books
) -> None:
    """x402 batch-settlement's claim: the voucher is a ceiling; the payee claims the total
    it actually charged (at most the ceiling), and the next claim continues from it."""
    payer, payee = parties.payer, parties.payee
    start = books()
    cid = channels.open(payer, payee.address, 1_000).channel_id
    ceiling = channels.sign_voucher(payer, cid, 400)
    assert channels.simulate_claim(payee.address, ceiling, [250]) == 250
    result = channels.claim(payee, ceiling, 250)
    assert (result.total, result.claims[0].claimed) == (250, 250)
    # The same voucher again, for more of what it allows.
    assert channels.claim(payee, ceiling, 300).total == 50
    with pytest.raises(ClaimExceedsVoucher) as over:
        channels.claim(payee, ceiling, 401)
    assert over.value.reason == "" and over.value.code == "claim_exceeds_voucher"
    with pytest.raises(VoucherNotAboveClaimed):
        channels.claim(payee, ceiling, 300)
    # Forced past the Python check, the contract refuses the same way.
    data = channels._data(
        "claim",
        ["bytes32", "uint128", "uint128", "bytes"],
        [cid, 400, 401, ceiling.signature],
    )
    with pytest.raises(ClaimExceedsVoucher) as forced:
        channels._simulate(payee.address, data)
    assert forced.value.reason == "claim exceeds the voucher"
    # A batch names the claim over its voucher.
    other = channels.open(payer, payee.address, 100).channel_id
    batch = [ceiling, channels.sign_voucher(payer, other, 60)]
    with pytest.raises(ClaimExceedsVoucher) as named:
        channels.claim_many(payee, batch, [350, 61])
    assert named.value.index == 1
    with pytest.raises(InvalidChannelInput):
        channels.claim_many(payee, batch, [350])
    assert channels.claim_many(payee, batch, [350, 40]).total == 90
    # Closing on the voucher: the payee takes what it charged, the payer the rest.
    closed = channels.close(payee, cid, ceiling, 380)
    assert (closed.claimed, closed.refunded) == (380, 620)
    assert _moved(start, books()) == (-480, 420, 60)


def test_claim_many_pays_once_for_many_channels(
    chain: LocalChain, token: Token, channels: ChannelContract, parties: Parties, books: Books
) -> None:
    payer, payee = parties.payer, parties.payee
    other_payer = _party(chain, token, channels)
    ids = [channels.open(payer, payee.address, 100 + i).channel_id for i in range(4)]
    ids.append(channels.open(other_payer, payee.address, 50).channel_id)
    signers = [payer] * 4 + [other_payer]
    start = books()
    vouchers = [
        channels.sign_voucher(k, i, 10 * (n + 1))
        for n, (k, i) in enumerate(zip(signers, ids, strict=True))
    ]
    assert channels.simulate_claim(payee.address, vouchers) == 150
    result = channels.claim_many(payee, vouchers)
    assert result.total == 150
    assert [log.amount for log in result.claims] == [10, 20, 30, 40, 50]
    assert [log.channel_id for log in result.claims] == ids
    # One token transfer for the whole batch.
    transfers = [log for log in result.receipt.logs if log.address == token.address]
    assert len(transfers) == 1
    assert sum(log.topics[0] == CLAIMED_TOPIC for log in result.receipt.logs) == 5
    assert _moved(start, books()) == (0, 150, -150)

    # The same channel twice in a batch: fine while the cumulatives rise.
    twice = [channels.sign_voucher(payer, ids[0], 15), channels.sign_voucher(payer, ids[0], 25)]
    assert channels.claim_many(payee, twice).total == 15


def test_claim_many_is_all_or_nothing_and_names_the_bad_voucher(
    channels: ChannelContract, parties: Parties, books: Books
) -> None:
    payer, payee = parties.payer, parties.payee
    ids = [channels.open(payer, payee.address, 100).channel_id for _ in range(3)]
    good = [channels.sign_voucher(payer, i, 60) for i in ids]
    past = channels.sign_voucher(payer, ids[1], 101)
    start = books()
    with pytest.raises(VoucherPastDeposit) as raised:
        channels.claim_many(payee, [good[0], past, good[2]])
    assert raised.value.index == 1 and "voucher 1 of the batch" in raised.value.message
    forged = dataclasses.replace(
        good[2], signature=channels.sign_voucher(payee, ids[2], 60).signature
    )
    with pytest.raises(BadVoucherSignature) as bad:
        channels.simulate_claim(payee.address, [good[0], good[1], forged])
    assert bad.value.index == 2
    # One channel twice, not rising: each alone is fine, the batch is not.
    with pytest.raises(VoucherNotAboveClaimed) as twice:
        channels.claim_many(payee, [good[0], good[0]])
    assert twice.value.index is None
    assert books() == start
    assert all(channels.channel(i).claimed == 0 for i in ids)
    assert channels.claim_many(payee, good).total == 180


def test_claim_many_gas_stays_inside_its_bound(channels: ChannelContract, parties: Parties) -> None:
    payer, payee = parties.payer, parties.payee
    ids = [channels.open(payer, payee.address, 10).channel_id for _ in range(12)]
    result = channels.claim_many(payee, [channels.sign_voucher(payer, i, 1) for i in ids])
    assert result.total == 12
    assert result.receipt.gas_used < 80_000 + 40_000 * 12
    single = channels.claim(payee, channels.sign_voucher(payer, ids[0], 2))
    assert single.receipt.gas_used < GAS_BOUNDS["claim"]


def test_close_without_a_voucher_refunds_everything(
    channels: ChannelContract, parties: Parties, books: Books
) -> None:
    payer, payee = parties.payer, parties.payee
    start = books()
    opened = channels.open(payer, payee.address, 777)
    closed = channels.close(payee, opened.channel_id)
    assert (closed.claimed, closed.refunded) == (0, 777)
    assert books() == start
    # After a claim, closing at the claimed total needs no voucher either.
    opened = channels.open(payer, payee.address, 100)
    channels.claim(payee, channels.sign_voucher(payer, opened.channel_id, 40))
    closed = channels.close(payee, opened.channel_id)
    assert (closed.claimed, closed.refunded) == (40, 60)
    assert _moved(start, books()) == (-40, 40, 0)


def test_top_up_raises_what_vouchers_may_reach(
    channels: ChannelContract, parties: Parties, books: Books
) -> None:
    payer, payee = parties.payer, parties.payee
    opened = channels.open(payer, payee.address, 100)
    start = books()
    with pytest.raises(VoucherPastDeposit):
        channels.claim(payee, channels.sign_voucher(payer, opened.channel_id, 150))
    channels.top_up(payer, opened.channel_id, 50)
    assert _moved(start, books()) == (-50, 0, 50)
    assert channels.claim(payee, channels.sign_voucher(payer, opened.channel_id, 150)).total == 150
    with pytest.raises(NotPayer):
        channels.top_up(payee, opened.channel_id, 1)


# ----- withdrawal and the race with a claim -------------------------------------------------


def test_withdrawal_after_the_challenge_period(
    chain: LocalChain, channels: ChannelContract, parties: Parties, books: Books
) -> None:
    payer, payee = parties.payer, parties.payee
    start = books()
    opened = channels.open(payer, payee.address, 1_000)
    with pytest.raises(WithdrawalNotRequested):
        channels.withdraw(payer, opened.channel_id)
    with pytest.raises(NotPayer):
        channels.request_withdrawal(payee, opened.channel_id)
    receipt = channels.request_withdrawal(payer, opened.channel_id)
    channel = channels.channel(opened.channel_id)
    assert channel.withdraw_requested_at == chain.timestamp()
    assert channels.withdrawable_at(channel) == chain.timestamp() + PERIOD_S
    assert receipt.ok
    with pytest.raises(WithdrawalAlreadyRequested):
        channels.request_withdrawal(payer, opened.channel_id)
    with pytest.raises(WithdrawalAlreadyRequested):
        channels.top_up(payer, opened.channel_id, 1)
    with pytest.raises(ChallengePeriodNotOver):
        channels.withdraw(payer, opened.channel_id)
    chain.advance_time(PERIOD_S + 1)
    closed = channels.withdraw(payer, opened.channel_id)
    assert (closed.claimed, closed.refunded, closed.cooperative) == (0, 1_000, False)
    assert books() == start
    with pytest.raises(ChannelClosed):
        channels.withdraw(payer, opened.channel_id)


def test_the_payees_claim_within_the_period_wins_the_race(
    chain: LocalChain, channels: ChannelContract, parties: Parties, books: Books
) -> None:
    payer, payee = parties.payer, parties.payee
    start = books()
    opened = channels.open(payer, payee.address, 1_000)
    owed = channels.sign_voucher(payer, opened.channel_id, 640)
    channels.request_withdrawal(payer, opened.channel_id)
    chain.advance_time(PERIOD_S // 2)
    with pytest.raises(ChallengePeriodNotOver):
        channels.withdraw(payer, opened.channel_id)
    # The payee saw the request and claims what it is owed, inside the period.
    assert channels.claim(payee, owed).total == 640
    chain.advance_time(PERIOD_S)
    closed = channels.withdraw(payer, opened.channel_id)
    assert (closed.claimed, closed.refunded) == (640, 360)
    assert _moved(start, books()) == (-640, 640, 0)
    # Once withdrawn, no voucher pays anything more.
    later = channels.sign_voucher(payer, opened.channel_id, 900)
    with pytest.raises(ChannelClosed):
        channels.claim(payee, later)
    with pytest.raises(ChannelClosed):
        channels.close(payee, opened.channel_id, later)
    assert books() == (start[0] - 640, start[1] + 640, start[2])


def test_a_claim_after_the_period_still_pays_until_the_payer_withdraws(
    chain: LocalChain, channels: ChannelContract, parties: Parties
) -> None:
    payer, payee = parties.payer, parties.payee
    opened = channels.open(payer, payee.address, 100)
    channels.request_withdrawal(payer, opened.channel_id)
    chain.advance_time(PERIOD_S + 1)
    # The voucher is the payer's own promise: it stays good while the deposit is there.
    assert channels.claim(payee, channels.sign_voucher(payer, opened.channel_id, 30)).total == 30
    assert channels.withdraw(payer, opened.channel_id).refunded == 70


# ----- refusals -----------------------------------------------------------------------------


def test_voucher_faults(channels: ChannelContract, parties: Parties, books: Books) -> None:
    payer, payee = parties.payer, parties.payee
    opened = channels.open(payer, payee.address, 500)
    other = channels.open(payer, payee.address, 500)
    cid = opened.channel_id
    channels.claim(payee, channels.sign_voucher(payer, cid, 200))
    start = books()
    # A replayed old voucher, and one equal to what was claimed.
    with pytest.raises(VoucherNotAboveClaimed, match="not above the claimed total"):
        channels.claim(payee, channels.sign_voucher(payer, cid, 150))
    with pytest.raises(VoucherNotAboveClaimed):
        channels.claim(payee, channels.sign_voucher(payer, cid, 200))
    # Past the deposit.
    with pytest.raises(VoucherPastDeposit, match="exceeds the deposit") as past:
        channels.claim(payee, channels.sign_voucher(payer, cid, 501))
    assert (
        past.value.reason == "voucher exceeds the deposit"
        and past.value.code == "voucher_past_deposit"
    )
    # Signed by another key.
    with pytest.raises(BadVoucherSignature, match="not the payer's"):
        channels.claim(payee, channels.sign_voucher(PrivateKey.generate(), cid, 300))
    # Signed for another channel, presented for this one.
    elsewhere = channels.sign_voucher(payer, other.channel_id, 300)
    with pytest.raises(BadVoucherSignature):
        channels.claim(payee, dataclasses.replace(elsewhere, channel_id=cid))
    # Claimed by someone other than the payee.
    with pytest.raises(NotPayee):
        channels.claim(payer, channels.sign_voucher(payer, cid, 300))
    # An unknown channel.
    with pytest.raises(UnknownChannel):
        channels.claim(payee, channels.sign_voucher(payer, bytes(32), 1))
    with pytest.raises(UnknownChannel):
        channels.channel(bytes(32))
    assert channels.find_channel(bytes(32)) is None
    # A cooperative close may not go below what was claimed, nor past the deposit.
    with pytest.raises(VoucherNotAboveClaimed, match="below the claimed total"):
        channels.close(payee, cid, channels.sign_voucher(payer, cid, 100))
    with pytest.raises(VoucherPastDeposit):
        channels.close(payee, cid, channels.sign_voucher(payer, cid, 501))
    with pytest.raises(NotPayee):
        channels.close(payer, cid)
    assert books() == start


def test_malleable_and_malformed_signatures_refused(
    channels: ChannelContract, parties: Parties
) -> None:
    from paywire.crypto.keys import SECP256K1_N

    payer, payee = parties.payer, parties.payee
    cid = channels.open(payer, payee.address, 100).channel_id
    good = channels.sign_voucher(payer, cid, 10)
    assert good.signature is not None
    r, s, v = good.signature[:32], int.from_bytes(good.signature[32:64], "big"), good.signature[64]
    # The same signature with s -> n - s (and v flipped) recovers the same key: refused.
    high = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    with pytest.raises(BadVoucherSignature, match="'s' value"):
        channels.claim(payee, dataclasses.replace(good, signature=high))
    with pytest.raises(BadVoucherSignature, match="'v' value"):
        channels.claim(payee, dataclasses.replace(good, signature=good.signature[:64] + b"\x1d"))
    with pytest.raises(BadVoucherSignature, match="invalid signature"):
        channels.claim(payee, dataclasses.replace(good, signature=bytes(64) + b"\x1b"))
    assert channels.claim(payee, good).total == 10


def test_boundary_values(
    chain: LocalChain, token: Token, channels: ChannelContract, parties: Parties
) -> None:
    payer, payee = parties.payer, parties.payee
    cid = channels.open(payer, payee.address, 1_000).channel_id
    with pytest.raises(VoucherPastDeposit):
        channels.claim(payee, channels.sign_voucher(payer, cid, 2**128 - 1))
    with pytest.raises(InvalidChannelInput):
        channels.sign_voucher(payer, cid, 2**128)
    with pytest.raises(VoucherPastDeposit):
        channels.claim(payee, channels.sign_voucher(payer, cid, 1_001))
    # A voucher may allow more than the deposit; the total claimed on it may not pass it.
    with pytest.raises(VoucherPastDeposit):
        channels.claim(payee, channels.sign_voucher(payer, cid, 5_000), 1_001)
    with pytest.raises(VoucherNotAboveClaimed):
        channels.claim(payee, channels.sign_voucher(payer, cid, 0))
    assert channels.claim(payee, channels.sign_voucher(payer, cid, 1)).total == 1
    assert channels.claim(payee, channels.sign_voucher(payer, cid, 2)).total == 1
    with pytest.raises(VoucherNotAboveClaimed):
        channels.claim(payee, channels.sign_voucher(payer, cid, 2))
    assert channels.claim(payee, channels.sign_voucher(payer, cid, 1_000)).total == 998
    assert channels.channel(cid).remaining == 0
    assert channels.close(payee, cid).refunded == 0

    # Deposits are uint128, as the ledger's amounts.
    whale = _party(chain, token, channels)
    token.mint(chain.operator, whale.address, 2**128)
    with pytest.raises(InvalidChannelInput, match=str(2**128 - 1)):
        channels.open(whale, payee.address, 2**128)
    big = channels.open(whale, payee.address, 2**128 - 1).channel_id
    with pytest.raises(ChannelFundingFailed, match="deposit overflows"):
        channels.top_up(whale, big, 1)
    voucher = channels.sign_voucher(whale, big, 2**128 - 1)
    assert channels.claim(payee, voucher).total == 2**128 - 1


def test_open_refusals(
    chain: LocalChain, token: Token, channels: ChannelContract, parties: Parties
) -> None:
    payer, payee = parties.payer, parties.payee
    salt = bytes(range(32))
    opened = channels.open(payer, payee.address, 10, salt=salt)
    assert opened.channel_id == channels.channel_id(payer.address, payee.address, salt)
    with pytest.raises(ChannelExists):
        channels.open(payer, payee.address, 10, salt=salt)
    # Another payer may use the same salt: the id is another.
    assert (
        channels.open(_party(chain, token, channels), payee.address, 10, salt=salt).channel_id
        != opened.channel_id
    )
    poor = PrivateKey.generate()
    chain.fund(poor.address, GAS_WEI)
    with pytest.raises(ChannelFundingFailed, match="allowance"):
        channels.open(poor, payee.address, 10, approve=False)
    with pytest.raises(ChannelFundingFailed, match="balance"):
        channels.open(poor, payee.address, 10)
    for amount in (0, -1, 2**256, True):
        with pytest.raises(InvalidChannelInput):
            channels.open(payer, payee.address, amount)
    with pytest.raises(InvalidChannelInput):
        channels.open(payer, payer.address, 10)
    with pytest.raises(InvalidChannelInput):
        channels.open(payer, "0x1234", 10)


def test_python_refuses_before_sending(channels: ChannelContract, parties: Parties) -> None:
    payer, payee = parties.payer, parties.payee
    cid = channels.open(payer, payee.address, 10).channel_id
    unsigned = channels.voucher(cid, 5)
    with pytest.raises(BadVoucherSignature, match="not signed"):
        channels.claim(payee, unsigned)
    with pytest.raises(InvalidChannelInput):
        channels.claim_many(payee, [])
    with pytest.raises(InvalidChannelInput):
        channels.claim_many(payee, [channels.sign_voucher(payer, cid, 1)] * 65)
    with pytest.raises(InvalidChannelInput):
        channels.claim_many(payee, channels.sign_voucher(payer, cid, 1))  # type: ignore[arg-type]
    with pytest.raises(BadVoucherSignature, match="another channel"):
        channels.close(payee, bytes(32), channels.sign_voucher(payer, cid, 1))
    with pytest.raises(InvalidChannelInput):
        channels.channel(b"short")
    with pytest.raises(InvalidChannelInput):
        Voucher(channels.domain, cid, -1)
    assert isinstance(VoucherPastDeposit("x"), ChannelRefused)
