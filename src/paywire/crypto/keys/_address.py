"""Ethereum addresses: parsing, checking and EIP-55 checksums."""

from __future__ import annotations

import functools
import re

from paywire.crypto.keys._keccak import keccak256
from paywire.errors import InvalidInput

ADDRESS_BYTES = 20
"""An Ethereum address: the last 20 bytes of keccak(public key)."""

ADDRESS_TEXT_CHARS = 2 + 2 * ADDRESS_BYTES
"""``0x`` and 40 hex digits."""

ADDRESS_CACHE_SIZE = 4096
"""Distinct addresses whose checksummed form is remembered (by text in `parse_address`, by
bytes for recovered signers): payers and payees recur, and a checksum costs a Keccak; the
bound keeps a flood of fresh addresses from growing memory (~1 MiB at most)."""

_HEX40 = re.compile(r"[0-9a-fA-F]{40}")


class InvalidAddress(InvalidInput):
    """Text that is not an Ethereum address, or a mixed-case address with a wrong checksum."""

    code = "invalid_address"


# Checksumming without a per-character Python loop: a lowercase hex letter becomes upper case
# by subtracting 0x20; these tables mark letters of the address and "high" nibbles (>= 8) of
# the hash with 0x20, and one AND of the two as integers gives what to subtract.
_LETTER_MASK = bytes(0x20 if chr(c) in "abcdef" else 0 for c in range(256))
_HIGH_NIBBLE_MASK = bytes(0x20 if chr(c) in "89abcdef" else 0 for c in range(256))


@functools.lru_cache(maxsize=ADDRESS_CACHE_SIZE)  # payers recur: skip the Keccak for them
def _checksum(raw: bytes) -> str:
    """EIP-55 text of a 20-byte address."""
    lower = raw.hex().encode("ascii")
    hashed = keccak256(lower).hex().encode("ascii")[:40]
    mask = int.from_bytes(lower.translate(_LETTER_MASK), "big") & int.from_bytes(
        hashed.translate(_HIGH_NIBBLE_MASK), "big"
    )
    upper = int.from_bytes(lower, "big") - mask
    return "0x" + upper.to_bytes(40, "big").decode("ascii")


def _describe(text: str) -> str:
    """A short, safe rendering of user text for an error message."""
    return (
        repr(text)
        if len(text) <= ADDRESS_TEXT_CHARS + 8
        else f"{text[:20]!r}... ({len(text)} chars)"
    )


def to_checksum_address(value: str | bytes) -> str:
    """The EIP-55 checksummed form of a 20-byte address or of ``0x`` + 40 hex digits.

    Unlike `parse_address`, any letter case is accepted: this converts, it does not check.
    """
    if isinstance(value, bytes | bytearray):
        if len(value) != ADDRESS_BYTES:
            raise InvalidAddress(f"an address is 20 bytes, got {len(value)}")
        return _checksum(bytes(value))
    if not isinstance(value, str):
        raise InvalidAddress(f"an address is text or bytes, got {type(value).__name__}")
    if len(value) != ADDRESS_TEXT_CHARS or value[:2] != "0x" or not _HEX40.fullmatch(value, 2):
        raise InvalidAddress(f"{_describe(value)} is not 0x followed by 40 hex digits")
    return _checksum(bytes.fromhex(value[2:]))


@functools.lru_cache(maxsize=ADDRESS_CACHE_SIZE)
def _parse_address(text: str) -> tuple[str, bytes]:
    if len(text) != ADDRESS_TEXT_CHARS or text[:2] != "0x" or not _HEX40.fullmatch(text, 2):
        raise InvalidAddress(f"{_describe(text)} is not an address (0x followed by 40 hex digits)")
    raw = bytes.fromhex(text[2:])
    checksummed = _checksum(raw)
    digits = text[2:]
    if digits != digits.lower() and digits != digits.upper() and text != checksummed:
        # Mixed case claims an EIP-55 checksum: a mismatch means a typo somewhere.
        raise InvalidAddress(
            f"{text} has a wrong EIP-55 checksum (a typo?); the checksummed form of these "
            f"digits is {checksummed}, check the address before using it"
        )
    return checksummed, raw


def parse_address(text: str) -> str:
    """Check an address typed or received as text; return its checksummed form.

    Accepts ``0x`` + 40 hex digits, all lower case, all upper case, or mixed case with a
    correct EIP-55 checksum. Raises `InvalidAddress` otherwise.
    """
    if not isinstance(text, str):
        raise InvalidAddress(f"an address is text, got {type(text).__name__}")
    return _parse_address(text)[0]


def address_bytes(text: str) -> bytes:
    """The 20 bytes of an address given as text (checked as by `parse_address`)."""
    if not isinstance(text, str):
        raise InvalidAddress(f"an address is text, got {type(text).__name__}")
    return _parse_address(text)[1]
