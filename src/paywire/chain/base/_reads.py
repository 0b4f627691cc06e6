"""`ChainReads`: the web3 connection beneath `Chain`, and what it reads: blocks,
balances, code, calls, logs, receipts and nonces."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal, TypeVar, cast

from web3 import Web3
from web3.exceptions import TransactionNotFound

from paywire.chain.base._failures import _translate
from paywire.chain.base._values import Log, Receipt, _address, _cs, _log, _receipt, _tx_hash
from paywire.chain.errors import ChainError

T = TypeVar("T")

MAX_LOG_BLOCK_RANGE = 5_000
"""Blocks per ``eth_getLogs`` request: common endpoints refuse wider ranges."""

MAX_CONFIRMATIONS = 1_000
"""A confirmation depth past this is a configuration mistake, not caution."""


class ChainReads:
    """What `Chain` is built on: its connection, one web3 operation at a time under the
    chain's lock with failures mapped to typed errors, and its reads."""

    def __init__(
        self,
        w3: Web3,
        *,
        chain_id: int,
        demo: bool,
        confirmations: int,
        receipt_timeout_s: float,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self._w3 = w3
        self.chain_id = chain_id
        """The EIP-155 chain id."""
        self.network = f"eip155:{chain_id}"
        """The chain as a CAIP-2 network id, as x402 names it."""
        self.is_demo = demo
        """True on paywire's local chain (in-process or bridged): the faucet may mint."""
        self.confirmations = check_confirmations(confirmations)
        """Default confirmation depth: 1 means the block holding the transaction."""
        self.receipt_timeout_s = receipt_timeout_s
        self._lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self._nonce_lock = threading.Lock()
        self._next_nonce: dict[str, int] = {}
        self.known_gas_rules = False
        """Whether this chain's gas costs are those paywire measured (its own local chain):
        then a `gas_bound` replaces the estimate."""
        self._call_sender: str | None = None
        """The ``from`` of calls that name none (None: the node's default)."""

    # ----- reads ---------------------------------------------------------------------------

    def block_number(self) -> int:
        """The number of the latest block."""
        return int(self._rpc(lambda w3: w3.eth.block_number))

    def timestamp(self) -> int:
        """The latest block's timestamp (unix seconds): the chain's idea of now."""
        block = self._rpc(lambda w3: w3.eth.get_block("latest"))
        return int(block["timestamp"])

    def native_balance(self, address: str) -> int:
        """The native coin balance (wei) of `address`: what pays for gas."""
        checked = _address(address)
        return int(self._rpc(lambda w3: w3.eth.get_balance(_cs(checked))))

    def code(self, address: str) -> bytes:
        """The code at `address` (empty for a key's account)."""
        checked = _address(address)
        return bytes(self._rpc(lambda w3: w3.eth.get_code(_cs(checked))))

    def call(
        self, to: str, data: bytes, *, sender: str | None = None, pending: bool = False
    ) -> bytes:
        """``eth_call``: run `data` against `to` without a transaction; the return data.

        On the latest block, or with `pending` on the block being built (its timestamp is
        the one a transaction sent now gets). Raises `TransactionReverted` with the
        contract's reason when it reverts.
        """
        params: dict[str, Any] = {"to": _cs(_address(to)), "data": data}
        caller = sender if sender is not None else self._call_sender
        if caller is not None:
            params["from"] = _cs(_address(caller))
        block: Literal["pending", "latest"] = "pending" if pending else "latest"
        return bytes(self._rpc(lambda w3: w3.eth.call(cast(Any, params), block)))

    def logs(
        self,
        *,
        address: str,
        topics: Sequence[bytes | None],
        from_block: int,
        to_block: int,
    ) -> list[Log]:
        """Logs of contract `address` matching `topics` (None matches any) in
        [from_block, to_block], fetched in ranges of at most `MAX_LOG_BLOCK_RANGE`."""
        checked = _cs(_address(address))
        if from_block < 0 or to_block < from_block:
            return []
        topic_filter = ["0x" + t.hex() if t is not None else None for t in topics]
        found: list[Log] = []
        start = from_block
        while start <= to_block:
            end = min(to_block, start + MAX_LOG_BLOCK_RANGE - 1)
            query = {
                "address": checked,
                "fromBlock": start,
                "toBlock": end,
                "topics": topic_filter,
            }
            found.extend(_log(item) for item in self._get_logs(query))
            start = end + 1
        found.sort(key=lambda log: (log.block_number, log.log_index))
        return found

    def _get_logs(self, query: dict[str, Any]) -> list[Any]:
        return list(self._rpc(lambda w3: w3.eth.get_logs(cast(Any, query))))

    def receipt(self, tx_hash: str) -> Receipt | None:
        """The receipt of a mined transaction, or None while it is not mined (or unknown)."""
        checked = _tx_hash(tx_hash)

        def fetch(w3: Web3) -> Any:
            try:
                return w3.eth.get_transaction_receipt(cast(Any, checked))
            except TransactionNotFound:
                return None

        raw = self._rpc(fetch)
        return None if raw is None else _receipt(raw)

    def nonce(self, address: str) -> int:
        """The next nonce of `address`, counting its pending transactions."""
        checked = _cs(_address(address))
        return int(self._rpc(lambda w3: w3.eth.get_transaction_count(checked, "pending")))

    # ----- plumbing ------------------------------------------------------------------------

    def _rpc(self, operation: Callable[[Web3], T]) -> T:
        """Run one web3 operation under the chain's lock, mapping failures to typed errors."""
        with self._lock:
            return _translate(lambda: operation(self._w3))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.network})"


def check_confirmations(value: object) -> int:
    """A confirmation depth: 1 (the including block) to `MAX_CONFIRMATIONS`."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_CONFIRMATIONS:
        raise ChainError(f"confirmations must be 1..{MAX_CONFIRMATIONS}, not {value!r}")
    return value
