"""`LocalChain`: an EVM chain in this process (eth-tester with py-evm), for the demo and tests.

Every transaction is mined into its own block at once (instant finality), and the chain's
clock follows the wall clock: a transaction is stamped with the current time, and an empty
block is mined lazily when the latest one is older than `block_time_s`, so ``eth_call``
sees the time a real chain with blocks every second would show. Tests move time forward
with `advance_time` and add blocks with `mine`.

The chain lives in memory. `paywire serve` hosts it and serves it over JSON-RPC
(`paywire.chain.bridge`), which is how other processes reach it (as an `RpcChain`).

Its accounts are eth-tester's well-known development keys (1, 2, 3...), each funded with
a million ether: fine for virtual funds, never for anything else.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from web3 import EthereumTesterProvider, Web3

from paywire.chain.base._chain import DEFAULT_RECEIPT_TIMEOUT_S, Chain
from paywire.chain.errors import ChainError
from paywire.crypto import PrivateKey

LOCAL_CHAIN_ID = 131277322940537
"""eth-tester's chain id (fixed by the library; CAIP-2 ``eip155:131277322940537``)."""

DEV_ACCOUNTS = 10
"""Development keys eth-tester funds at genesis (private keys 1..10)."""

OPERATOR_FUNDS_WEI = 10**23
"""Native coin a custom operator gets from the first development key (a tenth of it)."""

DEFAULT_BLOCK_TIME_S = 1.0
"""At most this old is the latest block when something reads the chain (lazy mining)."""

MAX_BLOCK_TIME_S = 3600.0
"""A chain whose reads may be an hour stale is no use for time windows of minutes."""

MAX_MINE_BLOCKS = 10_000
"""Blocks one `mine` call may add (each is ~1 ms); more is a runaway loop in a test."""

MAX_TIME_TRAVEL_S = 10 * 366 * 24 * 3600
"""`advance_time` moves at most ten years at once: enough to expire anything."""

_UNCHARGED_METHODS = frozenset({"eth_call", "eth_estimateGas"})
_CALL_GAS_MONEY_WEI = 10**20
"""Lent to a call's sender for the duration of the call: the whole block's gas at 3000 gwei."""

LOCAL_IDLE_S = 0.01
"""What `wait` sleeps between polls here: blocks come from this process, not a network."""


def dev_key(index: int) -> PrivateKey:
    """eth-tester's development key number `index` (0-based; funded at genesis)."""
    if not isinstance(index, int) or not 0 <= index < DEV_ACCOUNTS:
        raise ChainError(f"development keys are numbered 0..{DEV_ACCOUNTS - 1}")
    return PrivateKey.from_bytes((index + 1).to_bytes(32, "big"))


class LocalChain(Chain):
    """An in-process, in-memory EVM chain (py-evm, Prague rules), always a demo chain.

    `operator` (default `dev_key(0)`) pays for gas by default and deploys tokens.
    """

    def __init__(
        self,
        *,
        operator: PrivateKey | None = None,
        block_time_s: float | None = DEFAULT_BLOCK_TIME_S,
        receipt_timeout_s: float = DEFAULT_RECEIPT_TIMEOUT_S,
    ) -> None:
        try:
            from eth_tester import (  # type: ignore[import-untyped]
                EthereumTester,
                PyEVMBackend,
            )
        except ImportError:
            raise ChainError(
                "the local chain needs the chain extra (pip install 'paywire[chain]')"
            ) from None
        if block_time_s is not None and not 0 < block_time_s <= MAX_BLOCK_TIME_S:
            raise ChainError(f"block_time_s must be in (0, {MAX_BLOCK_TIME_S}] seconds, or None")
        backend = PyEVMBackend()
        self._tester: Any = EthereumTester(backend)
        self._backend: Any = backend
        self._block_time_s = block_time_s
        provider = EthereumTesterProvider(self._tester)
        # No web3 middleware: results are formatted by the methods; the provider adds its own.
        w3 = Web3(provider, middleware=[])
        self._request = provider.request_func(w3, w3.middleware_onion)
        super().__init__(
            w3,
            chain_id=LOCAL_CHAIN_ID,
            demo=True,
            confirmations=1,
            receipt_timeout_s=receipt_timeout_s,
            lock=threading.RLock(),
        )
        actual = int(self._rpc(lambda w3: w3.eth.chain_id))
        if actual != LOCAL_CHAIN_ID:
            raise ChainError(f"eth-tester reports chain id {actual}, not {LOCAL_CHAIN_ID}")
        self.operator = operator if operator is not None else dev_key(0)
        """The key that pays for gas by default, deploys and (usually) owns the token."""
        self.known_gas_rules = True
        # eth-tester charges an eth_call's gas to its sender (geth does not), so calls that
        # name no sender come from a funded account.
        self._call_sender = dev_key(0).address
        if operator is not None and operator != dev_key(0):
            self.fund(operator.address, OPERATOR_FUNDS_WEI)

    def default_signer(self) -> PrivateKey:
        return self.operator

    # ----- test and demo controls ----------------------------------------------------------

    def mine(self, blocks: int = 1) -> int:
        """Mine `blocks` empty blocks; the new block number."""
        if not isinstance(blocks, int) or not 1 <= blocks <= MAX_MINE_BLOCKS:
            raise ChainError(f"mine 1..{MAX_MINE_BLOCKS} blocks at a time")
        with self._lock:
            self._tester.mine_blocks(blocks)
        return self.block_number()

    def advance_time(self, seconds: int) -> int:
        """Move the chain's clock `seconds` ahead of max(now, latest block) by mining a block
        there; the new timestamp. Later blocks keep counting from it."""
        if not isinstance(seconds, int) or not 1 <= seconds <= MAX_TIME_TRAVEL_S:
            raise ChainError(f"advance_time takes 1..{MAX_TIME_TRAVEL_S} whole seconds")
        with self._lock:
            start = max(int(time.time()), self._pending_timestamp())
            self._tester.time_travel(start + seconds)
        return self.timestamp()

    def fund(self, address: str, wei: int) -> str:
        """Send `wei` of the native coin from the first development key (for gas)."""
        receipt = self.transact(dev_key(0), address, b"", value=wei, gas=21_000)
        return receipt.tx_hash

    def snapshot(self) -> object:
        """A handle to the chain's state now, for `revert` (tests)."""
        with self._lock:
            return self._tester.take_snapshot()

    def revert(self, snapshot: object) -> None:
        """Go back to a `snapshot`: later blocks, transactions and contracts are gone."""
        # The nonce lock first, then the chain's: the order `send` takes them in.
        with self._nonce_lock, self._lock:
            self._tester.revert_to_snapshot(snapshot)
            self._next_nonce.clear()

    def rpc_request(self, method: str, params: list[Any]) -> dict[str, Any]:
        """Answer one JSON-RPC call as eth-tester would (for the bridge): the response
        object with ``result`` or ``error``; values are Python ints, bytes and text."""
        with self._lock:
            self._tick()
            if method == "eth_sendRawTransaction":
                self._before_send()
            try:
                response: dict[str, Any] = dict(self._request(method, params))
            except Exception as error:
                if method not in _UNCHARGED_METHODS or "cannot afford" not in str(error):
                    raise
                response = self._as_if_funded(method, params)
            return response

    def _as_if_funded(self, method: str, params: list[Any]) -> dict[str, Any]:
        """Run a call whose sender cannot pay for its gas the way geth does (calls cost
        nobody): fund the sender, answer, and roll the chain back to before the funding."""
        sender = params[0]["from"]
        snapshot = self._tester.take_snapshot()
        try:
            # eth-tester signs for its development keys; our nonce cache is not involved.
            self._tester.send_transaction(
                {
                    "from": dev_key(0).address,
                    "to": sender,
                    "value": _CALL_GAS_MONEY_WEI,
                    "gas": 21_000,
                }
            )
            return dict(self._request(method, params))
        finally:
            self._tester.revert_to_snapshot(snapshot)

    # ----- hooks ---------------------------------------------------------------------------

    def _rpc(self, operation: Any) -> Any:
        with self._lock:
            self._tick()
            return super()._rpc(operation)

    def _before_send(self) -> None:
        # The pending block was stamped when its parent was mined, maybe long ago; stamp it
        # now, so time windows (EIP-3009 validBefore) are judged at the real time.
        with self._lock:
            chain = self._backend.chain
            now = int(time.time())
            if chain.header.timestamp < now and not chain.get_block().transactions:
                chain.header = chain.header.copy(timestamp=now)

    def _idle(self) -> None:
        time.sleep(LOCAL_IDLE_S)

    def _tick(self) -> None:
        if self._block_time_s is None:
            return
        head = self._backend.chain.get_canonical_head()
        if time.time() - head.timestamp >= self._block_time_s:
            self._tester.mine_blocks(1)

    def _pending_timestamp(self) -> int:
        return int(self._backend.chain.header.timestamp)
