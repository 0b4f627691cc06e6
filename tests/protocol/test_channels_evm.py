"""Channels on an EVM chain (paywire's channel contract on py-evm): the provider's book
verifies the contract's vouchers in memory, charges what the work cost, and claims many
channels in one ``claim_many`` transaction, for the totals charged (less than the
vouchers allow); a channel the contract refuses costs the others nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from paywire.chain import ChannelContract, LocalChain, Token
from paywire.client import Payer
from paywire.client.channels import ChannelPayer
from paywire.crypto.keys import PrivateKey
from paywire.money import USDC
from paywire.protocol.channel import ChannelBook, EvmChannelBackend
from paywire.protocol.errors import PaymentProblem

PRICE = 2_000
DEPOSIT = 50_000
GAS_WEI = 10**18


@pytest.fixture(scope="module")
def contract(chain: LocalChain, token: Token) -> ChannelContract:
    return ChannelContract.deploy(chain, token, challenge_period_s=3600)


def _payer(chain: LocalChain, token: Token, contract: ChannelContract) -> Payer:
    key = PrivateKey.generate()
    chain.fund(key.address, GAS_WEI)
    token.mint(chain.operator, key.address, 10 * DEPOSIT)
    return Payer.create(
        key, max_per_payment="$1", networks=["eip155:*"], tokens={token.address: USDC}
    )


def test_claim_many_channels_in_one_transaction(
    chain: LocalChain, token: Token, contract: ChannelContract, tmp_path: Path
) -> None:
    payee = PrivateKey.generate()
    chain.fund(payee.address, GAS_WEI)
    backend = EvmChannelBackend(contract, payee, USDC)
    book = ChannelBook(backend, tmp_path / "vouchers.db")
    option = book.requirements(PRICE, payee.address)[0]
    assert option.network == chain.network and option.asset == token.address
    assert option.extra["channelContract"] == contract.address
    assert option.extra["withdrawDelay"] == 3600
    payers = [_payer(chain, token, contract) for _ in range(4)]
    opened = [ChannelPayer.open_evm(p, option, contract, DEPOSIT) for p in payers]
    costs = {0: [500, 700], 1: [1_999], 2: [1, 2, 3], 3: [1_000]}

    async def run() -> None:
        for index, channel in enumerate(opened):
            for cost in costs[index]:
                payment = channel.payment(PRICE)
                auth = await book.authorize(payment, option)
                charge = await book.charge(auth, cost)
                channel.observe(charge.state(), payment)
        # A voucher by another key, and one past the deposit: refused in memory.
        forged = ChannelPayer(
            payers[1], option, opened[0].channel_id, contract.domain, DEPOSIT, USDC
        ).payment(PRICE)
        with pytest.raises(PaymentProblem) as bad:
            await book.authorize(forged, option)
        assert bad.value.reason == "channel_voucher_signature"
        # The payee closes channel 3 on its own, outside the book: its claim will fail.
        contract.close(payee, opened[3].channel_id)
        before = token.balance_of(payee.address)
        outcomes = await book.claim_all()
        assert [o.ok for o in outcomes] == [True, True, True, False]
        assert outcomes[3].reason == "channel_closed"
        assert len({o.transfer for o in outcomes[:3]}) == 1  # one transaction for three
        paid = sum(sum(costs[i]) for i in range(3))
        assert token.balance_of(payee.address) - before == paid
        for index in range(3):
            assert contract.channel(opened[index].channel_id).claimed == sum(costs[index])
        # Close channel 0: the payee keeps its claims, the payer gets the rest back.
        payer_before = token.balance_of(payers[0].key.address)
        closed = await book.close(opened[0].channel_hex)
        assert closed.ok and closed.closed
        refund = token.balance_of(payers[0].key.address) - payer_before
        assert refund == DEPOSIT - sum(costs[0])
        with pytest.raises(PaymentProblem) as ended:
            await book.authorize(opened[0].payment(PRICE), option)
        assert ended.value.reason == "channel_closed"
        await book.aclose()

    asyncio.run(run())


def test_a_payer_withdrawing_makes_the_channel_due(
    chain: LocalChain, token: Token, contract: ChannelContract, tmp_path: Path
) -> None:
    payee = PrivateKey.generate()
    chain.fund(payee.address, GAS_WEI)
    payer = _payer(chain, token, contract)
    backend = EvmChannelBackend(contract, payee, USDC)
    option = ChannelBook(backend, tmp_path / "a.db").requirements(PRICE, payee.address)[0]
    channel = ChannelPayer.open_evm(payer, option, contract, DEPOSIT)
    contract.request_withdrawal(payer.key, channel.channel_id)

    async def run() -> None:
        book = ChannelBook(backend, tmp_path / "b.db", expiry_margin_s=4000)
        with pytest.raises(PaymentProblem) as expiring:
            await book.authorize(channel.payment(PRICE), option)
        assert expiring.value.reason == "channel_expiring"
        (due,) = await book.claim_due()  # claims (nothing) and closes before the payer can
        assert due.ok and due.closed
        await book.aclose()

    asyncio.run(run())
    assert contract.channel(channel.channel_id).closed
