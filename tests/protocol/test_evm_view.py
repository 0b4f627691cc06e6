"""The facilitator's chain view for EVM `exact`: verify without a chain call on a warm view,
without letting payments in flight overspend or replay. Every test runs on the in-process
chain and on the same chain reached over JSON-RPC through the bridge (real HTTP loopback)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.types import ASGIApp
from x402.schemas import PaymentPayload, PaymentRequirements

from paywire.chain import LocalChain, Token
from paywire.crypto import PrivateKey
from paywire.ledger import Ledger
from paywire.ledger.errors import AccountNotFound, TransferNotFound
from paywire.protocol import (
    EvmExactScheme,
    Facilitator,
    PaymentProblem,
    evm_account_id,
    evm_payment_id,
    sign_authorization,
)
from paywire.protocol.evm_exact import ChainView

pytestmark = pytest.mark.anyio

PRICE = 1_000
NONCE_USED = "invalid_exact_evm_nonce_already_used"
INSUFFICIENT = "invalid_exact_evm_insufficient_balance"
FOREVER_S = 3600.0  # a head poll interval no test outlasts: the view polls when told


@pytest.fixture(scope="module")
def chain() -> LocalChain:
    """A chain that adds blocks only when a test makes one (no lazy mining), so the view's
    reads per block can be counted."""
    return LocalChain(block_time_s=None)


@pytest.fixture(params=["in process", "json-rpc"])
def seen(
    request: pytest.FixtureRequest, chain: LocalChain, token: Token, serve: Callable[[ASGIApp], str]
) -> Token:
    """The token as the facilitator reaches it: in process, or through the JSON-RPC bridge."""
    if request.param == "in process":
        return token
    from paywire.chain import RpcChain, rpc_bridge

    remote = RpcChain(serve(rpc_bridge(chain)) + "/rpc", chain.chain_id, signer=chain.operator)
    return remote.token(token.address)


def scheme(ledger: Ledger, token: Token, **options: Any) -> EvmExactScheme:
    options.setdefault("head_poll_s", FOREVER_S)
    return EvmExactScheme(ledger, [token], **options)


def view_of(evm: EvmExactScheme) -> ChainView:
    [view] = evm.views.values()
    return view


def funded(chain: LocalChain, token: Token, atomic: int, *, gas: bool = False) -> PrivateKey:
    key = PrivateKey.generate()
    token.mint(chain.operator, key.address, atomic)
    if gas:
        chain.fund(key.address, 10**18)
    return key


def requirements(token: Token, pay_to: str, amount: int = PRICE) -> PaymentRequirements:
    return PaymentRequirements(
        scheme="exact",
        network=token.chain.network,
        asset=token.address,
        amount=str(amount),
        pay_to=pay_to,
        max_timeout_seconds=300,
        extra=token.extra,
    )


def payment(
    token: Token, payer: PrivateKey, wanted: PaymentRequirements, **fields: Any
) -> PaymentPayload:
    now = int(time.time())
    terms: dict[str, Any] = {
        "payee": wanted.pay_to,
        "value": int(wanted.amount),
        "valid_after": 0,  # as the official client signs
        "valid_before": now + 300,
    }
    terms.update(fields)
    authorization = sign_authorization(payer, token.domain, **terms)
    return PaymentPayload(accepted=wanted, payload=authorization.to_payload())


def refusal(evm: EvmExactScheme, paid: PaymentPayload, wanted: PaymentRequirements) -> str:
    with pytest.raises(PaymentProblem) as refused:
        evm.verify(paid, wanted)
    return refused.value.reason


async def test_the_view_reads_a_payer_once_per_block(
    ledger: Ledger, chain: LocalChain, token: Token, seen: Token, provider: PrivateKey
) -> None:
    evm = scheme(ledger, seen)
    view = view_of(evm)
    payer, other = funded(chain, token, 10 * PRICE), funded(chain, token, 10 * PRICE)
    wanted = requirements(token, provider.address)
    for _ in range(3):
        evm.verify(payment(token, payer, wanted), wanted)
    assert (view.reads, view.polls) == (1, 1)  # one balance read, one head poll
    assert view.head == chain.block_number()
    evm.verify(payment(token, other, wanted), wanted)
    assert view.reads == 2  # another payer: read once too
    chain.mine()
    evm.verify(payment(token, payer, wanted), wanted)
    assert (view.reads, view.polls) == (2, 1)  # not polled yet: the block is not seen
    view.refresh()
    evm.verify(payment(token, payer, wanted), wanted)
    assert (view.reads, view.polls) == (3, 2)  # a new head: the payer is read again, once
    evm.verify(payment(token, payer, wanted), wanted)
    assert view.reads == 3 and view.head == chain.block_number()


async def test_a_new_block_invalidates_the_view(
    ledger: Ledger, chain: LocalChain, token: Token, seen: Token, provider: PrivateKey
) -> None:
    evm = scheme(ledger, seen, head_poll_s=0)  # ask for the head on every verify
    view = view_of(evm)
    payer = funded(chain, token, 3 * PRICE, gas=True)
    wanted = requirements(token, provider.address)
    evm.verify(payment(token, payer, wanted), wanted)
    evm.verify(payment(token, payer, wanted), wanted)
    assert (view.reads, view.polls) == (1, 2)
    # Another party moves the payer's funds: a new block, so the view reads the payer again.
    token.transfer(payer, PrivateKey.generate().address, 2 * PRICE)
    assert refusal(evm, payment(token, payer, wanted), wanted) == INSUFFICIENT
    assert view.reads == 2 and view.head == chain.block_number()


async def test_payments_in_flight_cannot_together_pass_the_balance(
    ledger: Ledger, chain: LocalChain, token: Token, seen: Token, provider: PrivateKey
) -> None:
    evm = scheme(ledger, seen)
    payer = funded(chain, token, PRICE + PRICE // 2)
    rich = funded(chain, token, 3 * PRICE)
    wanted = requirements(token, provider.address)
    evm.verify(payment(token, payer, wanted), wanted)
    assert refusal(evm, payment(token, payer, wanted), wanted) == INSUFFICIENT
    # Many at once, from threads: the balance covers exactly three.
    payments = [payment(token, rich, wanted) for _ in range(12)]

    def attempt(paid: PaymentPayload) -> str:
        try:
            evm.verify(paid, wanted)
        except PaymentProblem as problem:
            return problem.reason
        return "valid"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(attempt, payments))
    assert outcomes.count("valid") == 3
    assert outcomes.count(INSUFFICIENT) == 9
    assert view_of(evm).in_flight.held(rich.address) == 3 * PRICE


async def test_concurrent_verifies_through_the_facilitator(
    ledger: Ledger,
    operator: PrivateKey,
    chain: LocalChain,
    token: Token,
    seen: Token,
    provider: PrivateKey,
) -> None:
    facilitator = Facilitator(operator, [scheme(ledger, seen)])
    payer = funded(chain, token, 2 * PRICE)
    wanted = requirements(token, provider.address)
    answers = await asyncio.gather(
        *(facilitator.verify(payment(token, payer, wanted), wanted) for _ in range(5))
    )
    assert sum(answer.is_valid for answer in answers) == 2
    assert {answer.invalid_reason for answer in answers if not answer.is_valid} == {INSUFFICIENT}


async def test_one_authorization_in_flight_twice_is_a_replay(
    ledger: Ledger, chain: LocalChain, token: Token, seen: Token, provider: PrivateKey
) -> None:
    evm = scheme(ledger, seen)
    payer = funded(chain, token, 100 * PRICE)
    wanted = requirements(token, provider.address)
    paid = payment(token, payer, wanted)
    evm.verify(paid, wanted)
    assert refusal(evm, paid, wanted) == NONCE_USED
    other = payment(token, payer, wanted)
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda _: _outcome(evm, other, wanted), range(8)))
    assert outcomes.count("valid") == 1 and outcomes.count(NONCE_USED) == 7
    assert view_of(evm).in_flight.held(payer.address) == 2 * PRICE  # each held once


def _outcome(evm: EvmExactScheme, paid: PaymentPayload, wanted: PaymentRequirements) -> str:
    try:
        evm.verify(paid, wanted)
    except PaymentProblem as problem:
        return problem.reason
    return "valid"


async def test_after_a_settle_the_view_reflects_it(
    ledger: Ledger, chain: LocalChain, token: Token, seen: Token, provider: PrivateKey
) -> None:
    evm = scheme(ledger, seen)
    view = view_of(evm)
    payer = funded(chain, token, 2 * PRICE)
    wanted = requirements(token, provider.address)
    paid = payment(token, payer, wanted)
    evm.verify(paid, wanted)
    settled = await evm.settle(paid, wanted)
    assert settled.block_number > view.head  # the view has not read that block yet...
    assert refusal(evm, paid, wanted) == NONCE_USED  # ...but knows the payment is done
    assert view.head >= settled.block_number  # settling made it poll the head
    assert len(view.in_flight) == 0  # the balance read at the new head shows the payment
    evm.verify(payment(token, payer, wanted), wanted)  # what is left covers one more
    assert refusal(evm, payment(token, payer, wanted), wanted) == INSUFFICIENT
    assert token.balance_of(payer.address) == PRICE


async def test_a_nonce_spent_elsewhere_is_seen_in_the_token_events(
    ledger: Ledger, chain: LocalChain, token: Token, seen: Token, provider: PrivateKey
) -> None:
    evm = scheme(ledger, seen, head_poll_s=0)
    view = view_of(evm)
    payer = funded(chain, token, 10 * PRICE)
    wanted = requirements(token, provider.address)
    evm.verify(payment(token, payer, wanted), wanted)  # the view starts, reads the payer
    elsewhere = payment(token, payer, wanted)
    authorization = elsewhere.payload["authorization"]
    nonce = bytes.fromhex(authorization["nonce"][2:])
    on_chain = token.authorization(
        payer.address,
        provider.address,
        PRICE,
        valid_before=int(authorization["validBefore"]),
        nonce=nonce,
    )
    token.transfer_with_authorization(on_chain, elsewhere.payload["signature"])  # not by us
    reads = view.reads
    assert refusal(evm, elsewhere, wanted) == NONCE_USED
    assert view.reads == reads  # from the AuthorizationUsed event, no nonce read


async def test_without_history_each_nonce_is_read_with_the_balance(
    ledger: Ledger, chain: LocalChain, token: Token, seen: Token, provider: PrivateKey
) -> None:
    # The view backfills the events of one block only: an authorization valid since 0 may
    # have been used before that, so its nonce is read (with the balance, in one call).
    payer = funded(chain, token, 10 * PRICE)
    wanted = requirements(token, provider.address)
    spent = payment(token, payer, wanted)
    authorization = spent.payload["authorization"]
    token.transfer_with_authorization(
        token.authorization(
            payer.address,
            provider.address,
            PRICE,
            valid_before=int(authorization["validBefore"]),
            nonce=bytes.fromhex(authorization["nonce"][2:]),
        ),
        spent.payload["signature"],
    )
    chain.mine(3)  # the spending block is now older than what the view backfills
    ahead = max(0, chain.timestamp() - int(time.time()))  # blocks are 1 s apart at least

    def clock() -> float:  # the chain's time: authorizations valid after its recent blocks
        return time.time() + ahead

    evm = scheme(ledger, seen, nonce_backfill_blocks=1, clock=clock)
    view = view_of(evm)
    assert refusal(evm, spent, wanted) == NONCE_USED
    assert view.reads == 1
    evm.verify(payment(token, payer, wanted), wanted)
    assert view.reads == 2  # a new nonce: read (the balance is cached)
    # An authorization valid only after the history's first block needs no nonce read.
    since = view.history.since_time
    assert since is not None
    recent = payment(token, payer, wanted, valid_after=since, valid_before=int(clock()) + 300)
    evm.verify(recent, wanted)
    assert view.reads == 2


async def test_funds_moved_between_verify_and_settle_fail_cleanly(
    ledger: Ledger, chain: LocalChain, token: Token, seen: Token, provider: PrivateKey
) -> None:
    evm = scheme(ledger, seen)
    view = view_of(evm)
    payer = funded(chain, token, PRICE, gas=True)
    wanted = requirements(token, provider.address)
    paid = payment(token, payer, wanted)
    evm.verify(paid, wanted)
    token.transfer(payer, PrivateKey.generate().address, PRICE)  # behind the view's back
    with pytest.raises(PaymentProblem) as refused:
        await evm.settle(paid, wanted)
    assert refused.value.reason == INSUFFICIENT
    assert token.balance_of(provider.address) == 0
    nonce = bytes.fromhex(paid.payload["authorization"]["nonce"][2:])
    with pytest.raises(TransferNotFound):
        ledger.transfer(evm_payment_id(chain.network, token.address, payer.address, nonce))
    with pytest.raises(AccountNotFound):
        ledger.account(evm_account_id(chain.network, payer.address, "USDC"))
    assert len(view.in_flight) == 0  # the hold ended with the refusal
    # The refusal made the view read the payer again: it is empty now.
    assert refusal(evm, payment(token, payer, wanted), wanted) == INSUFFICIENT
    assert ledger.log.verify().ok


async def test_simulate_asks_the_chain_what_the_view_cannot_see(
    ledger: Ledger, chain: LocalChain, token: Token, seen: Token, provider: PrivateKey
) -> None:
    """The view answers from the block it last read; a strict operator's simulation answers
    from the chain's latest block. Both keep the payments in flight."""
    fast, strict = scheme(ledger, seen), scheme(ledger, seen, simulate=True)
    payer = funded(chain, token, 3 * PRICE, gas=True)
    wanted = requirements(token, provider.address)
    fast.verify(payment(token, payer, wanted), wanted)
    strict.verify(payment(token, payer, wanted), wanted)
    token.transfer(payer, PrivateKey.generate().address, 3 * PRICE)  # neither view polls
    fast.verify(payment(token, payer, wanted), wanted)  # the trade-off: settlement decides
    assert refusal(strict, payment(token, payer, wanted), wanted) == INSUFFICIENT
    assert view_of(strict).in_flight.held(payer.address) == PRICE  # the refused one not held
    replay = payment(token, payer, wanted)
    assert refusal(strict, replay, wanted) == INSUFFICIENT
    assert refusal(strict, replay, wanted) == INSUFFICIENT  # refused, not held: no replay


async def test_a_history_the_endpoint_cannot_give_starts_at_the_head(
    ledger: Ledger,
    chain: LocalChain,
    token: Token,
    seen: Token,
    provider: PrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An endpoint that refuses the backfill (a range too wide, a timeout) leaves a view
    that still verifies: it reads the nonces its history cannot answer for."""
    from paywire.chain import ChainUnavailable, view_reads

    def refused(*args: object, **kwargs: object) -> None:
        raise ChainUnavailable("the endpoint did not answer")

    monkeypatch.setattr(view_reads, "authorization_events", refused)
    evm = scheme(ledger, seen)
    view = view_of(evm)
    payer = funded(chain, token, 10 * PRICE)
    wanted = requirements(token, provider.address)
    evm.verify(payment(token, payer, wanted), wanted)
    assert view.history.started and view.history.from_block == view.head + 1
    assert view.reads == 1  # the balance and the nonce, in one call
    evm.verify(payment(token, payer, wanted), wanted)
    assert view.reads == 2


def test_the_batched_read_answers_for_one_block_or_fails(chain: LocalChain, token: Token) -> None:
    from paywire.chain import ChainError
    from paywire.chain.view_reads import BALANCE_OF, call_many, token_reads

    payer = funded(chain, token, 7)
    block = chain.block_number()
    balance, states = token_reads(
        chain, token.address, payer.address, [bytes(32)], block=block, balance=True
    )
    assert (balance, states) == (7, [False])
    before, _ = token_reads(chain, token.address, payer.address, [], block=block - 1, balance=True)
    assert before == 0  # the state of the block asked for: before the mint
    not_a_token = PrivateKey.generate().address  # no code: the call answers no word
    with pytest.raises(ChainError, match="reverted"):
        call_many(chain, [(not_a_token, BALANCE_OF + bytes(32))], block=block)
