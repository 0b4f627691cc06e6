"""`Chain`: what `ChainReads` reads, and transactions signed by paywire keys: nonces handed
out under a lock, EIP-1559 fees (a legacy gas price where the chain has no base fee), gas
estimated with a margin, bounded waits for receipts, and deployments."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from eth_abi.abi import encode as abi_encode
from eth_account import Account as EthAccount

from paywire.chain._checks import UINT256_MAX
from paywire.chain.base._reads import ChainReads, check_confirmations
from paywire.chain.base._values import Receipt, _address, _cs
from paywire.chain.compile import CompiledContract
from paywire.chain.errors import (
    ChainError,
    InvalidChainInput,
    NoSigner,
    TransactionPending,
    TransactionReverted,
)
from paywire.crypto import PrivateKey

if TYPE_CHECKING:
    from paywire.chain.token._authorization import Token

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


class Chain(ChainReads):
    """An EVM chain over a web3 connection. Build one with `LocalChain` or `RpcChain`.

    Thread-safe: reads may run concurrently (for `LocalChain` they are serialised by
    its lock); sends from one key take nonces in order.
    """

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
        from paywire.chain.token._authorization import Token
        from paywire.chain.token._contract import (
            PAYWIRE_USD_NAME,
            PAYWIRE_USD_SYMBOL,
            PAYWIRE_USD_VERSION,
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
        from paywire.chain.token._authorization import Token

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
