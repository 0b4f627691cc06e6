"""Splitting a reward among contributors, in exact integer arithmetic.

A split maps contributor addresses either all to whole *parts* (positive ints) or all to
`Amount`s:

- Amounts must be of the reward's asset and sum to the reward exactly, or the split is
  refused (`InvalidTask`) before any money moves.
- Parts share the reward in proportion: each contributor gets
  ``floor(reward * part / total_parts)``; the atomic units left over (fewer than the number
  of contributors) go one each to the contributors with the largest remainders
  ``(reward * part) % total_parts``, ties broken by checksummed address (ascending). The
  shares always sum to the reward exactly. (The largest-remainder, or Hamilton, method.)

A contributor whose share comes to zero gets no transfer (the ledger moves no zeros).
"""

from __future__ import annotations

from collections.abc import Mapping

from paywire.crypto.keys import parse_address
from paywire.money import Amount
from paywire.tasks.model import InvalidTask


def normalize_addresses(mapping: Mapping[str, object], what: str) -> dict[str, object]:
    """The mapping keyed by checksummed addresses (two spellings of one address: refused)."""
    out: dict[str, object] = {}
    for address, value in mapping.items():
        key = parse_address(address)
        if key in out:
            raise InvalidTask(f"{what} names {key} twice")
        out[key] = value
    return out


def split_reward(reward: Amount, split: Mapping[str, int | Amount]) -> dict[str, Amount]:
    """Each contributor's share of `reward`, by checksummed address, in address order."""
    shares = normalize_addresses(split, "the split")
    if not shares:
        raise InvalidTask("a split names at least one contributor")
    values = list(shares.values())
    if all(isinstance(value, Amount) for value in values):
        return _split_amounts(reward, shares)
    if all(isinstance(value, int) and not isinstance(value, bool) for value in values):
        return _split_parts(reward, shares)
    raise InvalidTask("a split is all whole parts (ints) or all Amounts, not a mix")


def _split_amounts(reward: Amount, shares: dict[str, object]) -> dict[str, Amount]:
    out: dict[str, Amount] = {}
    for address in sorted(shares):
        amount = shares[address]
        assert isinstance(amount, Amount)
        if amount.asset != reward.asset:
            raise InvalidTask(f"the share of {address} is not in {reward.asset.code}")
        if amount.atomic <= 0:
            raise InvalidTask(f"the share of {address} must be more than zero")
        out[address] = amount
    total = sum(amount.atomic for amount in out.values())
    if total != reward.atomic:
        raise InvalidTask(
            f"the shares sum to {total} atomic units, not the reward's {reward.atomic}"
        )
    return out


def _split_parts(reward: Amount, shares: dict[str, object]) -> dict[str, Amount]:
    parts: dict[str, int] = {}
    for address in sorted(shares):
        part = shares[address]
        assert isinstance(part, int)
        if part <= 0:
            raise InvalidTask(f"the part of {address} must be a positive whole number")
        parts[address] = part
    total_parts = sum(parts.values())
    atomic = {address: reward.atomic * part // total_parts for address, part in parts.items()}
    left = reward.atomic - sum(atomic.values())
    by_remainder = sorted(parts, key=lambda a: (-(reward.atomic * parts[a] % total_parts), a))
    for address in by_remainder[:left]:
        atomic[address] += 1
    assert sum(atomic.values()) == reward.atomic
    return {address: Amount(value, reward.asset) for address, value in atomic.items()}
