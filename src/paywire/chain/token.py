"""`Token`: a typed handle on an EIP-3009 stablecoin (Paywire USD, or USDC on a real chain).

Reads (balances, authorization state), ERC-20 writes, the owner's mint and the local-only
faucet, EIP-3009 signing on paywire's fast EIP-712 path, simulation of a
``transferWithAuthorization`` for verify (``eth_call``: ok, or the revert reason and its
x402 error code), and settlement with a receipt check that the Transfer event moved
exactly the authorized value from the payer to the payee.

Calls are encoded with eth_abi against fixed selectors (no web3 contract objects: they
cost more per call than the call itself on the hot path of verify).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode

from paywire.chain._checks import check_address, check_amount, check_nonce
from paywire.chain.base import Chain, Log, Receipt
from paywire.chain.eip3009 import (
    CANCEL_AUTHORIZATION,
    RECEIVE_WITH_AUTHORIZATION,
    Authorization,
    AuthorizationKind,
    new_nonce,
    split_signature,
    token_domain,
)
from paywire.chain.errors import (
    ChainError,
    FaucetRefused,
    InvalidAuthorization,
    InvalidChainInput,
    TransactionReverted,
    TransferMismatch,
)
from paywire.crypto import (
    TRANSFER_WITH_AUTHORIZATION,
    PrivateKey,
    TypedMessage,
    keccak256,
    to_checksum_address,
)

PAYWIRE_USD_NAME = "Paywire USD"
"""The local stablecoin's EIP-712 name (x402 ``extra.name``)."""

PAYWIRE_USD_SYMBOL = "USDC"
"""Its symbol: the ledger's dollar asset, so deposits land in ``<address>:USDC`` accounts."""

PAYWIRE_USD_VERSION = "2"
"""Its EIP-712 version (x402 ``extra.version``), "2" as USDC's."""

TOKEN_DECIMALS = 6
"""Atomic units per dollar: 10**6, as USDC."""

DEFAULT_VALIDITY_S = 300
"""How long a fresh authorization stays valid (x402's default ``maxTimeoutSeconds``)."""

MAX_VALIDITY_S = 366 * 24 * 3600
"""An authorization valid longer than a year is a standing permission, not a payment."""

MAX_FAUCET_ATOMIC = 10**6 * 10**TOKEN_DECIMALS
"""The faucet mints at most a million dollars of virtual funds per call."""

MAX_TOKEN_TEXT_BYTES = 64
"""Token name, symbol and version are short labels (the contract stores String[64])."""

TRANSFER_TOPIC = keccak256(b"Transfer(address,address,uint256)")
"""topic0 of the ERC-20 Transfer event."""

AUTHORIZATION_USED_TOPIC = keccak256(b"AuthorizationUsed(address,bytes32)")
"""topic0 of EIP-3009's AuthorizationUsed event."""

AUTHORIZATION_CANCELED_TOPIC = keccak256(b"AuthorizationCanceled(address,bytes32)")

_AUTH_TYPES = [
    "address",
    "address",
    "uint256",
    "uint256",
    "uint256",
    "bytes32",
    "uint8",
    "bytes32",
    "bytes32",
]


def _selector(signature: str) -> bytes:
    return keccak256(signature.encode("ascii"))[:4]


_SELECTORS = {
    name: _selector(signature)
    for name, signature in {
        "name": "name()",
        "symbol": "symbol()",
        "version": "version()",
        "decimals": "decimals()",
        "owner": "owner()",
        "totalSupply": "totalSupply()",
        "balanceOf": "balanceOf(address)",
        "allowance": "allowance(address,address)",
        "authorizationState": "authorizationState(address,bytes32)",
        "DOMAIN_SEPARATOR": "DOMAIN_SEPARATOR()",
        "transfer": "transfer(address,uint256)",
        "transferFrom": "transferFrom(address,address,uint256)",
        "approve": "approve(address,uint256)",
        "mint": "mint(address,uint256)",
        "transferWithAuthorization": "transferWithAuthorization("
        "address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",
        "receiveWithAuthorization": "receiveWithAuthorization("
        "address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",
        "cancelAuthorization": "cancelAuthorization(address,bytes32,uint8,bytes32,bytes32)",
    }.items()
}

GAS_BOUNDS = {
    "transferWithAuthorization": 150_000,
    "receiveWithAuthorization": 150_000,
    "cancelAuthorization": 100_000,
    "transfer": 100_000,
    "transferFrom": 100_000,
    "approve": 100_000,
    "mint": 100_000,
}
"""Gas limits for Paywire USD's calls on the local chain, about twice the most measured
(a cold transferWithAuthorization uses ~82k, a cold transfer ~52k): unused gas is not paid."""

# Contract revert reasons (ours, and USDC's wording, which ours follows) -> x402 error codes.
_REVERT_CODES: tuple[tuple[str, str], ...] = (
    ("authorization is expired", "invalid_exact_evm_payload_authorization_valid_before"),
    ("authorization is not yet valid", "invalid_exact_evm_payload_authorization_valid_after"),
    ("authorization is used", "invalid_exact_evm_nonce_already_used"),
    ("transfer amount exceeds balance", "invalid_exact_evm_insufficient_balance"),
    ("invalid signature", "invalid_exact_evm_payload_signature"),
    ("caller must be the payee", "invalid_exact_evm_payload_recipient_mismatch"),
)
SIMULATION_FAILED = "invalid_exact_evm_transaction_simulation_failed"
"""x402's reason for a simulation that failed for a reason it does not name."""


def revert_code(reason: str) -> str:
    """The x402 error code for a token revert reason (`SIMULATION_FAILED` if unknown)."""
    lowered = reason.lower()
    for fragment, code in _REVERT_CODES:
        if fragment in lowered:
            return code
    return SIMULATION_FAILED


def check_token_text(value: object, what: str, limit: int) -> str:
    """A token name, symbol or version: printable text of 1..`limit` bytes."""
    if (
        not isinstance(value, str)
        or not value
        or not value.isprintable()
        or len(value.encode("utf-8", "surrogatepass")) > min(limit, MAX_TOKEN_TEXT_BYTES)
    ):
        raise ChainError(f"the token {what} must be printable text of 1-{limit} bytes")
    return value


@dataclass(frozen=True, slots=True)
class Simulation:
    """What a ``transferWithAuthorization`` would do now: `ok`, or why not (`reason` as the
    contract said it, `code` as x402 names it)."""

    ok: bool
    reason: str = ""
    code: str = ""


@dataclass(frozen=True, slots=True)
class TransferLog:
    """An ERC-20 Transfer event: `value` atomic units `from_` -> `to`."""

    from_: str
    to: str
    value: int
    block_number: int
    tx_hash: str
    log_index: int


class Token:
    """The EIP-3009 token at `address` on `chain`.

    Its name, symbol, version and decimals are read once, here; the EIP-712 `domain`
    follows from them, the chain id and the address.
    """

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = check_address(address, "token address")
        if not chain.code(self.address):
            raise ChainError(f"no contract at {self.address} on {chain.network}")
        self.name = self._read_text("name")
        self.symbol = self._read_text("symbol")
        self.version = self._read_text("version")
        self.decimals = self._read_uint("decimals")
        self.domain = token_domain(self.name, self.version, chain.chain_id, self.address)
        """The token's EIP-712 domain: what authorizations are signed for."""
        self._messages = {
            AuthorizationKind.TRANSFER: TypedMessage(self.domain, TRANSFER_WITH_AUTHORIZATION),
            AuthorizationKind.RECEIVE: TypedMessage(self.domain, RECEIVE_WITH_AUTHORIZATION),
        }
        self._cancel = TypedMessage(self.domain, CANCEL_AUTHORIZATION)

    def __repr__(self) -> str:
        return f"Token({self.symbol} at {self.address} on {self.chain.network})"

    @property
    def extra(self) -> dict[str, str]:
        """The x402 ``extra`` of a payment requirement in this token: name and version."""
        return {"name": self.name, "version": self.version}

    # ----- reads ---------------------------------------------------------------------------

    def balance_of(self, address: str) -> int:
        """`address`'s balance in atomic units."""
        return self._read_uint("balanceOf", ["address"], [_addr(address)])

    def total_supply(self) -> int:
        return self._read_uint("totalSupply")

    def allowance(self, owner: str, spender: str) -> int:
        return self._read_uint("allowance", ["address", "address"], [_addr(owner), _addr(spender)])

    def owner(self) -> str:
        """Who may mint."""
        (value,) = abi_decode(["address"], self._call("owner"))
        return to_checksum_address(str(value))

    def authorization_state(self, authorizer: str, nonce: bytes) -> bool:
        """Whether `authorizer`'s `nonce` was used or canceled (EIP-3009 replay guard)."""
        data = self._call(
            "authorizationState", ["address", "bytes32"], [_addr(authorizer), _nonce(nonce)]
        )
        (used,) = abi_decode(["bool"], data)
        return bool(used)

    def domain_separator(self) -> bytes:
        """The contract's own ``DOMAIN_SEPARATOR()`` (equals ``domain.separator``)."""
        (value,) = abi_decode(["bytes32"], self._call("DOMAIN_SEPARATOR"))
        return bytes(value)

    # ----- ERC-20 writes -------------------------------------------------------------------

    def transfer(self, key: PrivateKey, to: str, amount: int) -> Receipt:
        """Move `amount` from `key`'s address to `to`."""
        return self._transact(key, "transfer", ["address", "uint256"], [_addr(to), _amt(amount)])

    def approve(self, key: PrivateKey, spender: str, amount: int) -> Receipt:
        return self._transact(
            key, "approve", ["address", "uint256"], [_addr(spender), _amt(amount)]
        )

    def transfer_from(self, key: PrivateKey, from_: str, to: str, amount: int) -> Receipt:
        """Move `amount` from `from_` to `to` on `key`'s allowance."""
        return self._transact(
            key,
            "transferFrom",
            ["address", "address", "uint256"],
            [_addr(from_), _addr(to), _amt(amount)],
        )

    def mint(self, key: PrivateKey, to: str, amount: int) -> Receipt:
        """Create `amount` for `to`; only the owner's key may (others revert)."""
        return self._transact(key, "mint", ["address", "uint256"], [_addr(to), _amt(amount)])

    def faucet(self, to: str, amount: int, *, key: PrivateKey | None = None) -> Receipt:
        """Mint virtual funds to `to`: demo mode on paywire's local chain only.

        `key` (the token's owner) defaults to the chain's default signer (the local
        operator). Refused, with `FaucetRefused`, on any other chain.
        """
        if not self.chain.is_demo:
            raise FaucetRefused(
                f"the faucet is a demo mode with virtual funds; refused on {self.chain.network}, "
                "which is not paywire's local chain"
            )
        check_amount(amount, "faucet amount", bound=MAX_FAUCET_ATOMIC)
        if amount == 0:
            raise InvalidChainInput("the faucet mints at least 1 atomic unit")
        return self.mint(self.chain.default_signer() if key is None else key, to, amount)

    # ----- EIP-3009: signing (no chain call) -----------------------------------------------

    def authorization(
        self,
        from_: str,
        to: str,
        value: int,
        *,
        valid_after: int = 0,
        valid_before: int | None = None,
        valid_for_s: int = DEFAULT_VALIDITY_S,
        nonce: bytes | None = None,
    ) -> Authorization:
        """An authorization with a fresh random nonce, valid until now + `valid_for_s`
        (wall clock) unless `valid_before` is given."""
        if valid_before is None:
            if not isinstance(valid_for_s, int) or not 1 <= valid_for_s <= MAX_VALIDITY_S:
                raise InvalidChainInput(f"valid_for_s must be 1..{MAX_VALIDITY_S} seconds")
            valid_before = int(time.time()) + valid_for_s
        return Authorization(
            from_=from_,
            to=to,
            value=value,
            valid_after=valid_after,
            valid_before=valid_before,
            nonce=new_nonce() if nonce is None else nonce,
        )

    def sign(
        self,
        key: PrivateKey,
        authorization: Authorization,
        kind: AuthorizationKind = AuthorizationKind.TRANSFER,
    ) -> bytes:
        """`key`'s 65-byte signature of the authorization for this token (fast path)."""
        if key.address != authorization.from_:
            raise InvalidAuthorization(
                f"the key of {key.address} cannot sign for {authorization.from_}"
            )
        return self._messages[kind].sign(authorization.message(), key)

    def sign_transfer(self, key: PrivateKey, authorization: Authorization) -> bytes:
        """Sign a ``TransferWithAuthorization`` (what x402 ``exact`` carries)."""
        return self.sign(key, authorization, AuthorizationKind.TRANSFER)

    def sign_receive(self, key: PrivateKey, authorization: Authorization) -> bytes:
        """Sign a ``ReceiveWithAuthorization`` (a deposit only the payee can submit)."""
        return self.sign(key, authorization, AuthorizationKind.RECEIVE)

    def sign_cancel(self, key: PrivateKey, nonce: bytes) -> bytes:
        """Sign a ``CancelAuthorization`` of `key`'s unused `nonce`."""
        return self._cancel.sign({"authorizer": key.address, "nonce": _nonce(nonce)}, key)

    def recover(
        self,
        authorization: Authorization,
        signature: bytes | str,
        kind: AuthorizationKind = AuthorizationKind.TRANSFER,
    ) -> str:
        """Who signed the authorization (checksummed)."""
        return self._messages[kind].recover(authorization.message(), signature)

    def typed_data(
        self,
        authorization: Authorization,
        kind: AuthorizationKind = AuthorizationKind.TRANSFER,
    ) -> dict[str, object]:
        """The full EIP-712 typed data (``eth_signTypedData_v4`` / eth_account form)."""
        message = authorization.message()
        message["nonce"] = "0x" + authorization.nonce.hex()
        return self._messages[kind].full_message(message)

    # ----- EIP-3009: on chain --------------------------------------------------------------

    def simulate_transfer_with_authorization(
        self,
        authorization: Authorization,
        signature: bytes | str,
        *,
        sender: str | None = None,
    ) -> Simulation:
        """Run ``transferWithAuthorization`` as an ``eth_call`` (from `sender`, default the
        chain's signer if it has one): ok, or the revert reason and its x402 code.

        Answers on what the chain's latest block says: a valid authorization may still lose
        a race to another submission of the same nonce.
        """
        data = self._authorization_call("transferWithAuthorization", authorization, signature)
        try:
            self.chain.call(self.address, data, sender=sender)
        except TransactionReverted as error:
            return Simulation(False, error.reason, revert_code(error.reason))
        return Simulation(True)

    def send_transfer_with_authorization(
        self,
        authorization: Authorization,
        signature: bytes | str,
        *,
        key: PrivateKey | None = None,
    ) -> str:
        """Broadcast ``transferWithAuthorization`` paid by `key` (default: the chain's
        signer); the tx hash, without waiting. `TransactionReverted` if it would revert."""
        data = self._authorization_call("transferWithAuthorization", authorization, signature)
        return self.chain.send(
            self._signer(key),
            self.address,
            data,
            gas_bound=GAS_BOUNDS["transferWithAuthorization"],
        )

    def confirm_transfer(
        self,
        tx_hash: str,
        authorization: Authorization,
        *,
        confirmations: int | None = None,
        timeout_s: float | None = None,
    ) -> Receipt:
        """Wait for `tx_hash` and check that it succeeded and that its receipt carries the
        Transfer of exactly ``value`` from ``from`` to ``to`` by this token."""
        receipt = self.chain.wait(tx_hash, confirmations=confirmations, timeout_s=timeout_s)
        if not receipt.ok:
            # A receipt carries no reason. The usual one: another submission of the same
            # authorization was mined first (both passed their estimate before either landed).
            reason = (
                "authorization is used or canceled"
                if self.authorization_state(authorization.from_, authorization.nonce)
                else ""
            )
            raise TransactionReverted(
                f"transaction {tx_hash} reverted on chain" + (f": {reason}" if reason else ""),
                reason=reason,
                tx_hash=tx_hash,
            )
        self.check_transfer(receipt, authorization.from_, authorization.to, authorization.value)
        return receipt

    def transfer_with_authorization(
        self,
        authorization: Authorization,
        signature: bytes | str,
        *,
        key: PrivateKey | None = None,
        confirmations: int | None = None,
    ) -> Receipt:
        """Settle an x402 ``exact`` payment: send, wait, check the Transfer event."""
        tx_hash = self.send_transfer_with_authorization(authorization, signature, key=key)
        return self.confirm_transfer(tx_hash, authorization, confirmations=confirmations)

    def receive_with_authorization(
        self,
        authorization: Authorization,
        signature: bytes | str,
        *,
        key: PrivateKey,
        confirmations: int | None = None,
    ) -> Receipt:
        """Submit a ``ReceiveWithAuthorization``: `key` must be the payee (``to``)."""
        if key.address != authorization.to:
            raise InvalidAuthorization(
                f"only the payee {authorization.to} may submit receiveWithAuthorization"
            )
        data = self._authorization_call("receiveWithAuthorization", authorization, signature)
        tx_hash = self.chain.send(
            key, self.address, data, gas_bound=GAS_BOUNDS["receiveWithAuthorization"]
        )
        return self.confirm_transfer(tx_hash, authorization, confirmations=confirmations)

    def cancel_authorization(
        self,
        authorizer: str,
        nonce: bytes,
        signature: bytes | str,
        *,
        key: PrivateKey | None = None,
    ) -> Receipt:
        """Burn `authorizer`'s unused `nonce` (signed by the authorizer; any key pays)."""
        v, r, s = split_signature(signature)
        return self._transact(
            self._signer(key),
            "cancelAuthorization",
            ["address", "bytes32", "uint8", "bytes32", "bytes32"],
            [_addr(authorizer), _nonce(nonce), v, r, s],
        )

    def check_transfer(self, receipt: Receipt, from_: str, to: str, value: int) -> Log:
        """The log in `receipt` of this token's Transfer of `value` from `from_` to `to`;
        `TransferMismatch` if there is none."""
        want = (_topic(from_), _topic(to))
        for log in receipt.logs:
            if (
                log.address == self.address
                and len(log.topics) == 3
                and log.topics[0] == TRANSFER_TOPIC
                and (log.topics[1], log.topics[2]) == want
                and len(log.data) == 32
                and int.from_bytes(log.data, "big") == value
            ):
                return log
        raise TransferMismatch(
            f"transaction {receipt.tx_hash} has no Transfer of {value} from {from_} to {to}"
        )

    def transfers(
        self,
        *,
        from_block: int,
        to_block: int,
        from_: str | None = None,
        to: str | None = None,
    ) -> list[TransferLog]:
        """Transfer events in [from_block, to_block], optionally by sender or recipient."""
        topics = [
            TRANSFER_TOPIC,
            None if from_ is None else _topic(from_),
            None if to is None else _topic(to),
        ]
        found = []
        for log in self.chain.logs(
            address=self.address, topics=topics, from_block=from_block, to_block=to_block
        ):
            decoded = transfer_log(log)
            if decoded is not None:
                found.append(decoded)
        return found

    def authorization_used_log(
        self, authorizer: str, nonce: bytes, *, from_block: int = 0
    ) -> Log | None:
        """The AuthorizationUsed event of (`authorizer`, `nonce`), if it was used."""
        topics = [AUTHORIZATION_USED_TOPIC, _topic(authorizer), _nonce(nonce)]
        logs = self.chain.logs(
            address=self.address,
            topics=topics,
            from_block=from_block,
            to_block=self.chain.block_number(),
        )
        return logs[0] if logs else None

    # ----- plumbing ------------------------------------------------------------------------

    def _signer(self, key: PrivateKey | None) -> PrivateKey:
        return self.chain.default_signer() if key is None else key

    def _authorization_call(
        self, function: str, authorization: Authorization, signature: bytes | str
    ) -> bytes:
        if not isinstance(authorization, Authorization):
            raise InvalidAuthorization("expected an Authorization (see Token.authorization)")
        v, r, s = split_signature(signature)
        a = authorization
        return _SELECTORS[function] + abi_encode(
            _AUTH_TYPES,
            [a.from_, a.to, a.value, a.valid_after, a.valid_before, a.nonce, v, r, s],
        )

    def _call(self, function: str, types: Sequence[str] = (), args: Sequence[object] = ()) -> bytes:
        data = _SELECTORS[function] + abi_encode(list(types), list(args))
        return self.chain.call(self.address, data)

    def _read_uint(
        self, function: str, types: Sequence[str] = (), args: Sequence[object] = ()
    ) -> int:
        result = self._call(function, types, args)
        if len(result) != 32:
            raise ChainError(f"{function}() of {self.address} answered {len(result)} bytes")
        return int.from_bytes(result, "big")

    def _read_text(self, function: str) -> str:
        try:
            (value,) = abi_decode(["string"], self._call(function))
        except TransactionReverted:
            raise ChainError(
                f"{self.address} has no {function}(): not an EIP-3009 token paywire can use"
            ) from None
        except Exception as error:  # eth_abi's decoding errors: the answer is not a string
            raise ChainError(f"{function}() of {self.address} is not text: {error}") from None
        return str(value)

    def _transact(
        self, key: PrivateKey, function: str, types: Sequence[str], args: Sequence[object]
    ) -> Receipt:
        data = _SELECTORS[function] + abi_encode(list(types), list(args))
        return self.chain.transact(key, self.address, data, gas_bound=GAS_BOUNDS.get(function))


def transfer_log(log: Log) -> TransferLog | None:
    """A Transfer event decoded from a log (None if the log is not one)."""
    if len(log.topics) != 3 or log.topics[0] != TRANSFER_TOPIC or len(log.data) != 32:
        return None
    return TransferLog(
        from_=to_checksum_address(log.topics[1][12:]),
        to=to_checksum_address(log.topics[2][12:]),
        value=int.from_bytes(log.data, "big"),
        block_number=log.block_number,
        tx_hash=log.tx_hash,
        log_index=log.log_index,
    )


def _addr(value: object) -> str:
    return check_address(value)


def _amt(value: object) -> int:
    return check_amount(value)


def _nonce(value: object) -> bytes:
    return check_nonce(value)


def _topic(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(_addr(address)[2:])
