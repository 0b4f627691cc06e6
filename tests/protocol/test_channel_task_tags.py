"""A payment made under a task's mandate carries the task id in the ledger, whatever the
scheme: every transfer of a channel opened under such a mandate (its hold, claims,
renewals, top-up, void and close) says ``{"task": <id>}``, read back from the current hold
(so a restarted provider keeps tagging); so does the record of an EVM `exact` payment.
Real ledgers, real signatures, a real py-evm chain."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from channel_helpers import PRICE_MAX, Clock, in_process_book, open_channel, posted, wallet
from x402.schemas import PaymentPayload, PaymentRequirements

from paywire.chain import LocalChain, Token
from paywire.client.channels import ChannelPayer
from paywire.crypto.keys import PrivateKey
from paywire.ledger import (
    Ledger,
    Transfer,
    TransferNotFound,
)
from paywire.mandate import AssetLimit, Mandate, MandateChain, SignedMandate
from paywire.protocol import Facilitator, evm_payment_id, sign_authorization
from paywire.protocol.channel import (
    ChannelBook,
    ClaimEntry,
    ClaimOutcome,
    LedgerChannels,
    sign_claims,
    sign_voucher,
)
from paywire.protocol.channel.ledger_state import claim_id, hold_id, void_id
from paywire.protocol.mandate_extension import with_mandate
from paywire.protocol.mandate_gate import chain_task

DEPOSIT = 100_000
TASK = "research-q3"
SUB_TASK = "research-q3/search"


def mandate(issuer: PrivateKey, agent: PrivateKey, network: str, asset: str, task: str) -> Mandate:
    now = int(time.time())
    return Mandate(
        issuer=issuer.address,
        agent=agent.address,
        limits=(AssetLimit(network, asset, 10**9, 10**9, ()),),
        valid_after=now - 60,
        valid_before=now + 3600,
        task_id=task,
    )


def root_chain(
    principal: PrivateKey, agent: PrivateKey, network: str, task: str, asset: str = "USDC"
) -> MandateChain:
    return MandateChain(
        (SignedMandate.sign(mandate(principal, agent, network, asset, task), principal),)
    )


def written(books: Ledger, channel_hex: str) -> dict[str, Transfer]:
    """Every transfer the channel wrote, by id: holds, claims and voids."""
    hex_ = channel_hex.removeprefix("0x")
    found: dict[str, Transfer] = {}
    seq = 0
    while True:
        ids = (hold_id(hex_, seq), claim_id(hex_, seq), void_id(hex_, seq))
        for transfer_id in ids:
            try:
                found[transfer_id] = books.transfer(transfer_id)
            except TransferNotFound:
                if transfer_id == ids[0]:
                    return found
        seq += 1


def claim(
    channels: LedgerChannels,
    payee: PrivateKey,
    channel: ChannelPayer,
    total: int,
    *,
    close: bool = False,
    metadata: dict[str, Any] | None = None,
) -> ClaimOutcome:
    voucher = sign_voucher(channel.domain, channel.payer.key, channel.channel_id, total)
    entry = ClaimEntry(channel.channel_id, total, voucher.signature, total, close, metadata)
    batch = sign_claims(payee, channels.domain("USDC"), "USDC", [entry])
    return asyncio.run(channels.claim(batch))[0]


def salt_of(channels: LedgerChannels, channel: ChannelPayer) -> bytes:
    state = channels.state_now(channel.channel_hex)
    assert state is not None and state.authorization is not None
    return bytes.fromhex(json.loads(state.authorization)["payload"]["salt"][2:])


async def charge(book: ChannelBook, channel: ChannelPayer, cost: int) -> None:
    option = book.requirements(PRICE_MAX, book.backend.receiver)[0]
    payment = channel.payment(PRICE_MAX)
    auth = await book.authorize(payment, option)
    meter = {"model": "tiny", "tokens": {"input": 3, "output": cost}}
    charged = await book.charge(auth, cost, {"meter": meter})
    extensions = charged.settle_response().extensions
    assert extensions is not None
    channel.observe(extensions["paywire-channel"], payment)


def test_the_leaf_names_the_task_else_the_nearest_ancestor() -> None:
    principal, agent, sub = (PrivateKey.generate() for _ in range(3))
    root = mandate(principal, agent, "paywire:x", "USDC", TASK)
    own = root.delegate(sub.address, task_id=SUB_TASK)
    inherits = root.delegate(sub.address, task_id="")
    sign = SignedMandate.sign
    assert chain_task(MandateChain((sign(root, principal), sign(own, agent)))) == SUB_TASK
    assert chain_task(MandateChain((sign(root, principal), sign(inherits, agent)))) == TASK
    untasked = mandate(principal, agent, "paywire:x", "USDC", "")
    assert chain_task(MandateChain((sign(untasked, principal),))) is None


def test_every_transfer_of_a_task_channel_carries_the_leafs_task(
    books: Ledger, channels: LedgerChannels, tmp_path: Path, ticking: Clock
) -> None:
    principal, agent, sub, payee = (PrivateKey.generate() for _ in range(4))
    wallet(books, sub, 1_000_000)
    root = mandate(principal, agent, books.network, "USDC", TASK)
    child = root.delegate(sub.address, task_id=SUB_TASK)
    chain = MandateChain((SignedMandate.sign(root, principal), SignedMandate.sign(child, agent)))

    async def run() -> ChannelPayer:
        channel = await open_channel(channels, sub, payee.address, DEPOSIT, mandate=chain)
        book = in_process_book(channels, payee, tmp_path / "vouchers.db", clock=ticking.seconds)
        await book.start()
        for cost in (1_000, 2_000):
            await charge(book, channel, cost)
        [first] = await book.claim_all()  # a post and a renewal hold
        assert first.ok and not first.closed
        # A top-up without a mandate keeps the channel's task (a void and a new hold).
        salt = salt_of(channels, channel)
        await open_channel(channels, sub, payee.address, 2 * DEPOSIT, salt=salt)
        await charge(book, channel, 500)
        closed = await book.close(channel.channel_hex)  # the last post, no new hold
        assert closed.ok and closed.closed and closed.claimed == 3_500
        await book.aclose()
        return channel

    channel = asyncio.run(run())
    hex_ = channel.channel_hex[2:]
    transfers = written(books, hex_)
    assert set(transfers) == {
        hold_id(hex_, 0),
        claim_id(hex_, 0),
        hold_id(hex_, 1),
        void_id(hex_, 1),
        hold_id(hex_, 2),
        claim_id(hex_, 2),
    }
    assert {t.id: t.metadata.get("task") for t in transfers.values()} == dict.fromkeys(
        transfers, SUB_TASK
    )
    # The charges' summary is kept beside the task.
    assert transfers[claim_id(hex_, 0)].metadata["charges"] == 2
    assert transfers[claim_id(hex_, 2)].metadata["amount"] == "500"
    state = channels.state_now(channel.channel_hex)
    assert state is not None and state.task == SUB_TASK and state.status == "closed"
    assert state.to_json()["task"] == SUB_TASK
    assert posted(books, payee) == 3_500
    assert books.log.verify().ok


def test_channels_without_a_task_carry_no_task_key(books: Ledger, channels: LedgerChannels) -> None:
    principal, payer, payee = (PrivateKey.generate() for _ in range(3))
    wallet(books, payer, 1_000_000)
    untasked = root_chain(principal, payer, books.network, "")
    for chain in (None, untasked):
        channel = asyncio.run(open_channel(channels, payer, payee.address, DEPOSIT, mandate=chain))
        # A claim's charges metadata cannot name a task the channel's mandate does not.
        forged = claim(channels, payee, channel, 1_000, metadata={"task": "forged", "charges": 1})
        assert forged.ok and not forged.closed
        assert claim(channels, payee, channel, 1_000, close=True).closed  # a void
        hex_ = channel.channel_hex[2:]
        transfers = written(books, hex_)
        assert set(transfers) == {
            hold_id(hex_, 0),
            claim_id(hex_, 0),
            hold_id(hex_, 1),
            void_id(hex_, 1),
        }
        assert all("task" not in t.metadata for t in transfers.values())
        assert transfers[claim_id(hex_, 0)].metadata["charges"] == 1
        state = channels.state_now(channel.channel_hex)
        assert state is not None and state.task is None and "task" not in state.to_json()
    assert books.log.verify().ok


def test_a_restarted_provider_keeps_tagging(
    books: Ledger, channels: LedgerChannels, tmp_path: Path, ticking: Clock
) -> None:
    principal, payer, payee = (PrivateKey.generate() for _ in range(3))
    wallet(books, payer, 1_000_000)
    chain = root_chain(principal, payer, books.network, TASK)
    path = tmp_path / "vouchers.db"

    async def run() -> ChannelPayer:
        channel = await open_channel(channels, payer, payee.address, DEPOSIT, mandate=chain)
        book = in_process_book(channels, payee, path, clock=ticking.seconds)
        for cost in (100, 200, 300):
            await charge(book, channel, cost)
        book.store.close()  # stopped without claiming
        # Another process: a new facilitator side and a new book, over the same ledger.
        restarted = LedgerChannels(books)
        again = in_process_book(restarted, payee, path, clock=ticking.seconds)
        await again.start()  # claims the 600 charged before: a post and a renewal hold
        closed = await again.close(channel.channel_hex)  # nothing new: a void
        assert closed.ok and closed.closed
        await again.aclose()
        return channel

    channel = asyncio.run(run())
    hex_ = channel.channel_hex[2:]
    transfers = written(books, hex_)
    assert set(transfers) == {
        hold_id(hex_, 0),
        claim_id(hex_, 0),
        hold_id(hex_, 1),
        void_id(hex_, 1),
    }
    assert all(t.metadata.get("task") == TASK for t in transfers.values())
    assert posted(books, payee) == 600
    state = LedgerChannels(books).state_now(channel.channel_hex)
    assert state is not None and state.task == TASK


def test_the_summary_marker_never_drops_the_task(books: Ledger, channels: LedgerChannels) -> None:
    principal, payer, payee = (PrivateKey.generate() for _ in range(3))
    wallet(books, payer, 1_000_000)
    # The longest task id, in characters the ledger's metadata escapes the most.
    longest = "\U0001f600" * 128
    chain = root_chain(principal, payer, books.network, longest)
    channel = asyncio.run(open_channel(channels, payer, payee.address, DEPOSIT, mandate=chain))
    # A summary too large for a claim is replaced by the marker; the task stays.
    truncated = claim(channels, payee, channel, 1_000, metadata={"pad": "x" * 3_000})
    assert truncated.ok
    metadata = books.transfer(truncated.transfer or "").metadata
    assert metadata["summary"] == "truncated" and metadata["task"] == longest
    assert "pad" not in metadata
    # The largest summary that is kept still fits beside the longest task.
    largest = claim(channels, payee, channel, 2_000, metadata={"pad": "x" * 2_038})
    assert largest.ok
    metadata = books.transfer(largest.transfer or "").metadata
    assert metadata["pad"] == "x" * 2_038 and metadata["task"] == longest
    assert all(t.metadata["task"] == longest for t in written(books, channel.channel_hex).values())


# ----- EVM exact ------------------------------------------------------------------------------


def evm_payment(token: Token, payer: PrivateKey, pay_to: str, amount: int) -> PaymentPayload:
    wanted = PaymentRequirements(
        scheme="exact",
        network=token.chain.network,
        asset=token.address,
        amount=str(amount),
        pay_to=pay_to,
        max_timeout_seconds=300,
        extra=token.extra,
    )
    now = int(time.time())
    authorization = sign_authorization(
        payer,
        token.domain,
        payee=pay_to,
        value=amount,
        valid_after=now - 60,
        valid_before=now + 300,
    )
    return PaymentPayload(accepted=wanted, payload=authorization.to_payload())


def test_an_evm_exact_payment_under_a_task_mandate_is_tagged(
    ledger: Ledger, operator: PrivateKey, chain: LocalChain, token: Token, provider: PrivateKey
) -> None:
    facilitator = Facilitator.for_networks(operator, ledger=ledger, tokens=[token])
    principal, payer, stranger = (PrivateKey.generate() for _ in range(3))
    token.mint(chain.operator, payer.address, 1_000_000)
    tasked = root_chain(principal, payer, chain.network, TASK, asset=token.address)
    not_the_payers = root_chain(principal, stranger, chain.network, TASK, asset=token.address)
    untasked = root_chain(principal, payer, chain.network, "", asset=token.address)

    def settle(chain_sent: MandateChain | None) -> Transfer:
        paid = evm_payment(token, payer, provider.address, 1_000)
        if chain_sent is not None:
            paid = with_mandate(paid, chain_sent)
        settled = asyncio.run(facilitator.settle(paid, paid.accepted))
        assert settled.success
        nonce = bytes.fromhex(paid.payload["authorization"]["nonce"][2:])
        return ledger.transfer(evm_payment_id(chain.network, token.address, payer.address, nonce))

    assert settle(tasked).metadata["task"] == TASK
    # Only a chain down to the payer's own key names its task; none, no key.
    assert "task" not in settle(not_the_payers).metadata
    assert "task" not in settle(untasked).metadata
    assert "task" not in settle(None).metadata
    assert ledger.log.verify().ok
