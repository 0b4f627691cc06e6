"""Payment channels under random sequences of operations (the contract's token balance is
always what its open channels have left), and over JSON-RPC (an `RpcChain` through the
bridge, with gas bounds and with estimates)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import ASGIApp

from paywire.chain import (
    ChannelContract,
    ChannelRefused,
    LocalChain,
    RpcChain,
    Token,
    VoucherNotAboveClaimed,
    VoucherPastDeposit,
    dev_key,
    rpc_bridge,
)
from paywire.chain.channels import ChallengePeriodNotOver, ChannelClosed, WithdrawalAlreadyRequested
from paywire.crypto import PrivateKey

PERIOD_S = 3_600
PAYERS = 2


@dataclasses.dataclass
class Model:
    """What the contract should hold for one channel."""

    payer: int
    deposit: int
    claimed: int = 0
    requested: bool = False
    waited: bool = False
    closed: bool = False


@dataclasses.dataclass(frozen=True)
class World:
    chain: LocalChain
    token: Token
    channels: ChannelContract
    payers: tuple[PrivateKey, ...]
    payee: PrivateKey


@pytest.fixture(scope="module")
def world(chain: LocalChain, token: Token) -> World:
    channels = ChannelContract.deploy(chain, token, challenge_period_s=PERIOD_S)
    payers = tuple(PrivateKey.generate() for _ in range(PAYERS))
    payee = PrivateKey.generate()
    for key in (*payers, payee):
        chain.fund(key.address, 10**18)
    for key in payers:
        token.mint(chain.operator, key.address, 10**9)
        token.approve(key, channels.address, 2**256 - 1)
    return World(chain, token, channels, payers, payee)


_share = st.integers(0, 110)
"""A voucher's cumulative, relative to the channel: 0 is the claimed total (refused), 1..100
a share of what is left (1 more at least), past 100 that much past the deposit (refused)."""

_op = st.one_of(
    st.tuples(st.just("open"), st.integers(0, PAYERS - 1), st.integers(1, 1_000)),
    st.tuples(st.just("top_up"), st.integers(0, 7), st.integers(1, 500)),
    st.tuples(st.just("claim"), st.integers(0, 7), _share),
    st.tuples(
        st.just("claim_many"),
        st.lists(st.tuples(st.integers(0, 7), _share), min_size=1, max_size=4),
    ),
    st.tuples(st.just("close"), st.integers(0, 7), _share),
    st.tuples(st.just("request"), st.integers(0, 7)),
    st.tuples(st.just("withdraw"), st.integers(0, 7)),
    st.tuples(st.just("wait")),
)


def _cumulative(model: Model, share: int) -> int:
    if share == 0:
        return model.claimed
    if share > 100:
        return model.deposit + share - 100
    return model.claimed + max(1, (model.deposit - model.claimed) * share // 100)


def _claim_refusal(model: Model, cumulative: int) -> type[ChannelRefused] | None:
    if model.closed:
        return ChannelClosed
    if cumulative > model.deposit:
        return VoucherPastDeposit
    if cumulative <= model.claimed:
        return VoucherNotAboveClaimed
    return None


def _apply(world: World, ids: list[bytes], models: list[Model], op: tuple[object, ...]) -> None:
    channels, payee = world.channels, world.payee
    kind = op[0]
    if kind == "open":
        payer, amount = int(op[1]), int(op[2])  # type: ignore[call-overload]
        opened = channels.open(world.payers[payer], payee.address, amount, approve=False)
        ids.append(opened.channel_id)
        models.append(Model(payer, amount))
        return
    if kind == "wait":
        world.chain.advance_time(PERIOD_S + 1)
        for model in models:
            model.waited = model.requested
        return
    if not ids:
        return
    if kind == "claim_many":
        simulated = [dataclasses.replace(m) for m in models]
        refusal: type[ChannelRefused] | None = None
        batch = []
        for i, share in op[1]:  # type: ignore[attr-defined]
            index = int(i) % len(ids)
            cumulative = _cumulative(simulated[index], share)
            batch.append((index, cumulative))
            refusal = refusal or _claim_refusal(simulated[index], cumulative)
            simulated[index].claimed = max(simulated[index].claimed, cumulative)
        vouchers = [
            channels.sign_voucher(world.payers[models[i].payer], ids[i], c) for i, c in batch
        ]
        if refusal is not None:
            with pytest.raises(refusal):
                channels.claim_many(payee, vouchers)
            return
        total = channels.claim_many(payee, vouchers).total
        assert total == sum(s.claimed - m.claimed for s, m in zip(simulated, models, strict=True))
        for model, after in zip(models, simulated, strict=True):
            model.claimed = after.claimed
        return
    index = int(op[1]) % len(ids)  # type: ignore[call-overload]
    model, cid = models[index], ids[index]
    payer = world.payers[model.payer]
    if kind == "top_up":
        expected: type[ChannelRefused] | None = (
            ChannelClosed
            if model.closed
            else WithdrawalAlreadyRequested
            if model.requested
            else None
        )
        if expected is not None:
            with pytest.raises(expected):
                channels.top_up(payer, cid, int(op[2]), approve=False)  # type: ignore[call-overload]
        else:
            channels.top_up(payer, cid, int(op[2]), approve=False)  # type: ignore[call-overload]
            model.deposit += int(op[2])  # type: ignore[call-overload]
    elif kind == "claim":
        cumulative = _cumulative(model, int(op[2]))  # type: ignore[call-overload]
        voucher = channels.sign_voucher(payer, cid, cumulative)
        refused = _claim_refusal(model, cumulative)
        if refused is not None:
            with pytest.raises(refused):
                channels.claim(payee, voucher)
        else:
            assert channels.claim(payee, voucher).total == cumulative - model.claimed
            model.claimed = cumulative
    elif kind == "close":
        share = int(op[2])  # type: ignore[call-overload]
        cumulative = model.claimed if share == 0 else _cumulative(model, share)
        voucher = channels.sign_voucher(payer, cid, cumulative)
        if model.closed or cumulative > model.deposit or cumulative < model.claimed:
            with pytest.raises(ChannelRefused):
                channels.close(payee, cid, voucher)
        else:
            closed = channels.close(payee, cid, voucher)
            assert closed.refunded == model.deposit - cumulative
            model.claimed, model.closed = cumulative, True
    elif kind == "request":
        if model.closed or model.requested:
            with pytest.raises(ChannelRefused):
                channels.request_withdrawal(payer, cid)
        else:
            channels.request_withdrawal(payer, cid)
            model.requested = True
    elif kind == "withdraw":
        if model.closed or not model.requested:
            with pytest.raises(ChannelRefused):
                channels.withdraw(payer, cid)
        elif not model.waited:
            with pytest.raises(ChallengePeriodNotOver):
                channels.withdraw(payer, cid)
        else:
            assert channels.withdraw(payer, cid).refunded == model.deposit - model.claimed
            model.closed = True


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(_op, min_size=1, max_size=10))
def test_random_operations_keep_the_books(world: World, ops: list[tuple[object, ...]]) -> None:
    chain, token, channels = world.chain, world.token, world.channels
    holders = [key.address for key in (*world.payers, world.payee)] + [channels.address]
    snapshot = chain.snapshot()
    try:
        total = sum(token.balance_of(address) for address in holders)
        ids: list[bytes] = []
        models: list[Model] = []
        for op in [("open", 0, 300), *ops]:
            _apply(world, ids, models, op)
            held = sum(m.deposit - m.claimed for m in models if not m.closed)
            assert channels.balance() == held
            assert sum(token.balance_of(address) for address in holders) == total
        for cid, model in zip(ids, models, strict=True):
            state = channels.channel(cid)
            assert (state.deposit, state.claimed, state.closed) == (
                model.deposit,
                model.claimed,
                model.closed,
            )
            assert state.withdrawal_requested == model.requested
    finally:
        chain.revert(snapshot)


def test_channels_over_json_rpc(
    chain: LocalChain, token: Token, serve: Callable[[ASGIApp], str]
) -> None:
    url = serve(rpc_bridge(chain)) + "/rpc"
    remote = RpcChain(url, chain.chain_id, signer=dev_key(0))
    channels = ChannelContract.deploy(remote, token.address, challenge_period_s=PERIOD_S)
    local = ChannelContract(chain, channels.address)
    assert local.domain == channels.domain and local.token.address == token.address
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    for key in (payer, payee):
        chain.fund(key.address, 10**18)
    token.mint(chain.operator, payer.address, 10_000)
    opened = channels.open(payer, payee.address, 5_000)
    assert (
        channels.claim(payee, channels.sign_voucher(payer, opened.channel_id, 1_200)).total == 1_200
    )
    # Without gas bounds the chain estimates: a refusal still comes back typed.
    remote.known_gas_rules = False
    with pytest.raises(VoucherNotAboveClaimed):
        channels.claim(payee, channels.sign_voucher(payer, opened.channel_id, 1_000))
    closed = channels.close(
        payee, opened.channel_id, channels.sign_voucher(payer, opened.channel_id, 2_000)
    )
    assert (closed.claimed, closed.refunded) == (2_000, 3_000)
    assert token.balance_of(payer.address) == 8_000 and token.balance_of(payee.address) == 2_000
    assert local.channel(opened.channel_id).closed
