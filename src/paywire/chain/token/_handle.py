"""`TokenHandle`: what `Token` is built on: the contract at an address, its labels and
EIP-712 domain read once, its reads, ERC-20 writes, the owner's mint and the local-only
faucet, and the calls beneath them, encoded against fixed selectors."""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode

from paywire.chain._checks import check_address, check_amount
from paywire.chain.base._chain import Chain
from paywire.chain.base._values import Receipt
from paywire.chain.eip3009 import (
    CANCEL_AUTHORIZATION,
    RECEIVE_WITH_AUTHORIZATION,
    AuthorizationKind,
    token_domain,
)
from paywire.chain.errors import ChainError, FaucetRefused, InvalidChainInput, TransactionReverted
from paywire.chain.token._contract import (
    _SELECTORS,
    GAS_BOUNDS,
    TOKEN_DECIMALS,
    _addr,
    _amt,
    _nonce,
)
from paywire.crypto import (
    TRANSFER_WITH_AUTHORIZATION,
    PrivateKey,
    TypedMessage,
    to_checksum_address,
)

MAX_FAUCET_ATOMIC = 10**6 * 10**TOKEN_DECIMALS
"""The faucet mints at most a million dollars of virtual funds per call."""


class TokenHandle:
    """The token at `address` on `chain`, as `Token` is built on it: its reads, ERC-20 writes
    and the calls beneath them."""

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

    # ----- plumbing ------------------------------------------------------------------------

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
