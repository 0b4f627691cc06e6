"""The token's spent EIP-3009 nonces, learned from its events, block after block.

Every ``transferWithAuthorization`` and ``receiveWithAuthorization`` emits
``AuthorizationUsed(authorizer, nonce)``, every ``cancelAuthorization``
``AuthorizationCanceled``: the set of those events since block S is the set of nonces
spent since S. The history answers "is this nonce spent?" with no chain call for an
authorization that can only have been used after S: always when S is the chain's first
block (the history is complete), else when its ``validAfter`` is at or after the
timestamp of the block before S (the token refuses the authorization in any block up to
``validAfter``). For any other authorization (the official x402 client signs
``validAfter = 0``) the view reads ``authorizationState`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paywire.chain.view_reads import UsedNonce


class NonceHistory:
    """Spent nonces of one token. Not thread-safe: the view calls it under its lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        """Nonces remembered at most; past it the history is dropped (`enabled` False) and
        every nonce is read from the chain."""
        self.enabled = limit > 0
        self.started = False
        self.from_block = 0
        """The first block whose events are in the history."""
        self.since_time: int | None = None
        """The timestamp of the block before `from_block` (None: the history is complete,
        from the chain's first block)."""
        self.to_block = -1
        """The last block whose events are in the history."""
        self._spent: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._spent)

    def covers(self, valid_after: int) -> bool:
        """Whether the history alone says if an authorization valid after `valid_after` is
        spent."""
        if not self.enabled or not self.started:
            return False
        return self.since_time is None or valid_after >= self.since_time

    def is_spent(self, payer: str, nonce: bytes) -> bool:
        return _key(payer, nonce) in self._spent

    def start(
        self, events: Iterable[UsedNonce], *, from_block: int, to_block: int, since: int | None
    ) -> None:
        """Begin with the events of blocks [from_block, to_block]."""
        self.started = True
        self.from_block, self.since_time, self.to_block = from_block, since, -1
        self.extend(events, to_block=to_block)

    def extend(self, events: Iterable[UsedNonce], *, to_block: int) -> None:
        """Add the events up to `to_block` (re-read blocks are harmless: a set)."""
        if not self.enabled:
            return
        for event in events:
            self._spent.add(_key(event.authorizer, event.nonce))
        self.to_block = to_block
        if len(self._spent) > self.limit:
            self.enabled = False
            self._spent.clear()


def _key(payer: str, nonce: bytes) -> bytes:
    return bytes.fromhex(payer[2:]) + nonce
