"""Rolling windows, as a property of the engine alone (no store, so many examples are cheap).

Random transfers, holds, posts, voids and expiries against one windowed limit, with time
jumping by random amounts. After every step:

- sound: no true window [s - window, s] ending at any charge holds more than the cap
  (a charge counts at its time with what is left of it: a voided or expired hold nothing,
  a posted one what was posted);
- conservative by at most one bucket: a refusal at time t is justified by the charges in
  (t - window - bucket, t];
- exact about its buckets: what the engine counts is the sum of the charges whose bucket
  overlaps the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import event, given, settings
from hypothesis import strategies as st

from paywire.ledger import (
    AccountKind,
    LimitExceeded,
    NewAccount,
    NewLimit,
    PendingExpired,
    hold,
    post,
    transfer,
    void,
)
from paywire.ledger.engine import Engine
from paywire.ledger.model import WINDOW_SLOTS, bucket_seconds, window_span
from paywire.ledger.state import AccountState, LimitState, TransferState
from paywire.money import USDC

NS = 1_000_000_000
START = 1_800_000_000 * NS


class _Nothing:
    """An empty store: the engine holds everything in memory."""

    def load_accounts(self, ids: Sequence[str]) -> dict[str, AccountState]:
        return {}

    def load_transfers(self, ids: Sequence[str]) -> dict[str, TransferState]:
        return {}

    def load_limits(self, ids: Sequence[str]) -> dict[str, LimitState]:
        return {}

    def load_accounts_and_limits(
        self, account_ids: Sequence[str], limit_ids: Sequence[str]
    ) -> tuple[dict[str, AccountState], dict[str, LimitState]]:
        return {}, {}

    def entry(self, index: int) -> bytes | None:
        return None


@dataclass
class Charge:
    at: int
    amount: int
    hold_id: str | None = None


steps = st.lists(
    st.tuples(
        st.sampled_from(["pay", "pay", "hold", "hold", "post", "void", "expire"]),
        st.integers(1, 40),  # amount, or which hold
        st.sampled_from([0, 0, 1, 10**6, NS // 3, NS, 7 * NS, 59 * NS, 61 * NS, 3601 * NS]),
    ),
    min_size=10,
    max_size=150,
)


@settings(max_examples=500, deadline=None)
@given(window_s=st.sampled_from([1, 2, 7, 60, 119, 3600]), cap=st.integers(1, 400), ops=steps)
def test_windows_are_sound_and_at_most_a_bucket_conservative(
    window_s: int, cap: int, ops: list[tuple[str, int, int]]
) -> None:
    now = [START + 123_456_789]
    engine = Engine(_Nothing(), next_index=0, last_timestamp=0, clock=lambda: now[0])
    engine.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    engine.open_account(NewAccount("shop", USDC, AccountKind.PROVIDER))
    engine.open_limit(NewLimit("w", USDC, cap, window_s))
    window, bucket = window_s * NS, bucket_seconds(window_s) * NS
    charges: list[Charge] = []
    holds: dict[str, Charge] = {}
    for number, (op, size, step) in enumerate(ops):
        now[0] += step
        tid = f"t{number}"
        if op in ("pay", "hold"):
            make = transfer if op == "pay" else hold
            options = {"timeout_s": 1 + size % 5} if op == "hold" else {}
            request = make(tid, "world", "shop", USDC.atomic(size), limits=["w"], **options)
            at = max(now[0], engine.last_timestamp + 1)
            counted = sum(c.amount for c in charges if at - window - bucket < c.at <= at)
            try:
                done = engine.submit([request], linked=False)[0]
            except LimitExceeded as error:
                assert error.used + size > cap
                assert counted + size > cap, "refused beyond one bucket of conservatism"
                inside = sum(c.amount for c in charges if at - window <= c.at <= at)
                event("refused" if inside + size > cap else "refused by the bucket's margin")
                continue
            charge = Charge(done.timestamp, size, tid if op == "hold" else None)
            charges.append(charge)
            if op == "hold":
                holds[tid] = charge
        elif holds:
            hold_id = sorted(holds)[size % len(holds)]
            charge = holds.pop(hold_id)
            try:
                if op == "expire":
                    engine.expire(hold_id)
                    charge.amount = 0
                elif op == "void":
                    engine.submit([void(tid, hold_id)], linked=False)
                    charge.amount = 0
                else:
                    kept = 1 + size % charge.amount
                    engine.submit([post(tid, hold_id, USDC.atomic(kept))], linked=False)
                    charge.amount = kept
            except PendingExpired:
                engine.expire(hold_id)
                charge.amount = 0
            except Exception as error:  # an expire of a hold not yet due: it stays pending
                assert op == "expire", error
                holds[hold_id] = charge
        engine.forget_batch()
        # Sound: every true window ending at a charge holds at most the cap.
        for end in charges:
            inside = sum(c.amount for c in charges if end.at - window <= c.at <= end.at)
            assert inside <= cap, f"{inside} in the window ending at {end.at}"
        # Exact about buckets: the engine counts the charges of the buckets it overlaps.
        limit = engine.limit("w")
        assert limit is not None
        at = max(now[0], engine.last_timestamp)
        first, last = window_span(window_s, at)
        expected = sum(c.amount for c in charges if first <= c.at // bucket <= last)
        assert limit.used_at(at) == expected
        assert limit.used_total == sum(c.amount for c in charges)
        assert len(limit.slots) <= WINDOW_SLOTS
    event(f"{len(charges) // 10 * 10}+ charges")
