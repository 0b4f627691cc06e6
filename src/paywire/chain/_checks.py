"""Checks of the values the chain layer takes from callers: addresses, amounts, nonces.
Each refuses with `InvalidChainInput` (or the subclass it is given) before anything is
sent to a chain. No web3 here: the signing helpers use these too."""

from __future__ import annotations

from paywire.chain.errors import InvalidChainInput
from paywire.crypto import InvalidAddress, parse_address

UINT256_MAX = 2**256 - 1
"""Token amounts and EIP-3009 times are uint256."""

NONCE_BYTES = 32
"""An EIP-3009 nonce is a bytes32, chosen at random by the signer (not a counter)."""

MAX_SHOWN_CHARS = 40
"""How much of a refused value an error message repeats."""


def check_address(
    value: object, what: str = "address", error: type[InvalidChainInput] = InvalidChainInput
) -> str:
    """`value` as a checksummed address (a mixed-case address must carry a valid checksum)."""
    if not isinstance(value, str):
        raise error(f"{what} must be an address as text, not {type(value).__name__}")
    try:
        return parse_address(value)
    except InvalidAddress as problem:
        raise error(f"{what}: {problem.message}") from None


def check_amount(
    value: object,
    what: str = "amount",
    *,
    bound: int = UINT256_MAX,
    error: type[InvalidChainInput] = InvalidChainInput,
) -> int:
    """`value` as a whole number in [0, bound] (a token amount in atomic units, a time)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= bound:
        shown = repr(value)
        if len(shown) > MAX_SHOWN_CHARS:
            shown = shown[:MAX_SHOWN_CHARS] + "..."
        limit = "a uint256" if bound == UINT256_MAX else f"a whole number in 0..{bound}"
        raise error(f"{what} must be {limit}, not {shown}")
    return value


def check_nonce(value: object, error: type[InvalidChainInput] = InvalidChainInput) -> bytes:
    """`value` as an EIP-3009 nonce: exactly 32 bytes."""
    if not isinstance(value, bytes) or len(value) != NONCE_BYTES:
        raise error(f"an authorization nonce is exactly {NONCE_BYTES} bytes (0x + 64 hex digits)")
    return value
