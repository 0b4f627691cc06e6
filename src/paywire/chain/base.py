"""`Chain`: an EVM chain reached through web3, with transactions signed by paywire keys.

The same class drives the in-process chain (`LocalChain`) and any JSON-RPC endpoint
(`RpcChain`); they differ in how they are built and in two switches: whether the chain is
paywire's local demo chain (where the faucet may mint virtual funds) and how long to wait
for receipts.

What this layer adds over web3: typed results (`Receipt`, `Log`), typed errors (a revert
carries the contract's reason), nonces handed out under a lock (so concurrent senders with
one key never collide), EIP-1559 fees where the chain has a base fee (legacy gas price
where it has not), and bounded waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from eth_abi.abi import encode as abi_encode
from eth_account import Account as EthAccount
from web3 import Web3
from web3.exceptions import (
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)

from paywire.chain._checks import UINT256_MAX, check_address
from paywire.chain.compile import CompiledContract
from paywire.chain.errors import (
    ChainError,
    ChainUnavailable,
    InvalidChainInput,
    NoSigner,
    TransactionPending,
    TransactionReverted,
)
from paywire.crypto import PrivateKey, to_checksum_address

if TYPE_CHECKING:
    from paywire.chain.token import Token

T = TypeVar("T")

GAS_MARGIN_NUMERATOR, GAS_MARGIN_DENOMINATOR = 5, 4
"""Send with 25% more gas than estimated: the estimate is exact for the state it ran on,
and a storage slot written first by another transaction can cost more."""

MAX_TX_GAS = 5_000_000
"""No paywire transaction needs more: deploying the token is the largest (~1.35M gas)."""

DEFAULT_PRIORITY_FEE_WEI = 1_000_000_000
"""The tip offered when the endpoint cannot suggest one (1 gwei, geth's default)."""

DEFAULT_RECEIPT_TIMEOUT_S = 120.0
"""How long `wait` waits for a receipt before `TransactionPending` (x402's official
facilitator waits 120 s too)."""

POLL_INTERVAL_S = 0.25
"""Between receipt and block polls on a remote chain: a few per block on a 2 s L2."""

MAX_LOG_BLOCK_RANGE = 5_000
"""Blocks per ``eth_getLogs`` request: common endpoints refuse wider ranges."""

MAX_CONFIRMATIONS = 1_000
"""A confirmation depth past this is a configuration mistake, not caution."""

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
"""``Error(string)``: how a revert with a reason is encoded."""


@dataclass(frozen=True, slots=True)
class Log:
    """An event log as a receipt or ``eth_getLogs`` reports it."""

    address: str
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """A mined transaction's receipt: `ok` is its status, `gas_used` what it cost."""

    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    gas_used: int
    effective_gas_price: int
    contract_address: str | None
    logs: tuple[Log, ...]

    @property
    def ok(self) -> bool:
        return self.status == 1


class Chain:
    """An EVM chain over a web3 connection. Build one with `LocalChain` or `RpcChain`.

    Thread-safe: reads may run concurrently (for `LocalChain` they are serialised by
    its lock); sends from one key take nonces in order.
    """

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

    # ----- writes --------------------------------------------------------------------------

    def send(
        self,
        key: PrivateKey,
        to: str | None,
        data: bytes,
        *,
        value: int = 0,
        gas: int | None = None,
        gas_bound: int | None = None,
    ) -> str:
        """Sign a transaction with `key` and broadcast it; its hash (0x-hex).

        Without `gas` the transaction is estimated first, so one that would revert is
        refused here (`TransactionReverted`) and never costs gas. `gas_bound` is a known
        upper bound of what the call needs: on a chain whose gas rules are known
        (`LocalChain`) the transaction is then simulated once and sent with that limit,
        instead of estimated (py-evm's estimate runs it a dozen times).
        """
        if not isinstance(key, PrivateKey):
            raise NoSigner("sending a transaction needs a paywire PrivateKey")
        if not isinstance(data, bytes):
            raise InvalidChainInput("transaction data is bytes")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= UINT256_MAX:
            raise InvalidChainInput("a transaction's value is a uint256 of wei")
        sender = key.address
        target = None if to is None else _cs(_address(to))
        self._before_send()
        if gas is None and gas_bound is not None and self.known_gas_rules and target is not None:
            # Reverts here, with the reason, for free; on the block the transaction joins.
            self.call(target, data, sender=sender, pending=True)
            gas = gas_bound
        if gas is None:
            gas = self.estimate_gas(sender, target, data, value=value)
        elif not 21_000 <= gas <= MAX_TX_GAS:
            raise ChainError(f"gas must be 21000..{MAX_TX_GAS}, not {gas}")
        fees = self._fees()
        with self._nonce_lock:
            nonce = max(self.nonce(sender), self._next_nonce.get(sender, 0))
            transaction: dict[str, Any] = {
                "chainId": self.chain_id,
                "nonce": nonce,
                "gas": gas,
                "value": value,
                "data": data,
                **fees,
            }
            if target is not None:
                transaction["to"] = target
            signed = EthAccount.sign_transaction(transaction, key.to_bytes())
            raw = bytes(signed.raw_transaction)
            try:
                tx_hash = self._rpc(lambda w3: w3.eth.send_raw_transaction(raw))
            except ChainError:
                self._next_nonce.pop(sender, None)  # unknown outcome: ask the chain next time
                raise
            self._next_nonce[sender] = nonce + 1
        return "0x" + bytes(tx_hash).hex()

    def estimate_gas(self, sender: str, to: str | None, data: bytes, *, value: int = 0) -> int:
        """Gas for the transaction, with `GAS_MARGIN`; `TransactionReverted` if it would
        revert, `ChainError` past `MAX_TX_GAS`."""
        params: dict[str, Any] = {"from": _cs(_address(sender)), "data": data, "value": value}
        if to is not None:
            params["to"] = _cs(_address(to))
        estimate = int(self._rpc(lambda w3: w3.eth.estimate_gas(cast(Any, params))))
        gas = estimate * GAS_MARGIN_NUMERATOR // GAS_MARGIN_DENOMINATOR
        if gas > MAX_TX_GAS:
            raise ChainError(
                f"the transaction needs {estimate} gas; paywire sends at most {MAX_TX_GAS}"
            )
        return gas

    def wait(
        self,
        tx_hash: str,
        *,
        confirmations: int | None = None,
        timeout_s: float | None = None,
    ) -> Receipt:
        """The receipt of `tx_hash` once it is `confirmations` blocks deep (default: the
        chain's). Raises `TransactionPending` past `timeout_s`; does not check the status."""
        depth = self.confirmations if confirmations is None else check_confirmations(confirmations)
        deadline = time.monotonic() + (self.receipt_timeout_s if timeout_s is None else timeout_s)
        while True:
            receipt = self.receipt(tx_hash)
            if receipt is not None and self.block_number() - receipt.block_number + 1 >= depth:
                if depth == 1:
                    return receipt
                # Deep enough: read it again, so a receipt from a dropped fork is not trusted.
                again = self.receipt(tx_hash)
                if again is not None and again.block_hash == receipt.block_hash:
                    return again
                continue
            if time.monotonic() >= deadline:
                state = "not mined" if receipt is None else f"mined, not {depth} blocks deep"
                raise TransactionPending(
                    f"transaction {tx_hash} is {state} yet; look it up later", tx_hash=tx_hash
                )
            self._idle()

    def transact(
        self,
        key: PrivateKey,
        to: str | None,
        data: bytes,
        *,
        value: int = 0,
        gas: int | None = None,
        gas_bound: int | None = None,
        confirmations: int | None = None,
    ) -> Receipt:
        """`send`, `wait`, and check that the transaction succeeded (`TransactionReverted`
        with its hash otherwise)."""
        tx_hash = self.send(key, to, data, value=value, gas=gas, gas_bound=gas_bound)
        receipt = self.wait(tx_hash, confirmations=confirmations)
        if not receipt.ok:
            raise TransactionReverted(f"transaction {tx_hash} reverted on chain", tx_hash=tx_hash)
        return receipt

    def deploy(
        self,
        key: PrivateKey,
        contract: CompiledContract,
        constructor_types: Sequence[str] = (),
        constructor_args: Sequence[object] = (),
    ) -> Receipt:
        """Deploy `contract` from `key`; the receipt names the new `contract_address`."""
        data = contract.bytecode + abi_encode(list(constructor_types), list(constructor_args))
        receipt = self.transact(key, None, data)
        if receipt.contract_address is None:
            raise ChainError(f"deployment {receipt.tx_hash} created no contract")
        return receipt

    def deploy_token(
        self,
        owner: str,
        *,
        deployer: PrivateKey | None = None,
        name: str | None = None,
        symbol: str | None = None,
        version: str | None = None,
    ) -> Token:
        """Deploy the Paywire USD stablecoin whose mint only `owner` may call.

        `deployer` pays the gas (on `LocalChain` it defaults to the funded operator).
        """
        from paywire.chain.compile import paywire_usd
        from paywire.chain.token import (
            PAYWIRE_USD_NAME,
            PAYWIRE_USD_SYMBOL,
            PAYWIRE_USD_VERSION,
            Token,
            check_token_text,
        )

        key = deployer if deployer is not None else self.default_signer()
        args = (
            check_token_text(PAYWIRE_USD_NAME if name is None else name, "name", 64),
            check_token_text(PAYWIRE_USD_SYMBOL if symbol is None else symbol, "symbol", 32),
            check_token_text(PAYWIRE_USD_VERSION if version is None else version, "version", 16),
            _cs(_address(owner)),
        )
        receipt = self.deploy(key, paywire_usd(), ("string", "string", "string", "address"), args)
        assert receipt.contract_address is not None
        return Token(self, receipt.contract_address)

    def token(self, address: str) -> Token:
        """The EIP-3009 token at `address` (its name and version are read once)."""
        from paywire.chain.token import Token

        return Token(self, address)

    def default_signer(self) -> PrivateKey:
        """The key that pays for gas when none is given (only `LocalChain` has one)."""
        raise NoSigner(f"{self.network} has no default signer; pass a key (deployer=...)")

    # ----- hooks and plumbing --------------------------------------------------------------

    def _before_send(self) -> None:
        """Called just before a transaction is broadcast (the local chain sets its clock)."""

    def _idle(self) -> None:
        """Wait a little for the chain to move (a remote chain: sleep)."""
        time.sleep(POLL_INTERVAL_S)

    def _rpc(self, operation: Callable[[Web3], T]) -> T:
        """Run one web3 operation under the chain's lock, mapping failures to typed errors."""
        with self._lock:
            return _translate(lambda: operation(self._w3))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.network})"

    def _fees(self) -> dict[str, int]:
        block = self._rpc(lambda w3: w3.eth.get_block("latest"))
        base_fee = block.get("baseFeePerGas")
        if base_fee is None:  # a chain before London: legacy pricing
            return {"gasPrice": int(self._rpc(lambda w3: w3.eth.gas_price))}
        try:
            tip = int(self._rpc(lambda w3: w3.eth.max_priority_fee))
        except ChainError:
            tip = DEFAULT_PRIORITY_FEE_WEI
        # Twice the base fee rides out six full blocks of +12.5% before the tx stalls.
        return {"maxFeePerGas": 2 * int(base_fee) + tip, "maxPriorityFeePerGas": tip}


ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

# Where the in-process chain's errors come from (eth-tester, py-evm, their eth_utils checks).
_LOCAL_CHAIN_MODULES = frozenset({"eth_tester", "eth", "eth_utils"})


def check_confirmations(value: object) -> int:
    """A confirmation depth: 1 (the including block) to `MAX_CONFIRMATIONS`."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_CONFIRMATIONS:
        raise ChainError(f"confirmations must be 1..{MAX_CONFIRMATIONS}, not {value!r}")
    return value


def revert_reason_from_data(data: bytes) -> str:
    """The reason of an ``Error(string)`` revert payload ("" for any other payload)."""
    if len(data) < 4 + 64 or data[:4] != ERROR_STRING_SELECTOR:
        return ""
    from eth_abi.abi import decode as abi_decode

    try:
        (reason,) = abi_decode(["string"], data[4:])
    except Exception:  # eth_abi raises several decoding errors; any means "no reason"
        return ""
    return str(reason)


def _translate(operation: Callable[[], T]) -> T:
    try:
        return operation()
    except ChainError:
        raise
    except ContractLogicError as error:
        reason = _reason_text(error.message or str(error))
        if not reason and isinstance(error.data, str) and error.data.startswith("0x"):
            try:
                reason = revert_reason_from_data(bytes.fromhex(error.data[2:]))
            except ValueError:
                reason = ""
        raise TransactionReverted(_reverted(reason), reason=reason) from None
    except (TimeExhausted, OSError) as error:  # requests' errors are OSErrors
        raise ChainUnavailable(f"the chain's RPC endpoint did not answer: {error}") from None
    except Web3RPCError as error:
        message = str(error.message if error.message else error)
        if "revert" in message:
            reason = _reason_text(message)
            raise TransactionReverted(_reverted(reason), reason=reason) from None
        raise ChainError(f"the chain refused the request: {message[:300]}") from None
    except Web3Exception as error:
        raise ChainError(f"web3 error: {str(error)[:300]}") from None
    except Exception as error:
        # eth-tester (the in-process chain) raises its own TransactionFailed for reverts.
        if type(error).__name__ == "TransactionFailed":
            reason = _reason_text(str(error))
            raise TransactionReverted(_reverted(reason), reason=reason) from None
        if type(error).__module__.split(".", 1)[0] in _LOCAL_CHAIN_MODULES:
            message = str(error)
            if "cannot afford" in message:
                raise ChainError(
                    "the sender cannot pay for gas: fund it with the chain's native coin "
                    f"({message[:200]})"
                ) from None
            raise ChainError(f"the local chain refused the request: {message[:300]}") from None
        raise


def _reverted(reason: str) -> str:
    return f"execution reverted: {reason}" if reason else "execution reverted (no reason given)"


def _reason_text(message: str) -> str:
    """The contract's reason out of an RPC message such as 'execution reverted: x'."""
    text = message.strip()
    for prefix in ("execution reverted:", "execution reverted", "VM Exception while processing"):
        if text.startswith(prefix):
            text = text[len(prefix) :].strip()
            break
    if text.startswith("revert"):
        text = text[len("revert") :].strip()
    return text


def _address(value: object) -> str:
    return check_address(value)


def _cs(address: str) -> Any:
    """An address as web3's ChecksumAddress (already checksummed by `parse_address`)."""
    return Web3.to_checksum_address(address)


def _tx_hash(value: object) -> str:
    if (
        not isinstance(value, str)
        or len(value) != 66
        or not value.startswith("0x")
        or not all(c in "0123456789abcdefABCDEF" for c in value[2:])
    ):
        raise ChainError("a transaction hash is 0x and 64 hex digits")
    return value.lower()


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex()


def _log(raw: Any) -> Log:
    return Log(
        address=to_checksum_address(str(raw["address"])),
        topics=tuple(bytes(topic) for topic in raw["topics"]),
        data=bytes(raw["data"]),
        block_number=int(raw["blockNumber"]),
        tx_hash=_hex(raw["transactionHash"]),
        log_index=int(raw["logIndex"]),
    )


def _receipt(raw: Any) -> Receipt:
    contract = raw.get("contractAddress")
    return Receipt(
        tx_hash=_hex(raw["transactionHash"]),
        block_number=int(raw["blockNumber"]),
        block_hash=_hex(raw["blockHash"]),
        status=int(raw["status"]),
        gas_used=int(raw["gasUsed"]),
        effective_gas_price=int(raw.get("effectiveGasPrice") or 0),
        contract_address=None if not contract else to_checksum_address(str(contract)),
        logs=tuple(_log(item) for item in raw["logs"]),
    )
