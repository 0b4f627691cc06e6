"""Channels on the ledger network, the facilitator's side: open (a hold bounded by the
payer's mandates), top up, claim in linked batches, close, expiry; state read back from the
ledger alone; every refusal with its reason. Real ledgers, real signatures."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from channel_helpers import Clock, available, held, open_channel, posted, terms, wallet

from paywire.client import Payer
from paywire.client.channels import ChannelPayer
from paywire.crypto.keys import PrivateKey
from paywire.ledger import Ledger
from paywire.mandate import (
    AssetLimit,
    Mandate,
    MandateChain,
    Revocation,
    SignedMandate,
    SignedRevocation,
)
from paywire.protocol.channel import (
    ClaimEntry,
    LedgerChannels,
    sign_claims,
    sign_voucher,
)
from paywire.protocol.channel.ledger_state import OPEN
from paywire.protocol.errors import PaymentProblem

pytestmark = pytest.mark.anyio

DEPOSIT = 100_000


def claim(
    channels: LedgerChannels,
    payee: PrivateKey,
    channel: ChannelPayer,
    total: int,
    *,
    most: int | None = None,
    close: bool = False,
    signer: PrivateKey | None = None,
) -> Any:
    voucher = sign_voucher(channel.domain, channel.payer.key, channel.channel_id, most or total)
    entry = ClaimEntry(channel.channel_id, voucher.max_claimable, voucher.signature, total, close)
    batch = sign_claims(signer or payee, channels.domain("USDC"), "USDC", [entry])
    return asyncio.run(channels.claim(batch))[0]


def test_open_claim_claim_close_moves_exactly_the_claims(
    books: Ledger, channels: LedgerChannels
) -> None:
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    wallet(books, payer, 1_000_000)
    channel = asyncio.run(open_channel(channels, payer, payee.address, DEPOSIT))
    assert (available(books, payer), held(books, payer)) == (1_000_000 - DEPOSIT, DEPOSIT)
    first = claim(channels, payee, channel, 1_200, most=5_000)
    assert first.ok and first.claimed == 1_200 and not first.closed
    assert posted(books, payee) == 1_200 and held(books, payer) == DEPOSIT - 1_200
    # The same claim again changes nothing; a lower one neither.
    again = claim(channels, payee, channel, 1_200, most=5_000)
    assert again.ok and again.claimed == 1_200 and again.transfer is None
    assert claim(channels, payee, channel, 1_000).claimed == 1_200
    second = claim(channels, payee, channel, 7_000, most=9_000)
    assert second.ok and posted(books, payee) == 7_000
    closed = claim(channels, payee, channel, 7_500, most=9_000, close=True)
    assert closed.ok and closed.closed and closed.claimed == 7_500
    assert posted(books, payee) == 7_500
    assert available(books, payer) == 1_000_000 - 7_500 and held(books, payer) == 0
    state = channels.state_now(channel.channel_hex)
    assert state is not None and state.status == "closed" and state.claimed == 7_500
    # Nothing more after the close, and the open cannot be replayed into a new channel.
    late = claim(channels, payee, channel, 8_000, most=9_000)
    assert not late.ok and late.reason == "channel_closed"
    with pytest.raises(PaymentProblem) as reopened:
        asyncio.run(
            open_channel(channels, payer, payee.address, DEPOSIT, salt=_salt(channel, channels))
        )
    assert reopened.value.reason == "channel_closed"
    assert books.log.verify().ok


def _salt(channel: ChannelPayer, channels: LedgerChannels) -> bytes:
    state = channels.state_now(channel.channel_hex)
    assert state is not None and state.authorization is not None
    import json

    return bytes.fromhex(json.loads(state.authorization)["payload"]["salt"][2:])


def test_state_is_read_back_from_the_ledger_alone(books: Ledger, channels: LedgerChannels) -> None:
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    wallet(books, payer, 1_000_000)
    channel = asyncio.run(open_channel(channels, payer, payee.address, DEPOSIT))
    for total in range(100, 2_100, 100):  # 20 claims: holds 0..20
        assert claim(channels, payee, channel, total, most=total + 50).ok
    fresh = LedgerChannels(books)  # another process: no hint, no memory
    state = fresh.state_now(channel.channel_hex)
    assert state is not None
    assert (state.seq, state.claimed, state.deposit, state.status) == (20, 2_000, DEPOSIT, OPEN)
    assert state.payer == payer.address and state.receiver == payee.address
    assert state.hold_id == f"ch:{channel.channel_hex[2:]}:20"
    assert books.hold_status(state.hold_id).transfer.amount.atomic == DEPOSIT - 2_000
    assert fresh.state_now("0x" + "00" * 32) is None


def test_top_up_raises_the_deposit_a_voucher_may_reach(
    books: Ledger, channels: LedgerChannels, ticking: Clock
) -> None:
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    wallet(books, payer, 1_000_000)
    expiry = int(ticking() / 1e9) + 3600
    channel = asyncio.run(open_channel(channels, payer, payee.address, 1_000, expiry=expiry))
    salt = _salt(channel, channels)
    assert claim(channels, payee, channel, 300).ok
    assert claim(channels, payee, channel, 1_500).reason == "channel_voucher_past_deposit"
    # The same open again: nothing changes.
    same = asyncio.run(
        open_channel(channels, payer, payee.address, 1_000, salt=salt, expiry=expiry)
    )
    assert same.deposit == 1_000 and held(books, payer) == 700
    topped = asyncio.run(
        open_channel(channels, payer, payee.address, 2_000, salt=salt, expiry=expiry + 60)
    )
    assert topped.deposit == 2_000 and held(books, payer) == 1_700
    assert claim(channels, payee, channel, 1_500).ok
    assert posted(books, payee) == 1_500
    with pytest.raises(PaymentProblem) as lower:
        asyncio.run(open_channel(channels, payer, payee.address, 1_500, salt=salt, expiry=expiry))
    assert lower.value.reason == "channel_open_refused"
    assert books.log.verify().ok


def test_expiry_gives_the_unclaimed_rest_back_to_the_payer(
    books: Ledger, channels: LedgerChannels, ticking: Clock
) -> None:
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    wallet(books, payer, 1_000_000)
    channel = asyncio.run(open_channel(channels, payer, payee.address, DEPOSIT, ttl_s=60))
    assert claim(channels, payee, channel, 2_500).ok  # renews the hold, same expiry
    ticking.advance(61)
    books.expire_due()
    assert held(books, payer) == 0 and available(books, payer) == 1_000_000 - 2_500
    state = channels.state_now(channel.channel_hex)
    assert state is not None and state.status == "expired"
    late = claim(channels, payee, channel, 3_000)
    assert not late.ok and late.reason == "channel_closed"
    assert books.log.verify().ok


def test_a_claim_near_the_expiry_is_the_last(
    books: Ledger, channels: LedgerChannels, ticking: Clock
) -> None:
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    wallet(books, payer, 1_000_000)
    channel = asyncio.run(open_channel(channels, payer, payee.address, DEPOSIT, ttl_s=60))
    ticking.advance(59)
    last = claim(channels, payee, channel, 4_000)
    assert last.ok and last.closed
    assert posted(books, payee) == 4_000 and held(books, payer) == 0


def test_one_bad_claim_costs_the_others_nothing(books: Ledger, channels: LedgerChannels) -> None:
    payers = [PrivateKey.generate() for _ in range(4)]
    payee = PrivateKey.generate()
    opened = []
    for payer in payers:
        wallet(books, payer, 100_000)
        opened.append(asyncio.run(open_channel(channels, payer, payee.address, 10_000)))
    entries = []
    for index, channel in enumerate(opened):
        signer = PrivateKey.generate() if index == 1 else channel.payer.key
        voucher = sign_voucher(channel.domain, signer, channel.channel_id, 3_000)
        total = 11_000 if index == 2 else 2_000 + index
        most = 11_000 if index == 2 else 3_000
        entries.append(ClaimEntry(channel.channel_id, most, voucher.signature, total))
    entries.append(ClaimEntry(bytes(32), 10, bytes(65), 5))
    batch = sign_claims(payee, channels.domain("USDC"), "USDC", entries)
    outcomes = asyncio.run(channels.claim(batch))
    assert [o.ok for o in outcomes] == [True, False, False, True, False]
    assert [o.reason for o in outcomes] == [
        None,
        "channel_voucher_signature",
        "channel_voucher_past_deposit",
        None,
        "channel_unknown",
    ]
    assert posted(books, payee) == 2_000 + 2_003
    # Claimed by someone who is not the receiver: refused, nothing moves.
    stranger = claim(channels, payee, opened[0], 2_500, signer=PrivateKey.generate())
    assert stranger.reason == "channel_payee_mismatch"
    over = claim(channels, payee, opened[0], 2_500, most=2_400)
    assert over.reason == "channel_charge_exceeds_voucher"
    assert posted(books, payee) == 4_003
    assert books.log.verify().ok


def test_two_facilitators_racing_on_one_channel_pay_once(
    books: Ledger, channels: LedgerChannels
) -> None:
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    wallet(books, payer, 1_000_000)
    channel = asyncio.run(open_channel(channels, payer, payee.address, DEPOSIT))
    other = LedgerChannels(books)  # another facilitator process on the same ledger
    voucher = sign_voucher(channel.domain, payer, channel.channel_id, 9_000)

    async def race() -> list[Any]:
        claims = []
        for index in range(8):
            entry = ClaimEntry(channel.channel_id, 9_000, voucher.signature, 1_000 * (index + 1))
            batch = sign_claims(payee, channels.domain("USDC"), "USDC", [entry])
            claims.append((channels if index % 2 else other).claim(batch))
        return await asyncio.gather(*claims)

    outcomes = [o[0] for o in asyncio.run(race())]
    assert all(o.ok for o in outcomes)
    assert posted(books, payee) == 8_000
    assert held(books, payer) == DEPOSIT - 8_000
    assert books.log.verify().ok


def test_open_refusals(books: Ledger, channels: LedgerChannels, ticking: Clock) -> None:
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    wallet(books, payer, 1_000)
    requirements = terms(channels, payee.address)
    signer = Payer.create(payer, max_per_payment="$10", clock=lambda: ticking() / 1e9)

    def refused(payment: Any) -> PaymentProblem:
        with pytest.raises(PaymentProblem) as raised:
            asyncio.run(channels.open(payment))
        return raised.value

    good = ChannelPayer.open_payload(signer, requirements, 500)
    forged = good.model_copy(update={"payload": {**good.payload, "deposit": "900"}})
    assert refused(forged).reason == "channel_open_signature"
    assert refused(ChannelPayer.open_payload(signer, requirements, 5_000)).reason == (
        "insufficient_funds"
    )
    assert refused(ChannelPayer.open_payload(signer, requirements, 500, ttl_s=10)).reason == (
        "channel_open_refused"
    )
    too_long = ChannelPayer.open_payload(signer, requirements, 500, ttl_s=40 * 86400)
    assert refused(too_long).reason == "channel_open_refused"
    elsewhere = requirements.model_copy(update={"network": "paywire:elsewhere"})
    wrong = good.model_copy(update={"accepted": elsewhere})
    assert refused(wrong).reason == "network_mismatch"
    self_paid = ChannelPayer.open_payload(
        signer, requirements.model_copy(update={"pay_to": payer.address}), 500
    )
    assert refused(self_paid).reason == "channel_open_refused"
    malformed = good.model_copy(update={"payload": {"type": "open"}})
    assert refused(malformed).status == 400
    assert available(books, payer) == 1_000 and held(books, payer) == 0


# ----- mandates bound deposits ---------------------------------------------------------------


def _chain(principal: PrivateKey, agent: PrivateKey, network: str, total: int) -> MandateChain:
    now = int(time.time())
    mandate = Mandate(
        issuer=principal.address,
        agent=agent.address,
        limits=(AssetLimit(network, "USDC", total, 10**9, ()),),
        valid_after=now - 60,
        valid_before=now + 3600,
    )
    return MandateChain((SignedMandate.sign(mandate, principal),))


def test_a_mandate_bounds_the_deposits_it_allows(books: Ledger, channels: LedgerChannels) -> None:
    principal, agent, shop = PrivateKey.generate(), PrivateKey.generate(), PrivateKey.generate()
    wallet(books, agent, 1_000_000)
    chain = _chain(principal, agent, books.network, 50_000)
    with pytest.raises(PaymentProblem) as past:
        asyncio.run(open_channel(channels, agent, shop.address, 60_000, mandate=chain))
    assert past.value.reason == "mandate_total_exceeded"
    channel = asyncio.run(open_channel(channels, agent, shop.address, 40_000, mandate=chain))
    # The deposit counts against the mandate while the channel is open...
    with pytest.raises(PaymentProblem) as second:
        asyncio.run(open_channel(channels, agent, shop.address, 20_000, mandate=chain))
    assert second.value.reason == "mandate_total_exceeded"
    # ...what is claimed stays spent; what the close gives back is free again.
    assert claim(channels, shop, channel, 10_000).ok
    assert claim(channels, shop, channel, 10_000, close=True).closed
    assert available(books, agent) == 1_000_000 - 10_000
    asyncio.run(open_channel(channels, agent, shop.address, 40_000, mandate=chain))
    with pytest.raises(PaymentProblem):
        asyncio.run(open_channel(channels, agent, shop.address, 1, mandate=chain))
    assert books.log.verify().ok


def test_a_revoked_mandate_ends_the_channel_at_its_next_claim(
    books: Ledger, channels: LedgerChannels
) -> None:
    principal, agent, shop = PrivateKey.generate(), PrivateKey.generate(), PrivateKey.generate()
    wallet(books, agent, 1_000_000)
    chain = _chain(principal, agent, books.network, 50_000)
    channel = asyncio.run(open_channel(channels, agent, shop.address, 30_000, mandate=chain))
    revocation = SignedRevocation.sign(
        Revocation(chain.mandates[0].mandate.id, principal.address, int(time.time())), principal
    )
    channels.mandates.mandates.revoke(chain, revocation)
    # The payee still gets what it charged (the deposit was authorized); the rest goes back.
    last = claim(channels, shop, channel, 4_000)
    assert last.ok and last.closed
    assert posted(books, shop) == 4_000 and held(books, agent) == 0
    with pytest.raises(PaymentProblem) as refused:
        asyncio.run(open_channel(channels, agent, shop.address, 1_000, mandate=chain))
    assert refused.value.reason == "mandate_revoked"
    assert books.log.verify().ok
